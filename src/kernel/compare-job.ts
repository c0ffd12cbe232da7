/**
 * Worker side of the `compareTensors` job: one matched pair of tensors of two checkpoints, read,
 * decoded or dequantized to f32 and compared in the worker (the comparison view's rows), and on
 * request (a second pass) the two value histograms over a shared range and the histogram of the error b − a.
 * Raw tensors are read straight into kernel memory and decoded or dequantized by the kernel (the same
 * bits as the twins); quantized layouts and other encodings go through tensorRowsF32. Each worker
 * keeps the last few models it opened (worker-models.ts), so a comparison opens each file once per worker.
 */
import { ErrorAccumulator, type TensorError } from '../core/compare';
import { DTYPES } from '../core/dtypes';
import { QuantLensError, throwIfAborted } from '../core/errors';
import { MAX_HISTOGRAM_BINS } from '../core/limits';
import { elementCount, type ModelInfo, type TensorInfo } from '../core/model';
import { isDequantizable } from '../core/quant/dequant';
import { nodeFileAccess } from '../core/readers/node-files';
import { isPlainDType } from '../core/stats/decode';
import { matrixShape, tensorRowsF32 } from '../core/tensor-rows';
import type { JobContext } from './jobs';
import { InputReader, lcm, ValueChunks } from './stats-job';
import { workerTensor } from './worker-models';

export interface CompareTensorsJob {
  /** Checkpoint paths (file, index or folder) and the tensor on each side. */
  a: { path: string; tensor: string };
  b: { path: string; tensor: string };
  /** For each row of a, the row of b holding it (rotary q/k order undone); absent: same order. */
  rowMapB?: Int32Array;
  /** Histogram bins; absent: error figures only (one pass). */
  bins?: number;
}

/** Counts over [lo, hi] in equal bins; null bounds when there are no finite values. */
export interface RangeHistogram {
  lo: number | null;
  hi: number | null;
  counts: number[];
}

export interface CompareTensorsReply extends TensorError {
  histograms?: {
    /** Both sides over the same range, so they overlay. */
    a: RangeHistogram;
    b: RangeHistogram;
    /** b − a. */
    error: RangeHistogram;
  };
}

/** Values per chunk of the two sides (16 MiB of f32 each), so memory stays bounded whatever the tensor's size. */
const CHUNK_ELEMENTS = 1 << 22;

/** One side's values, taken in consecutive runs of a given length. */
interface ValueSource {
  /** The next `n` values (a view, valid until the next call). */
  take(n: number): Promise<Float32Array>;
  /** Back to the first value (the histogram pass). */
  rewind(): void;
  close(): Promise<void>;
}

/** A raw tensor of a plain or ggml block type: read straight into kernel memory and decoded or dequantized there. */
class KernelSource implements ValueSource {
  private next = 0;
  private constructor(
    private readonly ctx: JobContext,
    private readonly reader: InputReader,
    private readonly chunks: ValueChunks,
  ) {}

  static async open(ctx: JobContext, t: TensorInfo, chunkElements: number): Promise<KernelSource> {
    const reader = await InputReader.open(ctx.kernel, { file: t.file, offset: t.byteOffset, length: t.byteLength });
    return new KernelSource(ctx, reader, new ValueChunks(ctx, reader, t.name, t.dtype, elementCount(t.shape), 'f32', chunkElements * 4));
  }

  async take(n: number): Promise<Float32Array> {
    const got = await this.chunks.load(this.next++);
    if (got !== n) throw new QuantLensError('INTERNAL', `chunk of ${got} values where ${n} were expected`);
    return new Float32Array(this.ctx.kernel.memory.buffer, this.chunks.values, n);
  }

  rewind(): void {
    this.next = 0;
  }

  close(): Promise<void> {
    return this.reader.close();
  }
}

/** Any other tensor (quantized layouts, protobuf or strided encodings): tensorRowsF32's chunks, cut to the lengths asked for. */
class TwinSource implements ValueSource {
  private rows: AsyncGenerator<{ values: Float32Array }>;
  private pending: Float32Array = new Float32Array(0);

  constructor(
    private readonly model: ModelInfo,
    private readonly tensor: TensorInfo,
    private readonly chunkElements: number,
    private readonly signal: AbortSignal,
  ) {
    this.rows = this.open();
  }

  private open(): AsyncGenerator<{ values: Float32Array }> {
    return tensorRowsF32(this.model, this.tensor, nodeFileAccess, { signal: this.signal, maxElements: this.chunkElements });
  }

  async take(n: number): Promise<Float32Array> {
    if (this.pending.length === 0) {
      const first = await this.rows.next();
      if (first.done) throw new QuantLensError('TRUNCATED', `${this.tensor.name} ended early`, { tensor: this.tensor.name });
      this.pending = first.value.values;
    }
    if (this.pending.length >= n) {
      const out = this.pending.subarray(0, n);
      this.pending = this.pending.subarray(n);
      return out;
    }
    const out = new Float32Array(n);
    let at = 0;
    while (at < n) {
      if (this.pending.length === 0) {
        const c = await this.rows.next();
        if (c.done) throw new QuantLensError('TRUNCATED', `${this.tensor.name} ended early`, { tensor: this.tensor.name });
        this.pending = c.value.values;
      }
      const k = Math.min(n - at, this.pending.length);
      out.set(this.pending.subarray(0, k), at);
      this.pending = this.pending.subarray(k);
      at += k;
    }
    return out;
  }

  rewind(): void {
    void this.rows.return(undefined);
    this.rows = this.open();
    this.pending = new Float32Array(0);
  }

  async close(): Promise<void> {
    await this.rows.return(undefined);
  }
}

function inKernel(t: TensorInfo): boolean {
  return t.encoding === 'raw' && (isPlainDType(t.dtype) || isDequantizable(t.dtype)) && matrixShape(t.shape).cols % DTYPES[t.dtype].blockSize === 0;
}

/**
 * Values per chunk, the same on both sides: whole rows of about CHUNK_ELEMENTS when that is a
 * multiple of what the kernel's chunks need (4 values and both block sizes), else a multiple of that;
 * the whole tensor when b's rows are reordered.
 */
function chunkElementsOf(ta: TensorInfo, tb: TensorInfo, whole: boolean): number {
  const unit = lcm(lcm(4, DTYPES[ta.dtype].blockSize), DTYPES[tb.dtype].blockSize);
  const count = elementCount(ta.shape);
  if (whole) return Math.max(unit, Math.ceil(count / unit) * unit);
  const { cols } = matrixShape(ta.shape);
  if (cols > 0 && cols % unit === 0) return Math.max(1, Math.floor(CHUNK_ELEMENTS / cols)) * cols;
  return Math.max(unit, Math.floor(CHUNK_ELEMENTS / unit) * unit);
}

async function openSource(ctx: JobContext, model: ModelInfo, t: TensorInfo, chunkElements: number): Promise<ValueSource> {
  return inKernel(t) ? KernelSource.open(ctx, t, chunkElements) : new TwinSource(model, t, chunkElements, ctx.signal);
}

/** Aligned chunks of both tensors' values (b's rows reordered when a row map is given). */
async function* pairedChunks(a: ValueSource, b: ValueSource, count: number, chunkElements: number, cols: number, rowMapB: Int32Array | undefined, signal: AbortSignal): AsyncGenerator<[Float32Array, Float32Array]> {
  for (let at = 0; at < count; at += chunkElements) {
    throwIfAborted(signal);
    const n = Math.min(chunkElements, count - at);
    const va = await a.take(n);
    const vb = await b.take(n);
    if (!rowMapB) {
      yield [va, vb];
      continue;
    }
    // q/k projections (small): one chunk holds the whole tensor
    const reordered = new Float32Array(n);
    for (let r = 0; r < rowMapB.length; r++) reordered.set(vb.subarray(rowMapB[r] * cols, (rowMapB[r] + 1) * cols), r * cols);
    yield [va, reordered];
  }
}

class Range {
  lo = Infinity;
  hi = -Infinity;
  add(x: number): void {
    if (!Number.isFinite(x)) return;
    if (x < this.lo) this.lo = x;
    if (x > this.hi) this.hi = x;
  }
  get empty(): boolean {
    return this.lo > this.hi;
  }
}

class Histogram {
  readonly counts: Float64Array;
  private readonly scale: number;
  constructor(
    private readonly range: Range,
    bins: number,
  ) {
    this.counts = new Float64Array(bins);
    const width = range.hi - range.lo;
    this.scale = width > 0 ? bins / width : 0;
  }
  add(x: number): void {
    if (!Number.isFinite(x) || this.range.empty) return;
    const n = this.counts.length;
    const i = Math.min(n - 1, Math.max(0, Math.floor((x - this.range.lo) * this.scale)));
    this.counts[i]++;
  }
  result(): RangeHistogram {
    return this.range.empty ? { lo: null, hi: null, counts: [] } : { lo: this.range.lo, hi: this.range.hi, counts: Array.from(this.counts) };
  }
}

export async function runCompareTensorsJob(job: CompareTensorsJob, ctx: JobContext): Promise<CompareTensorsReply> {
  const bins = job.bins;
  if (bins !== undefined && !(Number.isInteger(bins) && bins >= 1 && bins <= MAX_HISTOGRAM_BINS)) {
    throw new QuantLensError('USAGE', `histogram bins must be an integer in [1, ${MAX_HISTOGRAM_BINS}], got ${bins}`);
  }
  const { model: ma, tensor: ta } = await workerTensor(job.a.path, job.a.tensor, ctx.signal);
  const { model: mb, tensor: tb } = await workerTensor(job.b.path, job.b.tensor, ctx.signal);
  if (ta.shape.join() !== tb.shape.join()) {
    throw new QuantLensError('SIZE_MISMATCH', `${ta.name} [${ta.shape}] and ${tb.name} [${tb.shape}] differ in shape`, { tensor: ta.name });
  }
  const count = elementCount(ta.shape);
  const { cols } = matrixShape(ta.shape);
  if (job.rowMapB && job.rowMapB.length * cols !== count) {
    throw new QuantLensError('SIZE_MISMATCH', `row map of ${job.rowMapB.length} rows for ${ta.name}`, { tensor: ta.name });
  }
  const chunkElements = chunkElementsOf(ta, tb, job.rowMapB !== undefined);
  const sa = await openSource(ctx, ma, ta, chunkElements);
  try {
    const sb = await openSource(ctx, mb, tb, chunkElements);
    try {
      return await compareValues(sa, sb, count, chunkElements, cols, job, ctx);
    } finally {
      await sb.close();
    }
  } finally {
    await sa.close();
  }
}

async function compareValues(sa: ValueSource, sb: ValueSource, count: number, chunkElements: number, cols: number, job: CompareTensorsJob, ctx: JobContext): Promise<CompareTensorsReply> {
  const bins = job.bins;
  const passes = bins === undefined ? 1 : 2;
  const total = count * passes;
  let done = 0;
  const chunks = () => pairedChunks(sa, sb, count, chunkElements, cols, job.rowMapB, ctx.signal);

  const acc = new ErrorAccumulator();
  const values = new Range();
  const errors = new Range();
  for await (const [a, b] of chunks()) {
    acc.add(a, b);
    if (bins !== undefined) {
      for (let i = 0; i < a.length; i++) {
        values.add(a[i]);
        values.add(b[i]);
        errors.add(b[i] - a[i]);
      }
    }
    ctx.progress((done += a.length), total);
  }
  const reply: CompareTensorsReply = acc.result();
  if (bins === undefined) return reply;

  sa.rewind();
  sb.rewind();
  const ha = new Histogram(values, bins);
  const hb = new Histogram(values, bins);
  const he = new Histogram(errors, bins);
  for await (const [a, b] of chunks()) {
    for (let i = 0; i < a.length; i++) {
      ha.add(a[i]);
      hb.add(b[i]);
      he.add(b[i] - a[i]);
    }
    ctx.progress((done += a.length), total);
  }
  reply.histograms = { a: ha.result(), b: hb.result(), error: he.result() };
  return reply;
}
