/**
 * Statistics of activations merged across calibration samples, in two passes over the samples
 * (each pass runs the model again; activations are never stored):
 * - scan: per activation, the lane passes' first state (stats.ts `scanValues`: sum, min, max, finite
 *   and zero counts) over the samples' values as one tensor in sample order, plus Σv² and, for the
 *   inputs of Conv/MatMul/Gemm, the absmax of every channel;
 * - moments: with the merged scan, stats.ts' second pass (central moments, the numpy-rule histogram
 *   over the merged [min, max]) and the outlier count.
 * One worker and samples in order give exactly `laneStats` of the concatenated samples, except the
 * outlier share, whose σ comes from the scan (√(Σv²/n − mean²)) rather than a third pass: the two
 * agree to rounding. Several workers merge their lane sums in worker order.
 */
import {
  binOf, emptyStats, finishLaneStats, histogramEdges, histogramRange, laneTotal, momentsValues, newMomentState, newScanState,
  OUTLIER_SIGMAS, scanValues, type MomentState, type ScanState, type TensorStats,
} from '../stats/stats';

export interface ScanAccumulator {
  /** dims of the first sample's value; `variableShape` when later samples differ */
  dims: number[];
  variableShape: boolean;
  /** elements seen (all samples) */
  elements: number;
  scan: ScanState;
  sumSquares: number;
  /** the channel axis (resolved, ≥ 0) and each channel's absmax, for inputs of Conv/MatMul/Gemm */
  channelAxis?: number;
  channelAbsMax?: Float32Array;
}

export function newScanAccumulator(): ScanAccumulator {
  return { dims: [], variableShape: false, elements: 0, scan: newScanState(), sumSquares: 0 };
}

/**
 * Adds one sample's value. `channelAxis` (negative counts from the end) asks for per-channel absmax;
 * a sample whose channel count differs from the first one's leaves the channel profile as it was.
 */
export function scanActivation(acc: ScanAccumulator, values: Float32Array, dims: readonly number[], channelAxis?: number): void {
  if (acc.elements === 0) acc.dims = [...dims];
  else if (acc.dims.length !== dims.length || acc.dims.some((d, i) => d !== dims[i])) acc.variableShape = true;
  // lane k takes the elements whose index in the concatenation is k mod 4 (stats.ts file comment)
  scanValues(values, acc.scan, acc.elements);
  let sq = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isFinite(v)) sq += v * v;
  }
  acc.sumSquares += sq;
  acc.elements += values.length;
  if (channelAxis !== undefined && dims.length > 0) {
    const axis = channelAxis < 0 ? dims.length + channelAxis : channelAxis;
    if (axis < 0 || axis >= dims.length) return;
    const channels = dims[axis]!;
    if (acc.channelAbsMax && (acc.channelAxis !== axis || acc.channelAbsMax.length !== channels)) return;
    acc.channelAxis = axis;
    const absMax = (acc.channelAbsMax ??= new Float32Array(channels));
    let inner = 1;
    for (let i = axis + 1; i < dims.length; i++) inner *= dims[i]!;
    const outer = channels * inner === 0 ? 0 : values.length / (channels * inner);
    let j = 0;
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) {
        let m = absMax[c]!;
        for (let k = 0; k < inner; k++, j++) {
          const a = Math.abs(values[j]!);
          if (a > m) m = a; // NaN compares false: skipped
        }
        absMax[c] = m;
      }
    }
  }
}

/** Merges `b` into `a` (a from an earlier part of the sample order). */
export function mergeScans(a: ScanAccumulator, b: ScanAccumulator): ScanAccumulator {
  if (b.elements === 0) return a;
  if (a.elements === 0) return b;
  const scan = a.scan;
  for (let k = 0; k < 4; k++) scan.sums[k] = scan.sums[k]! + b.scan.sums[k]!;
  scan.min = Math.min(scan.min, b.scan.min);
  scan.max = Math.max(scan.max, b.scan.max);
  scan.finite += b.scan.finite;
  scan.zeros += b.scan.zeros;
  a.sumSquares += b.sumSquares;
  a.elements += b.elements;
  a.variableShape ||= b.variableShape || a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i]);
  if (b.channelAbsMax) {
    if (!a.channelAbsMax) {
      a.channelAbsMax = b.channelAbsMax;
      a.channelAxis = b.channelAxis;
    } else if (a.channelAbsMax.length === b.channelAbsMax.length && a.channelAxis === b.channelAxis) {
      for (let c = 0; c < a.channelAbsMax.length; c++) a.channelAbsMax[c] = Math.max(a.channelAbsMax[c]!, b.channelAbsMax[c]!);
    }
  }
  return a;
}

/** What the moments pass needs from the merged scan. */
export interface MomentParams {
  mean: number;
  /** √(Σv²/n − mean²), for the outlier threshold */
  sigma: number;
  lo: number;
  hi: number;
  bins: number;
  /** a finer histogram over the same range for range calibration (percentile, MSE); 0: none */
  rangeBins: number;
}

export function momentParams(acc: ScanAccumulator, bins: number, rangeBins: number): MomentParams | undefined {
  const n = acc.scan.finite;
  if (n === 0) return undefined;
  const mean = laneTotal(acc.scan.sums) / n;
  const [lo, hi] = histogramRange(acc.scan.min, acc.scan.max);
  return { mean, sigma: Math.sqrt(Math.max(0, acc.sumSquares / n - mean * mean)), lo, hi, bins, rangeBins };
}

export interface MomentAccumulator {
  moments: MomentState;
  counts: Float64Array;
  rangeCounts?: Float64Array;
  outliers: number;
}

export function newMomentAccumulator(p: MomentParams): MomentAccumulator {
  return {
    moments: newMomentState(),
    counts: new Float64Array(p.bins),
    outliers: 0,
    ...(p.rangeBins > 0 ? { rangeCounts: new Float64Array(p.rangeBins) } : {}),
  };
}

const edgeCache = new WeakMap<MomentParams, { edges: Float64Array; rangeEdges?: Float64Array }>();

/** Adds one sample's value; `start` is the index of its first element in the concatenation. */
export function momentsActivation(acc: MomentAccumulator, p: MomentParams, values: Float32Array, start: number): void {
  let cached = edgeCache.get(p);
  if (!cached) {
    cached = { edges: histogramEdges(p.lo, p.hi, p.bins), ...(p.rangeBins > 0 ? { rangeEdges: histogramEdges(p.lo, p.hi, p.rangeBins) } : {}) };
    edgeCache.set(p, cached);
  }
  momentsValues(values, { mean: p.mean, lo: p.lo, hi: p.hi, denom: p.hi - p.lo, bins: p.bins, edges: cached.edges }, acc.moments, acc.counts, start);
  const threshold = OUTLIER_SIGMAS * p.sigma;
  const denom = p.hi - p.lo;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (Math.abs(v - p.mean) > threshold) acc.outliers++;
    if (acc.rangeCounts) acc.rangeCounts[binOf(v, p.lo, denom, p.rangeBins, cached.rangeEdges!)]++;
  }
}

export function mergeMoments(a: MomentAccumulator, b: MomentAccumulator): MomentAccumulator {
  for (let k = 0; k < 4; k++) {
    a.moments.m2[k] = a.moments.m2[k]! + b.moments.m2[k]!;
    a.moments.m4[k] = a.moments.m4[k]! + b.moments.m4[k]!;
  }
  for (let i = 0; i < a.counts.length; i++) a.counts[i] = a.counts[i]! + b.counts[i]!;
  if (a.rangeCounts && b.rangeCounts) for (let i = 0; i < a.rangeCounts.length; i++) a.rangeCounts[i] = a.rangeCounts[i]! + b.rangeCounts[i]!;
  a.outliers += b.outliers;
  return a;
}

/** The statistics (TensorStats, as for weights) of one activation over every sample. */
export function finishActivationStats(scan: ScanAccumulator, p: MomentParams | undefined, m: MomentAccumulator | undefined, bins: number): TensorStats {
  if (!p || !m) return emptyStats(scan.elements, bins);
  return finishLaneStats(
    scan.elements,
    scan.scan,
    { mean: p.mean, lo: p.lo, hi: p.hi, denom: p.hi - p.lo, bins: p.bins, edges: histogramEdges(p.lo, p.hi, p.bins) },
    m.moments,
    m.outliers,
    m.counts,
  );
}
