/**
 * Worker side of the `compareTensors` job: one matched pair of tensors of two checkpoints, read,
 * decoded or dequantized to f32 and compared in the worker (the comparison view's rows), and on
 * request (a second pass) the two value histograms over a shared range and the histogram of the error b − a.
 * Each worker keeps the last few models it opened, so a comparison opens each file once per worker.
 */
import { stat } from 'node:fs/promises';
import { ErrorAccumulator, type TensorError } from '../core/compare';
import { QuantLensError, throwIfAborted } from '../core/errors';
import { MAX_HISTOGRAM_BINS } from '../core/limits';
import type { ModelInfo, TensorInfo } from '../core/model';
import { openModel } from '../core/readers';
import { nodeFileAccess } from '../core/readers/node-files';
import { matrixShape, tensorRowsF32 } from '../core/tensor-rows';
import type { JobContext } from './jobs';

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

/** Models opened by this worker, most recent last; keyed by path, checked against size and mtime. */
const MODEL_CACHE_SIZE = 4;
const models: Array<{ path: string; size: number; mtimeMs: number; model: ModelInfo }> = [];

async function cachedModel(path: string, signal: AbortSignal): Promise<ModelInfo> {
  const s = await stat(path).catch((err: Error) => {
    throw new QuantLensError('IO', `cannot open ${path}: ${err.message}`, { file: path, cause: err });
  });
  const i = models.findIndex((m) => m.path === path);
  if (i >= 0) {
    const [hit] = models.splice(i, 1);
    if (hit.size === s.size && hit.mtimeMs === s.mtimeMs) {
      models.push(hit);
      return hit.model;
    }
  }
  const model = await openModel(path, { signal });
  models.push({ path, size: s.size, mtimeMs: s.mtimeMs, model });
  if (models.length > MODEL_CACHE_SIZE) models.shift();
  return model;
}

function tensorOf(model: ModelInfo, name: string, path: string): TensorInfo {
  const t = model.tensors.find((x) => x.name === name);
  if (!t) throw new QuantLensError('TENSOR_NOT_FOUND', `no tensor ${name} in ${path}`, { tensor: name, file: path });
  return t;
}

/** Aligned chunks of both tensors' values (b's rows reordered when a row map is given). */
async function* pairedChunks(
  ma: ModelInfo, ta: TensorInfo, mb: ModelInfo, tb: TensorInfo, rowMapB: Int32Array | undefined, signal: AbortSignal,
): AsyncGenerator<[Float32Array, Float32Array]> {
  const files = nodeFileAccess;
  if (rowMapB) {
    // a permutation needs whole tensors (q/k projections: small)
    const va = await collect(tensorRowsF32(ma, ta, files, { signal, maxElements: Infinity }));
    const vb = await collect(tensorRowsF32(mb, tb, files, { signal, maxElements: Infinity }));
    const { cols } = matrixShape(ta.shape);
    if (rowMapB.length * cols !== va.length) throw new QuantLensError('SIZE_MISMATCH', `row map of ${rowMapB.length} rows for ${ta.name}`, { tensor: ta.name });
    const reordered = new Float32Array(vb.length);
    for (let r = 0; r < rowMapB.length; r++) reordered.set(vb.subarray(rowMapB[r] * cols, (rowMapB[r] + 1) * cols), r * cols);
    yield [va, reordered];
    return;
  }
  const ia = tensorRowsF32(ma, ta, files, { signal });
  const ib = tensorRowsF32(mb, tb, files, { signal });
  // same shape on both sides: chunks of the same row count line up
  for (;;) {
    throwIfAborted(signal);
    const [ca, cb] = await Promise.all([ia.next(), ib.next()]);
    if (ca.done || cb.done) return;
    yield [ca.value.values, cb.value.values];
  }
}

async function collect(it: AsyncGenerator<{ values: Float32Array }>): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for await (const c of it) parts.push(c.values);
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
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
  const ma = await cachedModel(job.a.path, ctx.signal);
  const mb = await cachedModel(job.b.path, ctx.signal);
  const ta = tensorOf(ma, job.a.tensor, job.a.path);
  const tb = tensorOf(mb, job.b.tensor, job.b.path);
  if (ta.shape.join() !== tb.shape.join()) {
    throw new QuantLensError('SIZE_MISMATCH', `${ta.name} [${ta.shape}] and ${tb.name} [${tb.shape}] differ in shape`, { tensor: ta.name });
  }
  const passes = bins === undefined ? 1 : 2;
  const total = ta.shape.reduce((s, d) => s * d, 1) * passes;
  let done = 0;
  const chunks = () => pairedChunks(ma, ta, mb, tb, job.rowMapB, ctx.signal);

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
