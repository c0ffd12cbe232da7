/**
 * Worker side of the `stats` and `absMaxProfile` jobs: reads a tensor's bytes straight into kernel
 * memory, chunk by chunk, and runs the kernels of src/kernel/assembly/stats.ts and histogram.ts.
 * The definitions and the derivations shared with the twin are in src/core/stats/stats.ts.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { DTYPES, byteSizeOf, type DType } from '../core/dtypes';
import { QuantLensError, throwIfAborted } from '../core/errors';
import { MAX_HISTOGRAM_BINS } from '../core/limits';
import { isDequantizable } from '../core/quant/dequant';
import { isPlainDType } from '../core/stats/decode';
import {
  codeCount, emptyStats, finishLaneStats, OUTLIER_SIGMAS, secondPassOf, statsFromCodeTable,
  statsPathOf, stdOf, type CodeDType, type MomentState, type ScanState, type TensorStats,
} from '../core/stats/stats';
import { Transfer } from '../shared/rpc';
import { dequantizeInPlace } from './dequantize';
import { byteInputLength, type AbsMaxProfile, type AbsMaxProfileJob, type ByteInput, type JobContext, type StatsBatchJob, type StatsJob } from './jobs';
import { decodeToF32InKernel, type KernelInstance } from './wasm';

/** Bytes of values held in kernel memory at once per worker (f32 values, or the wide types' own), by default. */
const CHUNK_VALUE_BYTES = 32 << 20;
/** Bytes read per chunk for code counting, by default (two such buffers are in flight). */
const CODE_CHUNK_BYTES = 8 << 20;
/** u32 code counters are added into f64 totals before this many elements could overflow one. */
const CODE_FLUSH_ELEMENTS = 2 ** 31;

// ---------------------------------------------------------------------------------------------
// Input

/** Reads ranges of a job's input into kernel memory. */
export class InputReader {
  private constructor(
    private readonly kernel: KernelInstance,
    private readonly input: ByteInput,
    private readonly handle: FileHandle | undefined,
  ) {}

  static async open(kernel: KernelInstance, input: ByteInput): Promise<InputReader> {
    if ('bytes' in input) return new InputReader(kernel, input, undefined);
    try {
      return new InputReader(kernel, input, await open(input.file, 'r'));
    } catch (err) {
      throw new QuantLensError('IO', `cannot open ${input.file}: ${(err as Error).message}`, { file: input.file, cause: err });
    }
  }

  get length(): number {
    return byteInputLength(this.input);
  }

  /** Copies input bytes [offset, offset + length) to kernel address `dst` (the file read lands there directly). */
  async read(offset: number, length: number, dst: number, tensor: string): Promise<void> {
    const view = new Uint8Array(this.kernel.memory.buffer, dst, length);
    if ('bytes' in this.input) {
      view.set(this.input.bytes.subarray(offset, offset + length));
      return;
    }
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle!.read(view, done, length - done, this.input.offset + offset + done);
      if (bytesRead === 0) {
        throw new QuantLensError('TRUNCATED', `unexpected end of file at ${this.input.offset + offset + done}`, {
          offset: this.input.offset + offset + done,
          file: this.input.file,
          tensor,
        });
      }
      done += bytesRead;
    }
  }

  async close(): Promise<void> {
    await this.handle?.close();
  }
}

function checkInputSize(name: string, dtype: DType, count: number, input: ByteInput): void {
  const need = byteSizeOf(dtype, BigInt(count));
  if (need === null || need !== BigInt(byteInputLength(input))) {
    throw new QuantLensError('SIZE_MISMATCH', `${count} ${dtype} elements do not fill ${byteInputLength(input)} bytes`, { tensor: name });
  }
}

/**
 * A tensor's values, chunk by chunk, in kernel memory: as f32 (`'f32'`: F32 read as is, other plain
 * types decoded, block types dequantized) or as stored (`'stored'`, for the f64 statistics path).
 * Chunks hold a multiple of 4 elements and of the block size; a tensor that fits in one chunk is read once.
 */
export class ValueChunks {
  readonly chunkElements: number;
  readonly chunks: number;
  /** Kernel address of the current chunk's values. */
  readonly values: number;
  private readonly raw: number;
  private readonly valueWidth: number;
  private loaded = -1;

  constructor(
    private readonly ctx: JobContext,
    private readonly reader: InputReader,
    private readonly name: string,
    private readonly dtype: DType,
    readonly count: number,
    as: 'f32' | 'stored',
    chunkBytes = CHUNK_VALUE_BYTES,
    /** Chunks also hold a multiple of this many elements (whole rows). */
    multipleOf = 1,
  ) {
    const { blockSize, bytesPerBlock } = DTYPES[dtype];
    this.valueWidth = as === 'stored' ? bytesPerBlock : 4;
    const unit = lcm(lcm(4, blockSize), multipleOf);
    this.chunkElements = Math.max(unit, Math.floor(chunkBytes / this.valueWidth / unit) * unit);
    this.chunks = Math.max(1, Math.ceil(count / this.chunkElements));
    const inChunk = Math.min(this.chunkElements, Math.ceil(count / unit) * unit);
    this.values = ctx.arena.take(inChunk * this.valueWidth);
    const decodes = as === 'f32' && dtype !== 'F32';
    this.raw = decodes ? ctx.arena.take((inChunk / blockSize) * bytesPerBlock) : this.values;
  }

  /** Loads chunk `c`; returns its element count. */
  async load(c: number): Promise<number> {
    const start = c * this.chunkElements;
    const n = Math.min(this.chunkElements, this.count - start);
    if (c === this.loaded) return n;
    throwIfAborted(this.ctx.signal);
    const { blockSize, bytesPerBlock } = DTYPES[this.dtype];
    await this.reader.read((start / blockSize) * bytesPerBlock, (n / blockSize) * bytesPerBlock, this.raw, this.name);
    if (this.raw !== this.values) {
      if (isPlainDType(this.dtype)) decodeToF32InKernel(this.ctx.kernel, this.dtype, this.raw, n, this.values);
      else dequantizeInPlace(this.ctx.kernel, this.dtype, this.raw, this.values, n / blockSize);
    }
    this.loaded = c;
    return n;
  }

  /** Start element of chunk `c`. */
  start(c: number): number {
    return c * this.chunkElements;
  }
}

/** Least common multiple of two positive integers (chunk units of block sizes and row lengths). */
export function lcm(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y) [x, y] = [y, x % y];
  return (a / x) * b;
}

function checkChunkBytes(chunkBytes: number | undefined): void {
  if (chunkBytes !== undefined && !(Number.isSafeInteger(chunkBytes) && chunkBytes >= 64)) {
    throw new QuantLensError('USAGE', `chunkBytes must be an integer ≥ 64, not ${chunkBytes}`);
  }
}

function checkComputable(name: string, dtype: DType): void {
  if (!isPlainDType(dtype) && !isDequantizable(dtype)) {
    throw new QuantLensError('UNSUPPORTED', `no dequantizer for ${dtype}`, { tensor: name });
  }
}

// ---------------------------------------------------------------------------------------------
// stats

export async function runStatsJob(job: StatsJob, ctx: JobContext): Promise<TensorStats> {
  const { name, dtype, count, bins } = job;
  if (!Number.isInteger(bins) || bins < 1 || bins > MAX_HISTOGRAM_BINS) {
    throw new QuantLensError('USAGE', `histogram bins must be an integer in 1..${MAX_HISTOGRAM_BINS}, not ${bins}`);
  }
  checkComputable(name, dtype);
  checkInputSize(name, dtype, count, job.input);
  checkChunkBytes(job.chunkBytes);
  const reader = await InputReader.open(ctx.kernel, job.input);
  try {
    const path = statsPathOf(dtype, count);
    if (path === 'codes8' || path === 'codes16') return await codeTableStats(job, dtype as CodeDType, reader, ctx);
    return await laneStatsInKernel(job, reader, ctx, path === 'f64' ? 'stored' : 'f32');
  } finally {
    await reader.close();
  }
}

/**
 * Many small tensors in one job (a model of 100,000 tiny tensors would otherwise pay a message round
 * trip per tensor): each as its own `stats` job, one after another, kernel memory reused.
 */
export async function runStatsBatchJob(job: StatsBatchJob, ctx: JobContext): Promise<TensorStats[]> {
  const total = job.items.reduce((s, it) => s + byteInputLength(it.input), 0);
  const results: TensorStats[] = [];
  let done = 0;
  for (const item of job.items) {
    throwIfAborted(ctx.signal);
    ctx.arena.reset();
    results.push(await runStatsJob(item, { ...ctx, progress: () => undefined }));
    done += byteInputLength(item.input);
    ctx.progress(done, total);
  }
  return results;
}

async function codeTableStats(job: StatsJob, dtype: CodeDType, reader: InputReader, ctx: JobContext): Promise<TensorStats> {
  const { kernel, arena } = ctx;
  const codes = codeCount(dtype);
  const width = codes === 65536 ? 2 : 1;
  const count = codes === 65536 ? kernel.exports.countCodes16! : kernel.exports.countCodes8!;
  // two interleaved u32 tables (see countCodes16)
  const table = arena.take(2 * codes * 4);
  const chunkElements = Math.floor((job.chunkBytes ?? CODE_CHUNK_BYTES) / width);
  // two buffers: the next chunk's read (on libuv's threads) overlaps counting the current one
  const inBuffer = Math.min(job.count, chunkElements) * width;
  const buffers = [arena.take(inBuffer), job.count > chunkElements ? arena.take(inBuffer) : 0];
  const readChunk = (c: number): Promise<void> => {
    const start = c * chunkElements;
    return reader.read(start * width, Math.min(chunkElements, job.count - start) * width, buffers[c & 1]!, job.name);
  };
  const chunks = Math.ceil(job.count / chunkElements);
  const totals = new Float64Array(codes);
  const flush = (): void => {
    const t = new Uint32Array(kernel.memory.buffer, table, 2 * codes);
    for (let c = 0; c < codes; c++) totals[c] += t[c]! + t[codes + c]!;
    t.fill(0);
  };
  new Uint32Array(kernel.memory.buffer, table, 2 * codes).fill(0);
  let unflushed = 0;
  let pending: Promise<void> | undefined = chunks > 0 ? readChunk(0) : undefined;
  try {
    for (let c = 0; c < chunks; c++) {
      await pending;
      pending = c + 1 < chunks ? readChunk(c + 1) : undefined;
      throwIfAborted(ctx.signal);
      const n = Math.min(chunkElements, job.count - c * chunkElements);
      if (unflushed + n > CODE_FLUSH_ELEMENTS) {
        flush();
        unflushed = 0;
      }
      count(buffers[c & 1]!, n, table);
      unflushed += n;
      ctx.progress((c * chunkElements + n) * width, reader.length);
    }
  } finally {
    // never leave a read writing into memory the next job may use
    await pending?.catch(() => undefined);
  }
  flush();
  return statsFromCodeTable(dtype, totals, job.bins);
}

/** Kernel export suffix of the lane kernels for a dtype's values. */
function laneSuffix(dtype: DType, as: 'f32' | 'stored'): string {
  return as === 'f32' ? 'F32' : dtype;
}

// Scan state: 8 f64 (lane sums, min, max, finite, zeros); moment state: 8 f64 (lane d², lane d⁴).
const SCAN_SLOTS = 8;
const MOMENT_SLOTS = 8;

async function laneStatsInKernel(job: StatsJob, reader: InputReader, ctx: JobContext, as: 'f32' | 'stored'): Promise<TensorStats> {
  const { kernel, arena } = ctx;
  const { count, bins } = job;
  const suffix = laneSuffix(job.dtype, as);
  const scanKernel = kernel.exports[`statsScan${suffix}`]!;
  const momentsKernel = kernel.exports[`statsMoments${suffix}`]!;
  const outliersKernel = kernel.exports[`statsOutliers${suffix}`]!;
  const statePtr = arena.take(SCAN_SLOTS * 8);
  const momentPtr = arena.take(MOMENT_SLOTS * 8);
  const edgesPtr = arena.take((bins + 1) * 8);
  const countsPtr = arena.take(4 * bins * 4);
  const chunks = new ValueChunks(ctx, reader, job.name, job.dtype, count, as, job.chunkBytes);
  const f64 = (ptr: number, n: number): Float64Array => new Float64Array(kernel.memory.buffer, ptr, n);
  const progress = (pass: number, c: number): void => {
    ctx.progress(Math.round(((pass + (c + 1) / chunks.chunks) / 3) * reader.length), reader.length);
  };

  // pass 1
  f64(statePtr, SCAN_SLOTS).set([0, 0, 0, 0, Infinity, -Infinity, 0, 0]);
  for (let c = 0; c < chunks.chunks; c++) {
    const n = await chunks.load(c);
    scanKernel(chunks.values, n, statePtr);
    progress(0, c);
  }
  const s = f64(statePtr, SCAN_SLOTS);
  const scan: ScanState = { sums: [s[0]!, s[1]!, s[2]!, s[3]!], min: s[4]!, max: s[5]!, finite: s[6]!, zeros: s[7]! };
  if (scan.finite === 0) return emptyStats(count, bins);

  // pass 2
  const p = secondPassOf(scan, bins);
  f64(edgesPtr, bins + 1).set(p.edges);
  f64(momentPtr, MOMENT_SLOTS).fill(0);
  new Uint32Array(kernel.memory.buffer, countsPtr, 4 * bins).fill(0);
  const counts = new Float64Array(bins);
  for (let c = 0; c < chunks.chunks; c++) {
    const n = await chunks.load(c);
    momentsKernel(chunks.values, n, p.mean, p.lo, p.denom, bins, edgesPtr, momentPtr, countsPtr);
    const laneCounts = new Uint32Array(kernel.memory.buffer, countsPtr, 4 * bins);
    for (let b = 0; b < bins; b++) counts[b] += laneCounts[b]! + laneCounts[bins + b]! + laneCounts[2 * bins + b]! + laneCounts[3 * bins + b]!;
    laneCounts.fill(0);
    progress(1, c);
  }
  const m = f64(momentPtr, MOMENT_SLOTS);
  const moments: MomentState = { m2: [m[0]!, m[1]!, m[2]!, m[3]!], m4: [m[4]!, m[5]!, m[6]!, m[7]!] };

  // pass 3
  const threshold = OUTLIER_SIGMAS * stdOf(scan, moments);
  let outliers = 0;
  for (let c = 0; c < chunks.chunks; c++) {
    const n = await chunks.load(c);
    outliers += outliersKernel(chunks.values, n, p.mean, threshold);
    progress(2, c);
  }
  return finishLaneStats(count, scan, p, moments, outliers, counts);
}

// ---------------------------------------------------------------------------------------------
// absMaxProfile

export async function runAbsMaxProfileJob(job: AbsMaxProfileJob, ctx: JobContext): Promise<Transfer<AbsMaxProfile>> {
  const { name, dtype, rows, cols } = job;
  checkComputable(name, dtype);
  const count = rows * cols;
  if (!Number.isSafeInteger(count) || count < 0) throw new QuantLensError('INVALID_SHAPE', `${rows} × ${cols} is not a size`, { tensor: name });
  const { blockSize } = DTYPES[dtype];
  if (cols % blockSize !== 0) {
    throw new QuantLensError('UNSUPPORTED', `rows of ${cols} are not whole ${dtype} blocks of ${blockSize}`, { tensor: name });
  }
  checkInputSize(name, dtype, count, job.input);
  checkChunkBytes(job.chunkBytes);
  const { kernel, arena } = ctx;
  const reader = await InputReader.open(kernel, job.input);
  try {
    const colsPtr = arena.take(cols * 4);
    new Float32Array(kernel.memory.buffer, colsPtr, cols).fill(0);
    const chunks = new ValueChunks(ctx, reader, name, dtype, count, 'f32', job.chunkBytes, Math.max(1, cols));
    const rowsPtr = arena.take((chunks.chunkElements / Math.max(1, cols)) * 4);
    const rowMax = new Float32Array(rows);
    for (let c = 0; c < chunks.chunks && cols > 0; c++) {
      const n = await chunks.load(c);
      const r0 = chunks.start(c) / cols;
      kernel.exports.absMaxRowsF32!(chunks.values, n / cols, cols, rowsPtr);
      kernel.exports.absMaxColsF32!(chunks.values, n / cols, cols, colsPtr);
      rowMax.set(new Float32Array(kernel.memory.buffer, rowsPtr, n / cols), r0);
      ctx.progress(Math.round(((c + 1) / chunks.chunks) * reader.length), reader.length);
    }
    const colMax = new Float32Array(kernel.memory.buffer, colsPtr, cols).slice();
    return new Transfer({ rows: rowMax, cols: colMax }, [rowMax.buffer as ArrayBuffer, colMax.buffer as ArrayBuffer]);
  } finally {
    await reader.close();
  }
}
