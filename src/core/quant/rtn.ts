/**
 * Round-to-nearest quantization for safetensors outputs (the schemes of scheme.ts): the plain
 * TypeScript twin of src/kernel/assembly/rtn.ts and its test oracle.
 *
 * Conventions (ours; the stored scales and zero-points make any loader's convention reachable):
 * - Ranges are taken over the finite values only; NaN becomes the code of 0, ±Inf saturates.
 * - Integers, b bits, signed storage. Rounding is to nearest, ties to even (torch.round, wasm `nearest`).
 *   Symmetric: scale = absmax / (2^(b−1) − 1), q = clamp(round(x / scale), −(2^(b−1) − 1), 2^(b−1) − 1),
 *   x̂ = q · scale.
 *   Asymmetric: the range [min, max] always includes 0; scale = (max − min) / (2^b − 1),
 *   zero-point z = clamp(−2^(b−1) − round(min / scale), −2^(b−1), 2^(b−1) − 1),
 *   q = clamp(round(x / scale) + z, −2^(b−1), 2^(b−1) − 1), x̂ = (q − z) · scale.
 *   Seed example, INT8 of [5.47, 3.08, −7.59, 0, −1.95, −4.57, 10.8]: absmax → [64, 36, −89, 0, −23, −54, 127];
 *   zero-point → scale 18.39/255, z = −128 − round(−105.24) = −23, q = [53, 20, −128, −23, −50, −86, 127].
 *   A range of 0 gives scale 1 (every q is then the code of 0).
 * - Groups: per tensor (one group), per channel (one per row), or N consecutive values of a row
 *   (the last group of a row may be shorter). Scales are row-major [rows][groups per row].
 * - NF4 as bitsandbytes' default backend (backends/default/ops.py quantize_4bit): blocks of N over the
 *   flattened tensor, absmax per block, scaled = clamp(x · (1 / absmax), −1, 1) (a shorter last block:
 *   x / max(absmax, 1e−38)), index = number of midpoints between consecutive levels strictly below the
 *   scaled value (torch.bucketize), x̂ = level · absmax. -dq as bitsandbytes' compress_statistics:
 *   offset = mean(absmax), then absmax − offset quantized blockwise (blocks of 256) to the 8-bit dynamic map.
 * - FP8 (OCP e4m3fn, e5m2): scale = absmax / max finite (448, 57344), code = fp8(x / scale) rounded
 *   to nearest even and saturated to ±max; x̂ = value(code) · scale.
 * - `-mse`: for each group (channel, tensor, block) the clip ratios r_k = 1 − 0.5 · k / 19, k = 0…19
 *   (1.0 down to 0.5) scale the range (absmax · r, or [min · r, max · r]); the ratio with the least
 *   squared error Σ (x − x̂)² over the finite values wins (the first on ties).
 *
 * Operation order: every step is an f32 operation (Math.fround). A group's squared error is summed in
 * four f32 lanes, element j into lane j mod 4, and the lanes combined as (l0 + l1) + (l2 + l3), the order
 * of the SIMD kernel.
 */
import { QuantLensError } from '../errors';
import { codeValue } from '../stats/decode';
import type { Fp8Scheme, IntScheme, QuantScheme } from './scheme';

const fr = Math.fround;

/** Clip-search steps of `-mse` (1.0 down to 0.5). */
export const MSE_CLIP_STEPS = 20;

/** The k-th clip ratio of a search over `steps` ratios, as an f32. */
export function clipRatio(k: number, steps: number): number {
  return steps <= 1 ? 1 : fr(1 - (0.5 * k) / (steps - 1));
}

/** Round to nearest, ties to even, of an f32 value (NaN stays NaN, ±Inf stays). */
export function roundHalfEven(v: number): number {
  if (!Number.isFinite(v)) return v;
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Squared error in the kernel's summation order: four f32 lanes, element j in lane j mod 4. */
class LaneSum {
  private l0 = 0;
  private l1 = 0;
  private l2 = 0;
  private l3 = 0;
  add(j: number, x: number, xhat: number): void {
    const e = Number.isFinite(x) ? fr(x - xhat) : 0;
    const sq = fr(e * e);
    switch (j & 3) {
      case 0: this.l0 = fr(this.l0 + sq); break;
      case 1: this.l1 = fr(this.l1 + sq); break;
      case 2: this.l2 = fr(this.l2 + sq); break;
      default: this.l3 = fr(this.l3 + sq);
    }
  }
  total(): number {
    return fr(fr(this.l0 + this.l1) + fr(this.l2 + this.l3));
  }
}

// ---------------------------------------------------------------- integers

/** How a tensor [rows, cols] splits into groups for an int or fp8 scheme. */
export interface GroupLayout {
  /** rows and columns of the grouped view (per tensor: one row holding every value) */
  rows: number;
  cols: number;
  /** values per group along a row */
  group: number;
  groupsPerRow: number;
}

export function groupLayout(scheme: IntScheme | Fp8Scheme, rows: number, cols: number): GroupLayout {
  const g = scheme.granularity;
  if (g.kind === 'tensor') return { rows: 1, cols: rows * cols, group: Math.max(1, rows * cols), groupsPerRow: 1 };
  if (g.kind === 'channel') return { rows, cols, group: Math.max(1, cols), groupsPerRow: 1 };
  return { rows, cols, group: g.size, groupsPerRow: Math.ceil(cols / g.size) };
}

interface IntParams {
  scale: number;
  zero: number;
}

function intParams(bits: number, symmetric: boolean, absmax: number, lo: number, hi: number, ratio: number): IntParams {
  if (symmetric) {
    const scale = fr(fr(absmax * ratio) / ((1 << (bits - 1)) - 1));
    return { scale: scale === 0 ? 1 : scale, zero: 0 };
  }
  const l = fr(lo * ratio);
  const h = fr(hi * ratio);
  let scale = fr(fr(h - l) / ((1 << bits) - 1));
  if (scale === 0) scale = 1;
  const qmin = -(1 << (bits - 1));
  const zero = Math.min(Math.max(qmin - roundHalfEven(fr(l / scale)), qmin), -qmin - 1);
  return { scale, zero };
}

/** The level of one value: round(x / scale) clamped to [qlo − zero, qhi − zero]; NaN → 0. */
function intLevel(x: number, scale: number, lo: number, hi: number): number {
  const v = fr(x / scale);
  if (Number.isNaN(v)) return 0;
  return Math.min(Math.max(roundHalfEven(v), lo), hi);
}

/**
 * Quantizes the row-major [rows, cols] f32 values `x` in groups of `group` along each row into
 * `q` (one signed level per value), `scales` and, when asymmetric, `zeroPoints` (one per group).
 * `clipSteps` > 1 runs the clip search.
 */
export function quantizeIntGroups(
  x: Float32Array, rows: number, cols: number, group: number, bits: number, symmetric: boolean, clipSteps: number,
  q: Int8Array, scales: Float32Array, zeroPoints: Int8Array | undefined,
): void {
  const groupsPerRow = Math.ceil(cols / group);
  const qmax = (1 << (bits - 1)) - 1;
  const qmin = symmetric ? -qmax : -qmax - 1;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groupsPerRow; g++) {
      const base = r * cols + g * group;
      const n = Math.min(group, cols - g * group);
      let absmax = 0;
      let lo = 0;
      let hi = 0;
      for (let j = 0; j < n; j++) {
        const v = x[base + j]!;
        if (!Number.isFinite(v)) continue;
        // strict comparisons, as the kernel's pmin/pmax: a −0 never replaces the initial +0
        if (Math.abs(v) > absmax) absmax = Math.abs(v);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      let best = intParams(bits, symmetric, absmax, lo, hi, 1);
      if (clipSteps > 1) {
        let bestErr = Infinity;
        for (let k = 0; k < clipSteps; k++) {
          const p = intParams(bits, symmetric, absmax, lo, hi, clipRatio(k, clipSteps));
          const sum = new LaneSum();
          for (let j = 0; j < n; j++) {
            const v = x[base + j]!;
            sum.add(j, v, fr(intLevel(v, p.scale, qmin - p.zero, qmax - p.zero) * p.scale));
          }
          const err = sum.total();
          if (err < bestErr) {
            bestErr = err;
            best = p;
          }
        }
      }
      for (let j = 0; j < n; j++) q[base + j] = intLevel(x[base + j]!, best.scale, qmin - best.zero, qmax - best.zero) + best.zero;
      scales[r * groupsPerRow + g] = best.scale;
      if (zeroPoints) zeroPoints[r * groupsPerRow + g] = best.zero;
    }
  }
}

/** x̂ = (q − zero) · scale for the layout of quantizeIntGroups. */
export function dequantizeIntGroups(
  q: Int8Array, rows: number, cols: number, group: number, scales: Float32Array, zeroPoints: Int8Array | undefined, out: Float32Array,
): void {
  const groupsPerRow = Math.ceil(cols / group);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const g = r * groupsPerRow + Math.floor(c / group);
      const i = r * cols + c;
      out[i] = (q[i]! - (zeroPoints ? zeroPoints[g]! : 0)) * scales[g]!;
    }
  }
}

// ---------------------------------------------------------------- NF4

/**
 * The 16 NF4 levels, transcribed from bitsandbytes (bitsandbytes/functional.py `get_4bit_type('nf4')`,
 * bitsandbytes-foundation/bitsandbytes at commit 95f9af309d4d5793847169c39288dcd3fcbdf564, MIT licence),
 * as f32 (bitsandbytes keeps them in a float32 tensor).
 */
export const NF4_LEVELS = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** Midpoints between consecutive entries of a sorted f32 code, (c[i] + c[i+1]) / 2 in f32. */
function midpoints(code: Float32Array): Float32Array {
  const out = new Float32Array(code.length - 1);
  for (let i = 0; i < out.length; i++) out[i] = fr(fr(code[i]! + code[i + 1]!) / 2);
  return out;
}

export const NF4_BOUNDS = midpoints(NF4_LEVELS);

/** bitsandbytes' clamp of an absmax before dividing by it. */
export const ABSMAX_FLOOR = fr(1e-38);

/** Number of `bounds` strictly below v (torch.bucketize, right=False); NaN counts as 0. */
function bucket(bounds: Float32Array, v: number): number {
  if (Number.isNaN(v)) v = 0;
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (bounds[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Blockwise absmax quantization to a sorted code (bitsandbytes' rules, see the file comment):
 * `indices` gets one code index per value, `absmax` one per block (the last block may be shorter).
 */
export function quantizeCodeBlocks(
  x: Float32Array, block: number, code: Float32Array, bounds: Float32Array, clipSteps: number, indices: Uint8Array, absmax: Float32Array,
): void {
  const n = x.length;
  const blocks = Math.ceil(n / block);
  for (let b = 0; b < blocks; b++) {
    const base = b * block;
    const len = Math.min(block, n - base);
    const full = len === block;
    let amax = 0;
    for (let j = 0; j < len; j++) {
      const v = x[base + j]!;
      if (Number.isFinite(v)) amax = Math.max(amax, Math.abs(v));
    }
    let bestA = amax;
    if (clipSteps > 1) {
      let bestErr = Infinity;
      for (let k = 0; k < clipSteps; k++) {
        const a = fr(amax * clipRatio(k, clipSteps));
        const stored = full ? a : Math.max(a, ABSMAX_FLOOR);
        const inv = fr(1 / Math.max(a, ABSMAX_FLOOR));
        const sum = new LaneSum();
        for (let j = 0; j < len; j++) {
          const v = x[base + j]!;
          const i = bucket(bounds, scaledForCode(v, full, inv, stored));
          sum.add(j, v, fr(code[i]! * stored));
        }
        const err = sum.total();
        if (err < bestErr) {
          bestErr = err;
          bestA = a;
        }
      }
    }
    const stored = full ? bestA : Math.max(bestA, ABSMAX_FLOOR);
    const inv = fr(1 / Math.max(bestA, ABSMAX_FLOOR));
    for (let j = 0; j < len; j++) indices[base + j] = bucket(bounds, scaledForCode(x[base + j]!, full, inv, stored));
    absmax[b] = stored;
  }
}

/** clamp(x · inv, −1, 1) for a whole block, clamp(x / absmax, −1, 1) for a shorter last one. */
function scaledForCode(v: number, full: boolean, inv: number, stored: number): number {
  const s = full ? fr(v * inv) : fr(v / stored);
  return s < -1 ? -1 : s > 1 ? 1 : s;
}

/** x̂ = code[index] · absmax of its block. */
export function dequantizeCodeBlocks(indices: Uint8Array, block: number, code: Float32Array, absmax: Float32Array, out: Float32Array): void {
  for (let i = 0; i < indices.length; i++) out[i] = code[indices[i]!]! * absmax[Math.floor(i / block)]!;
}

/**
 * bitsandbytes' 8-bit signed dynamic map (functional.py `create_dynamic_map(signed=True)`), computed
 * with its formula in f32: for i = 0…6, the midpoints of linspace(0.1, 1, 2^i + 1) times ±10^(i − 6),
 * then 0 and 1, sorted. linspace is torch's scalar rule (start + step · i below the middle,
 * end − step · (n − 1 − i) from it, step = (end − start) / (n − 1)). The map travels with the output
 * (`nested_quant_map`), so a loader uses exactly these values.
 */
export const DYNAMIC_MAP: Float32Array = (() => {
  const data: number[] = [];
  const start = fr(0.1);
  for (let i = 0; i < 7; i++) {
    const n = 2 ** i + 1;
    const step = fr(fr(1 - start) / (n - 1));
    const half = Math.floor(n / 2);
    const lin = Array.from({ length: n }, (_, k) => (k < half ? fr(start + fr(step * k)) : fr(1 - fr(step * (n - k - 1)))));
    const scale = fr(10 ** (i - 6));
    for (let k = 0; k + 1 < n; k++) {
      const mean = fr(fr(lin[k]! + lin[k + 1]!) / 2);
      data.push(fr(scale * mean), -fr(scale * mean));
    }
  }
  data.push(0, 1);
  return Float32Array.from(data).sort();
})();

const DYNAMIC_BOUNDS = midpoints(DYNAMIC_MAP);

/** bitsandbytes' blocks for the double quantization of absmax values. */
export const NESTED_BLOCK_SIZE = 256;

/** Double-quantized NF4 absmax values (bitsandbytes QuantState.state2 and offset). */
export interface NestedAbsmax {
  /** one 8-bit index into `code` per NF4 block (`weight.absmax` in a bitsandbytes file) */
  indices: Uint8Array;
  /** one f32 absmax per 256 indices (`nested_absmax`) */
  absmax: Float32Array;
  /** the dynamic map (`nested_quant_map`) */
  code: Float32Array;
  /** mean of the original absmax values, added back on dequantization */
  offset: number;
}

/** bitsandbytes' compress_statistics of the NF4 block absmax values. */
export function doubleQuantizeAbsmax(absmax: Float32Array): NestedAbsmax {
  let sum = 0;
  for (const a of absmax) sum += a;
  const offset = fr(absmax.length ? sum / absmax.length : 0);
  const centred = absmax.map((a) => fr(a - offset));
  const indices = new Uint8Array(absmax.length);
  const nestedAbsmax = new Float32Array(Math.ceil(absmax.length / NESTED_BLOCK_SIZE));
  quantizeCodeBlocks(centred, NESTED_BLOCK_SIZE, DYNAMIC_MAP, DYNAMIC_BOUNDS, 1, indices, nestedAbsmax);
  return { indices, absmax: nestedAbsmax, code: DYNAMIC_MAP, offset };
}

/** The NF4 block absmax values a loader reconstructs: code[index] · nested absmax + offset. */
export function dequantizeNestedAbsmax(nested: NestedAbsmax): Float32Array {
  const out = new Float32Array(nested.indices.length);
  dequantizeCodeBlocks(nested.indices, NESTED_BLOCK_SIZE, nested.code, nested.absmax, out);
  for (let i = 0; i < out.length; i++) out[i] = fr(out[i]! + nested.offset);
  return out;
}

// ---------------------------------------------------------------- FP8

interface Fp8Format {
  manBits: number;
  bias: number;
  /** largest finite code (positive) */
  maxCode: number;
  max: number;
  nan: number;
}

export const FP8_FORMATS: Record<'e4m3' | 'e5m2', Fp8Format> = {
  e4m3: { manBits: 3, bias: 7, maxCode: 0x7e, max: 448, nan: 0x7f },
  e5m2: { manBits: 2, bias: 15, maxCode: 0x7b, max: 57344, nan: 0x7f },
};

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** FP8 code of the f32 value `v`: nearest, ties to even, saturated to ±max; NaN → NaN. */
export function encodeFp8(v: number, format: 'e4m3' | 'e5m2'): number {
  const f = FP8_FORMATS[format];
  f32[0] = v;
  const w = u32[0]!;
  const sign = (w >>> 24) & 0x80;
  if (Number.isNaN(v)) return sign | f.nan;
  const a = Math.abs(f32[0]!);
  const minNormalExp = 1 - f.bias;
  let code: number;
  if (a < 2 ** minNormalExp) {
    // subnormal: units of 2^(minNormalExp − manBits); a · 2^k is exact
    code = roundHalfEven(a * 2 ** (f.manBits - minNormalExp));
  } else if (a === Infinity) {
    code = f.maxCode;
  } else {
    const exp = ((w >>> 23) & 0xff) - 127;
    const man = w & 0x7fffff;
    const drop = 23 - f.manBits;
    let m = man >>> drop;
    const rest = man & ((1 << drop) - 1);
    const half = 1 << (drop - 1);
    if (rest > half || (rest === half && (m & 1) === 1)) m++;
    code = ((exp + f.bias) << f.manBits) + m;
  }
  return sign | Math.min(code, f.maxCode);
}

/** The f32 values of the 256 codes of each FP8 format, from the one bit-level decoder (stats/decode.ts). */
const FP8_VALUES = {
  e4m3: Float32Array.from({ length: 256 }, (_, c) => codeValue('F8_E4M3', c)),
  e5m2: Float32Array.from({ length: 256 }, (_, c) => codeValue('F8_E5M2', c)),
};

/** The f32 value of an FP8 code. */
export function decodeFp8(code: number, format: 'e4m3' | 'e5m2'): number {
  return FP8_VALUES[format][code & 0xff]!;
}

/** FP8 with one scale per group of `group` values along each row (per tensor: one row, one group). */
export function quantizeFp8Groups(
  x: Float32Array, rows: number, cols: number, group: number, format: 'e4m3' | 'e5m2', clipSteps: number, codes: Uint8Array, scales: Float32Array,
): void {
  const fmt = FP8_FORMATS[format];
  const groupsPerRow = Math.ceil(cols / group);
  const scaleFor = (absmax: number, ratio: number): number => {
    const s = fr(fr(absmax * ratio) / fmt.max);
    return s === 0 ? 1 : s;
  };
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groupsPerRow; g++) {
      const base = r * cols + g * group;
      const n = Math.min(group, cols - g * group);
      let absmax = 0;
      for (let j = 0; j < n; j++) {
        const v = x[base + j]!;
        if (Number.isFinite(v)) absmax = Math.max(absmax, Math.abs(v));
      }
      let best = scaleFor(absmax, 1);
      if (clipSteps > 1) {
        let bestErr = Infinity;
        for (let k = 0; k < clipSteps; k++) {
          const s = scaleFor(absmax, clipRatio(k, clipSteps));
          const sum = new LaneSum();
          for (let j = 0; j < n; j++) {
            const v = x[base + j]!;
            sum.add(j, v, fr(decodeFp8(encodeFp8(fr(v / s), format), format) * s));
          }
          const err = sum.total();
          if (err < bestErr) {
            bestErr = err;
            best = s;
          }
        }
      }
      for (let j = 0; j < n; j++) codes[base + j] = encodeFp8(fr(x[base + j]! / best), format);
      scales[r * groupsPerRow + g] = best;
    }
  }
}

export function dequantizeFp8Groups(
  codes: Uint8Array, rows: number, cols: number, group: number, format: 'e4m3' | 'e5m2', scales: Float32Array, out: Float32Array,
): void {
  const groupsPerRow = Math.ceil(cols / group);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      out[i] = decodeFp8(codes[i]!, format) * scales[r * groupsPerRow + Math.floor(c / group)]!;
    }
  }
}

// ---------------------------------------------------------------- tensors

/** A tensor quantized with an RTN scheme. */
export interface RtnTensor {
  scheme: QuantScheme;
  /** the original 2-D view [rows, cols] (a 1-D tensor is one row) */
  rows: number;
  cols: number;
  /**
   * int: Int8Array of signed levels; nf4: Uint8Array of level indices 0…15, one per value, unpacked;
   * fp8: Uint8Array of FP8 codes. Row-major like the input.
   */
  q: Int8Array | Uint8Array;
  /**
   * int and fp8: one scale per group, row-major [rows][groups per row] (per tensor: one value);
   * nf4: the absmax of each block that dequantization uses (after -dq, the reconstructed values).
   */
  scales: Float32Array;
  /** values per scale: along a row for int and fp8 (per tensor: all of them), per flat block for nf4 */
  groupSize: number;
  /** int asymmetric: one zero-point per group */
  zeroPoints?: Int8Array;
  /** nf4 -dq: the stored form of the absmax values */
  nested?: NestedAbsmax;
}

export function checkShape(x: Float32Array, rows: number, cols: number): void {
  if (!(Number.isSafeInteger(rows) && Number.isSafeInteger(cols) && rows >= 0 && cols >= 0 && rows * cols === x.length)) {
    throw new QuantLensError('INVALID_SHAPE', `${x.length} values do not form a [${rows}, ${cols}] tensor`);
  }
}

/** Quantizes the row-major [rows, cols] tensor `x` with `scheme` (the plain TypeScript path). */
export function quantizeRtn(x: Float32Array, rows: number, cols: number, scheme: QuantScheme): RtnTensor {
  checkShape(x, rows, cols);
  const steps = scheme.mse ? MSE_CLIP_STEPS : 1;
  if (scheme.kind === 'int') {
    const l = groupLayout(scheme, rows, cols);
    const q = new Int8Array(x.length);
    const scales = new Float32Array(l.rows * l.groupsPerRow);
    const zeroPoints = scheme.symmetric ? undefined : new Int8Array(scales.length);
    quantizeIntGroups(x, l.rows, l.cols, l.group, scheme.bits, scheme.symmetric, steps, q, scales, zeroPoints);
    return { scheme, rows, cols, q, scales, groupSize: l.group, ...(zeroPoints && { zeroPoints }) };
  }
  if (scheme.kind === 'fp8') {
    const l = groupLayout(scheme, rows, cols);
    const q = new Uint8Array(x.length);
    const scales = new Float32Array(l.rows * l.groupsPerRow);
    quantizeFp8Groups(x, l.rows, l.cols, l.group, scheme.format, steps, q, scales);
    return { scheme, rows, cols, q, scales, groupSize: l.group };
  }
  const q = new Uint8Array(x.length);
  const absmax = new Float32Array(Math.ceil(x.length / scheme.blockSize));
  quantizeCodeBlocks(x, scheme.blockSize, NF4_LEVELS, NF4_BOUNDS, steps, q, absmax);
  return finishNf4(scheme.doubleQuant, { scheme, rows, cols, q, scales: absmax, groupSize: scheme.blockSize });
}

/** Applies -dq to an NF4 result whose `scales` are the block absmax values. */
export function finishNf4(doubleQuant: boolean, t: RtnTensor): RtnTensor {
  if (!doubleQuant) return t;
  const nested = doubleQuantizeAbsmax(t.scales);
  return { ...t, scales: dequantizeNestedAbsmax(nested), nested };
}

/** The f32 values a loader reconstructs from an RtnTensor. */
export function dequantizeRtn(t: RtnTensor): Float32Array {
  const out = new Float32Array(t.q.length);
  const s = t.scheme;
  if (s.kind === 'int') {
    const l = groupLayout(s, t.rows, t.cols);
    dequantizeIntGroups(t.q as Int8Array, l.rows, l.cols, l.group, t.scales, t.zeroPoints, out);
  } else if (s.kind === 'fp8') {
    const l = groupLayout(s, t.rows, t.cols);
    dequantizeFp8Groups(t.q as Uint8Array, l.rows, l.cols, l.group, s.format, t.scales, out);
  } else {
    dequantizeCodeBlocks(t.q as Uint8Array, s.blockSize, NF4_LEVELS, t.scales, out);
  }
  return out;
}
