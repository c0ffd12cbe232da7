/**
 * The sensitivity sweep: for every quantizable tensor and every candidate format, the error of
 * quantizing and dequantizing it. Full (every row) or sampled: a deterministic stratified sample of
 * rows per tensor, whose relative MSE is a ratio estimate (Σ row errors ÷ Σ row norms) reported with
 * the half-width of its 95% interval. Results stream out tensor by tensor; the sweep is cancellable.
 */
import { DTYPES } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import { importanceFor, type ImportanceEntry, type ImportanceMatrix } from '../imatrix';
import { elementCount, type ModelInfo, type TensorInfo } from '../model';
import { describeTensor, isQuantCompanion } from '../names';
import { dequantizeBlocks, isDequantizable } from '../quant/dequant';
import { nodeFileAccess } from '../readers/node-files';
import type { FileAccess } from '../readers/types';
import { decodeToF32, isPlainDType } from '../stats/decode';
import { matrixShape, tensorRowsF32 } from '../tensor-rows';
import { readInto } from '../bytesource';
import { aggregateSensitivity, sqnrDbOf } from './aggregate';
import { GGUF_FALLBACK_CANDIDATES, defaultFormats, formatApplies, quantFormat, rowMultiple, type QuantFormat, type QuantTarget } from './formats';
import { twinOracle, type QuantErrorOracle, type RowErrors } from './quant-error';
import type { FormatError, SensitivityResult, SensitivitySettings, TensorSensitivity } from './types';

/** Values measured per tensor in a sampled sweep (whole rows, at least `MIN_SAMPLE_ROWS` of them). */
export const DEFAULT_SAMPLE_ELEMENTS = 1 << 17;
export const MIN_SAMPLE_ROWS = 16;
/** Rows measured per oracle call in a full sweep, bounding memory whatever the tensor's size. */
const FULL_CHUNK_ELEMENTS = 1 << 21;
/** Two-sided 95% normal quantile. */
const Z95 = 1.959964;

/** Student's t 97.5% quantile for `df` degrees of freedom (Cornish–Fisher expansion; within 0.2% for df ≥ 3). */
function t95(df: number): number {
  const z = Z95;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df * df);
}

export interface SweepProgress {
  tensorsDone: number;
  tensors: number;
  /** Units of work: values measured × formats measured on them. */
  workDone: number;
  workTotal: number;
}

export interface SweepOptions {
  /** What the model will be written as: GGUF types or safetensors schemes (default gguf). */
  target?: QuantTarget;
  /** Formats to measure (default: the target's candidates, GGUF fallbacks only where rows do not fit 256). */
  types?: string[];
  imatrix?: ImportanceMatrix | null;
  /** null: every row (full sweep). Default: sampled, about DEFAULT_SAMPLE_ELEMENTS values per tensor. */
  sampleElements?: number | null;
  seed?: number;
  oracle?: QuantErrorOracle;
  signal?: AbortSignal;
  onProgress?: (p: SweepProgress) => void;
  /** Called as each tensor's results are complete (in completion order). */
  onTensor?: (t: TensorSensitivity) => void;
  files?: FileAccess;
  /** Who measures the tensors (default: `oracleRunner(oracle)`, in this thread; the kernel pool: src/kernel/pool-sensitivity.ts). */
  runner?: SweepRunner;
}

/** One tensor of a sweep: what to measure, and the result its measurement fills (`errors`, `sampledRows`). */
export interface SweepTensor {
  tensor: TensorInfo;
  rows: number;
  cols: number;
  formats: QuantFormat[];
  /** Sorted row indices to measure; null = all. */
  sample: Int32Array | null;
  importance: ImportanceEntry | undefined;
  /** Values measured × formats. */
  work: number;
  result: TensorSensitivity;
}

export interface SweepRunnerHooks {
  signal?: AbortSignal;
  /** Units of work done since the last call. */
  onWork(work: number): void;
  /** A tensor's `result` is complete. */
  onTensor(t: SweepTensor): void;
}

/** Measures the sweep's tensors (largest first), filling each one's `result`. */
export type SweepRunner = (model: ModelInfo, tensors: readonly SweepTensor[], hooks: SweepRunnerHooks) => Promise<void>;

/** The settings a sweep's results depend on (the cache key's content). */
export function sweepSettings(options: SweepOptions, imatrixIdentity: SensitivitySettings['imatrix'] = null): SensitivitySettings {
  const target = options.target ?? 'gguf';
  const types = (options.types ?? defaultFormats(target).map((f) => f.name)).map((t) => quantFormat(t, target).name);
  return {
    target,
    types,
    mode: options.imatrix ? 'imatrix' : 'weights',
    sampleElements: options.sampleElements === null ? null : (options.sampleElements ?? DEFAULT_SAMPLE_ELEMENTS),
    seed: options.seed ?? 0,
    imatrix: imatrixIdentity,
  };
}

/** Measures every tensor of `model`. */
export async function sweepSensitivity(model: ModelInfo, options: SweepOptions = {}, imatrixIdentity: SensitivitySettings['imatrix'] = null): Promise<SensitivityResult> {
  const started = performance.now();
  const settings = sweepSettings(options, imatrixIdentity);
  const formats = settings.types.map((t) => quantFormat(t, settings.target));
  const explicit = options.types !== undefined;
  const runner = options.runner ?? oracleRunner(options.oracle ?? twinOracle, options.files ?? nodeFileAccess);
  const imatrixMissing: string[] = [];

  const results: TensorSensitivity[] = [];
  const jobs: SweepTensor[] = [];
  for (const t of model.tensors) {
    if (isQuantCompanion(t.name)) continue;
    const { rows, cols } = matrixShape(t.shape);
    const params = elementCount(t.shape);
    const d = describeTensor(t.name);
    const decodable = DTYPES[t.dtype].kind === 'float' || isDequantizable(t.dtype);
    const applicable = decodable && t.shape.length >= 2 ? candidatesFor(t.shape, formats, explicit) : [];
    const errors: Record<string, FormatError | null> = {};
    for (const f of formats) errors[f.name] = null;
    const result: TensorSensitivity = {
      name: t.name,
      params,
      layer: d.layer,
      role: d.role,
      shape: t.shape,
      dtype: t.dtype,
      keptBytes: (params / DTYPES[t.dtype].blockSize) * DTYPES[t.dtype].bytesPerBlock,
      quantizable: applicable.length > 0,
      sampledRows: 0,
      rows,
      errors,
    };
    results.push(result);
    if (applicable.length === 0) continue;
    let importance = options.imatrix ? importanceFor(options.imatrix, t.name) : undefined;
    if (options.imatrix && (!importance || importance.columns !== cols || rows % importance.matrices !== 0)) {
      imatrixMissing.push(t.name);
      importance = undefined;
    }
    const sample = settings.sampleElements === null || applicable.some(spansRows) ? null : sampleRows(t.name, settings.seed, rows, cols, settings.sampleElements);
    const measured = sample ? sample.length : rows;
    jobs.push({ tensor: t, rows, cols, formats: applicable, sample, importance, work: measured * cols * applicable.length, result });
  }

  const progress: SweepProgress = { tensorsDone: 0, tensors: jobs.length, workDone: 0, workTotal: jobs.reduce((s, j) => s + j.work, 0) };
  options.onProgress?.({ ...progress });
  // Largest first so the lanes finish together.
  const order = [...jobs].sort((a, b) => b.work - a.work);
  throwIfAborted(options.signal);
  await runner(model, order, {
    signal: options.signal,
    onWork: (work) => {
      progress.workDone += work;
      options.onProgress?.({ ...progress });
    },
    onTensor: (t) => {
      progress.tensorsDone++;
      options.onProgress?.({ ...progress });
      options.onTensor?.(t.result);
    },
  });

  return {
    mode: settings.mode,
    target: settings.target,
    types: settings.types,
    settings,
    tensors: results,
    ...aggregateSensitivity(results, settings.types),
    imatrixMissing,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Measures tensors in this thread through `oracle`, a few at a time (the oracle's parallelism × 2). */
export function oracleRunner(oracle: QuantErrorOracle, files: FileAccess = nodeFileAccess): SweepRunner {
  return async (model, tensors, hooks) => {
    let next = 0;
    let failed = false;
    const lane = async (): Promise<void> => {
      while (next < tensors.length && !failed) {
        throwIfAborted(hooks.signal);
        const t = tensors[next++];
        try {
          await measureTensor(model, t, oracle, files, hooks.signal, hooks.onWork);
        } catch (err) {
          failed = true; // the other lanes stop taking tensors
          throw err;
        }
        hooks.onTensor(t);
      }
    };
    const lanes = Math.max(1, Math.min(tensors.length, oracle.parallelism * 2));
    await Promise.all(Array.from({ length: lanes }, lane));
  };
}

/** Formats measured on a tensor: those that apply; the GGUF fallback types only where no 256-block type fits (unless asked for). */
function candidatesFor(shape: readonly number[], formats: readonly QuantFormat[], explicit: boolean): QuantFormat[] {
  const applies = formats.filter((f) => formatApplies(f, shape));
  if (explicit) return applies;
  const fallbacks = new Set<string>(GGUF_FALLBACK_CANDIDATES);
  const kQuantFits = applies.some((f) => f.target === 'gguf' && !fallbacks.has(f.name) && rowMultiple(f) === 256);
  return applies.filter((f) => !(kQuantFits && fallbacks.has(f.name)));
}

/** A scale shared across rows (per-tensor schemes) makes a row sample biased: such formats measure every row. */
function spansRows(f: QuantFormat): boolean {
  return f.target === 'safetensors' && f.scheme.kind !== 'nf4' && f.scheme.granularity.kind === 'tensor';
}

/** FNV-1a of the name, mixed with the seed. */
function hashName(name: string, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * One row from each of k equal strata, at a position drawn from a hash of the tensor's name and the
 * seed: deterministic, spread over the whole tensor, and the same whoever asks.
 */
export function sampleRows(name: string, seed: number, rows: number, cols: number, elements: number): Int32Array {
  const k = Math.min(rows, Math.max(MIN_SAMPLE_ROWS, Math.ceil(elements / Math.max(1, cols))));
  const out = new Int32Array(k);
  let state = hashName(name, seed) || 1;
  for (let i = 0; i < k; i++) {
    // xorshift32
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const lo = Math.floor((i * rows) / k);
    const hi = Math.floor(((i + 1) * rows) / k);
    out[i] = lo + ((state >>> 0) % (hi - lo));
  }
  return out;
}

/** Rows of a tensor as f32, in chunks of consecutive sample positions. */
async function* readRows(model: ModelInfo, job: SweepTensor, files: FileAccess, signal: AbortSignal | undefined): AsyncGenerator<{ rows: Int32Array; values: Float32Array }> {
  const { tensor, cols, sample } = job;
  const chunkRows = Math.max(1, Math.floor(FULL_CHUNK_ELEMENTS / Math.max(1, cols)));
  if (sample === null || tensor.encoding !== 'raw') {
    // Stream the tensor; keep every row (full sweep) or only the sampled ones.
    let s = 0;
    for await (const chunk of tensorRowsF32(model, tensor, files, { maxElements: FULL_CHUNK_ELEMENTS, signal })) {
      if (sample === null) {
        yield { rows: Int32Array.from({ length: chunk.rows }, (_, i) => chunk.row + i), values: chunk.values };
        continue;
      }
      const picked: number[] = [];
      while (s < sample.length && sample[s] < chunk.row + chunk.rows) picked.push(sample[s++]);
      if (picked.length === 0) continue;
      const values = new Float32Array(picked.length * cols);
      picked.forEach((r, i) => values.set(chunk.values.subarray((r - chunk.row) * cols, (r - chunk.row + 1) * cols), i * cols));
      yield { rows: Int32Array.from(picked), values };
    }
    return;
  }
  const traits = DTYPES[tensor.dtype];
  const rowBytes = (cols / traits.blockSize) * traits.bytesPerBlock;
  const src = await files.open(tensor.file);
  try {
    for (let start = 0; start < sample.length; start += chunkRows) {
      throwIfAborted(signal);
      const rows = sample.subarray(start, Math.min(sample.length, start + chunkRows));
      const bytes = new Uint8Array(rows.length * rowBytes);
      for (let i = 0; i < rows.length; i++) {
        await readInto(src, tensor.byteOffset + rows[i] * rowBytes, bytes.subarray(i * rowBytes, (i + 1) * rowBytes), tensor.name);
      }
      yield { rows: Int32Array.from(rows), values: decodeRows(tensor, bytes, rows.length * cols) };
    }
  } finally {
    await src.close();
  }
}

function decodeRows(tensor: TensorInfo, bytes: Uint8Array, count: number): Float32Array {
  if (isPlainDType(tensor.dtype)) return decodeToF32(tensor.dtype, bytes);
  const out = new Float32Array(count);
  dequantizeBlocks(tensor.dtype, bytes, out);
  return out;
}

/** Running sums of one format over the measured rows, for the ratio estimate and its variance. */
interface FormatSums {
  err: number;
  errSq: number;
  errNorm: number;
  maxAbsErr: number;
}

/** Measures one tensor's rows (all, or its sample) at each of its formats and fills `job.result`. */
export async function measureTensor(
  model: ModelInfo,
  job: SweepTensor,
  oracle: QuantErrorOracle,
  files: FileAccess,
  signal: AbortSignal | undefined,
  onWork: (work: number) => void,
): Promise<void> {
  const { cols, formats, importance, result } = job;
  const rowsPerMatrix = importance ? job.rows / importance.matrices : job.rows;
  const sums: FormatSums[] = formats.map(() => ({ err: 0, errSq: 0, errNorm: 0, maxAbsErr: 0 }));
  let norm = 0;
  let normSq = 0;
  let measured = 0;
  try {
    for await (const chunk of readRows(model, job, files, signal)) {
      // Rows of different experts (3-D tensors) take different importance weights: measure each run separately.
      for (let a = 0; a < chunk.rows.length; ) {
        const matrix = Math.floor(chunk.rows[a] / rowsPerMatrix);
        let b = a + 1;
        while (b < chunk.rows.length && Math.floor(chunk.rows[b] / rowsPerMatrix) === matrix) b++;
        const weights = importance ? importance.weights.subarray(matrix * cols, (matrix + 1) * cols) : undefined;
        const values = chunk.values.subarray(a * cols, b * cols);
        const n = b - a;
        const rowNorms = weightedRowNorms(values, n, cols, weights);
        const errs: RowErrors[] = await oracle.measure(values, n, cols, formats, weights, signal);
        for (let r = 0; r < n; r++) {
          norm += rowNorms[r];
          normSq += rowNorms[r] * rowNorms[r];
          errs.forEach((e, f) => {
            const s = sums[f];
            s.err += e.sqErr[r];
            s.errSq += e.sqErr[r] * e.sqErr[r];
            s.errNorm += e.sqErr[r] * rowNorms[r];
          });
        }
        errs.forEach((e, f) => (sums[f].maxAbsErr = Math.max(sums[f].maxAbsErr, e.maxAbsErr)));
        measured += n;
        onWork(n * cols * formats.length);
        a = b;
      }
    }
  } catch (err) {
    if (err instanceof QuantLensError && err.tensor === undefined) throw new QuantLensError(err.code, err.message, { tensor: job.tensor.name, file: err.file, cause: err });
    throw err;
  }
  result.sampledRows = measured;
  formats.forEach((f, i) => {
    const s = sums[i];
    const relMse = norm > 0 ? s.err / norm : 0;
    result.errors[f.name] = {
      relMse,
      sqnrDb: sqnrDbOf(relMse),
      maxAbsErr: s.maxAbsErr,
      relMseBound: job.sample === null ? 0 : ratioHalfWidth(s, norm, normSq, relMse, measured, job.rows),
    };
  });
}

/**
 * 95% half-width of the ratio estimate R = Σe/Σn from k of N rows (Cochran, Sampling Techniques, §6.4):
 * Var(R) ≈ (1 − k/N) · Σ(e − R n)² / ((k − 1) · k · n̄²), with Student's t for the few rows sampled.
 */
function ratioHalfWidth(s: FormatSums, norm: number, normSq: number, r: number, k: number, total: number): number {
  if (k >= total) return 0;
  if (k < 2 || norm <= 0) return r;
  const residualSq = Math.max(0, s.errSq - 2 * r * s.errNorm + r * r * normSq);
  const meanNorm = norm / k;
  const variance = ((1 - k / total) * residualSq) / ((k - 1) * k * meanNorm * meanNorm);
  return t95(k - 1) * Math.sqrt(variance);
}

function weightedRowNorms(values: Float32Array, rows: number, cols: number, weights: Float32Array | undefined): Float64Array {
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0, o = r * cols; j < cols; j++) {
      const v = values[o + j];
      if (Number.isFinite(v)) s += weights ? weights[j] * v * v : v * v;
    }
    out[r] = s;
  }
  return out;
}
