/**
 * Tensor statistics and histograms: the definitions, and the plain TypeScript twin of the kernel
 * (src/kernel/assembly/stats.ts, histogram.ts). Everything runs over the finite values, in f64.
 *
 * Two ways to the same numbers, chosen by dtype and size (`statsPathOf`):
 * - Code table (8- and 16-bit types, but for small tensors): count how often each code occurs, then derive every statistic
 *   and any histogram from the table (`statsFromCodeTable`). Counting is exact integer work, so the
 *   result does not depend on element order, chunking or the number of workers, and the kernel and
 *   the twin share the derivation.
 * - Lanes (F32 and dequantized block types over f32 values; F64 and 32/64-bit integers over f64
 *   values): three passes. The summation order is part of the definition, so the kernel's SIMD
 *   and this twin give the same bits:
 *     lane k (k = 0..3) accumulates the elements whose index i (in the whole tensor) has i mod 4 = k,
 *     in increasing i, each lane sum starting at +0; non-finite elements add nothing;
 *     a total is (lane0 + lane1) + (lane2 + lane3).
 *   Pass 1 (`scanValues`): lane sums of v, min, max, finite count, zero count.
 *   Pass 2 (`momentsValues`): with d = v − mean (f64), lane sums of d·d and (d·d)·(d·d), and the histogram.
 *   Pass 3 (`outlierValues`): count of finite v with |v − mean| > 6·std.
 *   The kernel keeps lane sums in memory between calls, so any chunking that starts chunks at a
 *   multiple of 4 elements gives the same result.
 *
 * Histogram: numpy's rule (numpy/lib/_histograms_impl.py, equal bins, range given): the range is
 * [min, max] of the finite values, widened to [v − 0.5, v + 0.5] when min = max; edges are
 * `linspace(lo, hi, N + 1)`; index = trunc(((v − lo) / (hi − lo)) · N), N → N − 1, then
 * decremented when v < edge[i] or incremented when v ≥ edge[i + 1] (not in the last bin).
 */
import type { DType } from '../dtypes';
import { codeValue, type PlainDType, type WideDType } from './decode';

/** The summary half of a tensor's statistics; every value but the counts is null without a finite value. */
export interface StatsSummary {
  count: number;
  finite: number;
  nonFinite: number;
  zeros: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
  absMax: number | null;
  /** Excess (Fisher) kurtosis m4 / m2² − 3; null for a constant tensor. */
  kurtosis: number | null;
  /** Share of the finite values with |v − mean| > 6σ. */
  outlierShare: number | null;
}

export interface Histogram {
  /** The range the bins cover (numpy's: [v − 0.5, v + 0.5] for a constant tensor); null without a finite value. */
  min: number | null;
  max: number | null;
  counts: number[];
}

export interface TensorStats extends StatsSummary {
  histogram: Histogram;
}

export const DEFAULT_HISTOGRAM_BINS = 256;
/** |v − mean| beyond this many standard deviations counts as an outlier. */
export const OUTLIER_SIGMAS = 6;

/** How a dtype's statistics are computed (see the file comment). */
export type StatsPath = 'codes16' | 'codes8' | 'f32' | 'f64';

/**
 * Below these element counts an 8- or 16-bit tensor takes the lanes instead: clearing and reading
 * 65,536 (or 256) counters costs more than the values themselves (a model of 100,000 small tensors).
 */
export const CODE_TABLE_MIN_ELEMENTS = { codes16: 1 << 14, codes8: 1 << 6 } as const;

/** The path of a tensor of `count` elements of `dtype`. */
export function statsPathOf(dtype: DType, count: number): StatsPath {
  const table = codeTableOf(dtype);
  if (table === 'codes16' || table === 'codes8') return count >= CODE_TABLE_MIN_ELEMENTS[table] ? table : 'f32';
  return table;
}

function codeTableOf(dtype: DType): StatsPath {
  switch (dtype) {
    case 'F16':
    case 'BF16':
    case 'I16':
    case 'U16':
      return 'codes16';
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'I8':
    case 'U8':
    case 'BOOL':
      return 'codes8';
    case 'F64':
    case 'I64':
    case 'I32':
    case 'U64':
    case 'U32':
      return 'f64';
    default:
      return 'f32';
  }
}

export type CodeDType = Exclude<PlainDType, 'F32' | WideDType>;

// ---------------------------------------------------------------------------------------------
// Histogram rule (shared by every path, and by the kernel through `histogramEdges`)

/** numpy's outer edges: [min, max], or [v − 0.5, v + 0.5] for a constant. */
export function histogramRange(min: number, max: number): [number, number] {
  return min === max ? [min - 0.5, max + 0.5] : [min, max];
}

/** numpy `linspace(lo, hi, bins + 1)` in f64: i · step + lo, the last edge exactly hi (step = 0: (i / bins) · Δ + lo). */
export function histogramEdges(lo: number, hi: number, bins: number): Float64Array {
  const edges = new Float64Array(bins + 1);
  const delta = hi - lo;
  const step = delta / bins;
  for (let i = 0; i <= bins; i++) edges[i] = (step === 0 ? (i / bins) * delta : i * step) + lo;
  edges[bins] = hi;
  return edges;
}

/** The bin of finite `v` in [lo, hi] (numpy's rule, see the file comment). */
export function binOf(v: number, lo: number, denom: number, bins: number, edges: Float64Array): number {
  const f = ((v - lo) / denom) * bins;
  // f is in [0, bins] unless the range overflows f64 (F64 data near ±1.8e308): then NaN or ±Inf, clamped
  let i = f >= 0 ? (f < bins ? Math.trunc(f) : bins - 1) : 0;
  if (v < edges[i]!) i--;
  else if (i !== bins - 1 && v >= edges[i + 1]!) i++;
  return i;
}

// ---------------------------------------------------------------------------------------------
// Lane passes (reference for the kernel's statsScan*, statsMoments*, statsOutliers*)

export interface ScanState {
  /** Lane sums of v. */
  sums: [number, number, number, number];
  min: number;
  max: number;
  finite: number;
  zeros: number;
}

export interface MomentState {
  /** Lane sums of d², d⁴ (d = v − mean). */
  m2: [number, number, number, number];
  m4: [number, number, number, number];
}

export function newScanState(): ScanState {
  return { sums: [0, 0, 0, 0], min: Infinity, max: -Infinity, finite: 0, zeros: 0 };
}

export function newMomentState(): MomentState {
  return { m2: [0, 0, 0, 0], m4: [0, 0, 0, 0] };
}

type Values = Float32Array | Float64Array;

/** Pass 1 over `values`, whose first element has tensor index `start` (a multiple of 4 when chunked). */
export function scanValues(values: Values, state: ScanState, start = 0): void {
  for (let j = 0; j < values.length; j++) {
    const v = values[j]!;
    if (!Number.isFinite(v)) continue;
    state.sums[(start + j) & 3] += v;
    state.min = Math.min(state.min, v);
    state.max = Math.max(state.max, v);
    state.finite++;
    if (v === 0) state.zeros++;
  }
}

/** The parameters pass 2 and 3 need from pass 1. */
export interface SecondPass {
  mean: number;
  lo: number;
  hi: number;
  denom: number;
  bins: number;
  edges: Float64Array;
}

export function secondPassOf(scan: ScanState, bins: number): SecondPass {
  const mean = laneTotal(scan.sums) / scan.finite;
  const [lo, hi] = histogramRange(scan.min, scan.max);
  return { mean, lo, hi, denom: hi - lo, bins, edges: histogramEdges(lo, hi, bins) };
}

/** Pass 2: central moments and histogram counts (added into `counts`). */
export function momentsValues(values: Values, p: SecondPass, state: MomentState, counts: Float64Array, start = 0): void {
  for (let j = 0; j < values.length; j++) {
    const v = values[j]!;
    if (!Number.isFinite(v)) continue;
    const d = v - p.mean;
    const d2 = d * d;
    const lane = (start + j) & 3;
    state.m2[lane] += d2;
    state.m4[lane] += d2 * d2;
    counts[binOf(v, p.lo, p.denom, p.bins, p.edges)]++;
  }
}

/** Pass 3: how many finite values lie further than `threshold` from `mean`. */
export function outlierValues(values: Values, mean: number, threshold: number): number {
  let n = 0;
  for (let j = 0; j < values.length; j++) {
    const v = values[j]!;
    if (Number.isFinite(v) && Math.abs(v - mean) > threshold) n++;
  }
  return n;
}

export function laneTotal(l: readonly number[]): number {
  return l[0]! + l[1]! + (l[2]! + l[3]!);
}

/** Standard deviation from pass 2 (population). */
export function stdOf(scan: ScanState, moments: MomentState): number {
  return Math.sqrt(laneTotal(moments.m2) / scan.finite);
}

/** The statistics of a tensor with no finite value. */
export function emptyStats(count: number, bins: number): TensorStats {
  return {
    count,
    finite: 0,
    nonFinite: count,
    zeros: 0,
    min: null,
    max: null,
    mean: null,
    std: null,
    absMax: null,
    kurtosis: null,
    outlierShare: null,
    histogram: { min: null, max: null, counts: new Array<number>(bins).fill(0) },
  };
}

/** Assembles the three passes' results. */
export function finishLaneStats(count: number, scan: ScanState, p: SecondPass, moments: MomentState, outliers: number, counts: Float64Array): TensorStats {
  const n = scan.finite;
  const variance = laneTotal(moments.m2) / n;
  const m4 = laneTotal(moments.m4) / n;
  return {
    count,
    finite: n,
    nonFinite: count - n,
    zeros: scan.zeros,
    min: scan.min,
    max: scan.max,
    mean: p.mean,
    std: Math.sqrt(variance),
    absMax: Math.max(Math.abs(scan.min), Math.abs(scan.max)),
    kurtosis: variance === 0 ? null : m4 / (variance * variance) - 3,
    outlierShare: outliers / n,
    histogram: { min: p.lo, max: p.hi, counts: Array.from(counts) },
  };
}

/** Statistics of f32 or f64 values held in memory, by the three lane passes (the reference for the kernel). */
export function laneStats(values: Values, bins = DEFAULT_HISTOGRAM_BINS): TensorStats {
  const scan = newScanState();
  scanValues(values, scan);
  if (scan.finite === 0) return emptyStats(values.length, bins);
  const p = secondPassOf(scan, bins);
  const moments = newMomentState();
  const counts = new Float64Array(bins);
  momentsValues(values, p, moments, counts);
  const outliers = outlierValues(values, p.mean, OUTLIER_SIGMAS * stdOf(scan, moments));
  return finishLaneStats(values.length, scan, p, moments, outliers, counts);
}

// ---------------------------------------------------------------------------------------------
// Code tables

/** Number of codes of a code-table dtype. */
export function codeCount(dtype: CodeDType): number {
  return codeTableOf(dtype) === 'codes16' ? 65536 : 256;
}

/** Counts codes of little-endian 8/16-bit elements into `table` (reference for the kernel's countCodes*). */
export function countCodes(dtype: CodeDType, bytes: Uint8Array, table: Float64Array | Uint32Array): void {
  if (codeCount(dtype) === 256) {
    for (let i = 0; i < bytes.length; i++) table[bytes[i]!]++;
  } else {
    for (let i = 0; i + 1 < bytes.length; i += 2) table[bytes[i]! | (bytes[i + 1]! << 8)]++;
  }
}

const codeValueTables = new Map<CodeDType, Float32Array>();

/** The value of every code of `dtype`, computed once. */
function codeValues(dtype: CodeDType): Float32Array {
  let values = codeValueTables.get(dtype);
  if (!values) {
    values = new Float32Array(codeCount(dtype));
    for (let code = 0; code < values.length; code++) values[code] = codeValue(dtype, code);
    codeValueTables.set(dtype, values);
  }
  return values;
}

/**
 * Statistics from a code table. Codes are visited in increasing code order, each finite code with
 * count c contributing c·v to the sum, c·d² and c·(d²·d²) to the moments, c to its bin.
 */
export function statsFromCodeTable(dtype: CodeDType, table: ArrayLike<number>, bins = DEFAULT_HISTOGRAM_BINS): TensorStats {
  const valueOf = codeValues(dtype);
  const used = new Int32Array(valueOf.length);
  let nUsed = 0;
  let count = 0;
  let finite = 0;
  let zeros = 0;
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let code = 0; code < valueOf.length; code++) {
    const c = table[code]!;
    if (c === 0) continue;
    count += c;
    const v = valueOf[code]!;
    if (!Number.isFinite(v)) continue;
    used[nUsed++] = code;
    finite += c;
    if (v === 0) zeros += c;
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += c * v;
  }
  if (finite === 0) return emptyStats(count, bins);
  const mean = sum / finite;
  let m2 = 0;
  let m4 = 0;
  for (let j = 0; j < nUsed; j++) {
    const code = used[j]!;
    const c = table[code]!;
    const d = valueOf[code]! - mean;
    const d2 = d * d;
    m2 += c * d2;
    m4 += c * (d2 * d2);
  }
  const variance = m2 / finite;
  const std = Math.sqrt(variance);
  const threshold = OUTLIER_SIGMAS * std;
  const [lo, hi] = histogramRange(min, max);
  const edges = histogramEdges(lo, hi, bins);
  const hist = new Array<number>(bins).fill(0);
  let outliers = 0;
  for (let j = 0; j < nUsed; j++) {
    const code = used[j]!;
    const c = table[code]!;
    const v = valueOf[code]!;
    if (Math.abs(v - mean) > threshold) outliers += c;
    hist[binOf(v, lo, hi - lo, bins, edges)] += c;
  }
  return {
    count,
    finite,
    nonFinite: count - finite,
    zeros,
    min,
    max,
    mean,
    std,
    absMax: Math.max(Math.abs(min), Math.abs(max)),
    kurtosis: variance === 0 ? null : m4 / finite / (variance * variance) - 3,
    outlierShare: outliers / finite,
    histogram: { min: lo, max: hi, counts: hist },
  };
}
