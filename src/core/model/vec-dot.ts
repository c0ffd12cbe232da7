/**
 * Matrix products as ggml's CPU backend computes them (ggml-cpu.c `type_traits_cpu[].vec_dot_type`,
 * `ggml_compute_forward_mul_mat`): each activation row is first rounded to the weight type's dot
 * product type — F16 for F16 weights, BF16 for BF16, Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL/MXFP4, Q8_1 for
 * Q4_1/Q5_1, Q8_K for the K-quants and the other IQ types — then multiplied with the stored weights.
 * For the legacy block types the dot product is integer per 32-element block, scaled by the two block
 * scales (ggml's generic `ggml_vec_dot_q*_q8_*`); the other types use the dequantized weights against
 * the rounded activations (equal up to float summation order).
 * Activation quantization follows the reference rows of ggml-quants.c (`quantize_row_q8_0_ref`,
 * `quantize_row_q8_1_ref`, `quantize_row_q8_K_ref`).
 */
import type { DType } from '../dtypes';
import { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from '../quant/fp16';
import { fround, nearestInt, roundHalfAway } from '../quant/ggml-float';

export type VecDotType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'Q8_1' | 'Q8_K';

/** The type ggml's CPU backend rounds activations to before a product with `weight`. */
export function vecDotType(weight: DType): VecDotType {
  switch (weight) {
    case 'F32':
    case 'F64':
      return 'F32';
    case 'F16':
      return 'F16';
    case 'BF16':
      return 'BF16';
    case 'Q4_0':
    case 'Q5_0':
    case 'Q8_0':
    case 'IQ4_NL':
    case 'MXFP4':
      return 'Q8_0';
    case 'Q4_1':
    case 'Q5_1':
      return 'Q8_1';
    default:
      // Every K-quant, IQ and ternary type pairs with Q8_K (type_traits_cpu).
      return 'Q8_K';
  }
}

const QK = 32;
const QK_K = 256;

export function roundToF16(v: number): number {
  return f16ToF32(f32ToF16(v));
}

/** An activation row quantized to Q8_0 or Q8_1: int8 values, per-block scale (and Q8_1's d·Σq). */
export interface Q8Row {
  qs: Int8Array;
  d: Float32Array;
  /** Q8_1 only: the f16-rounded d · Σ qs of each block. */
  s?: Float32Array;
}

/** quantize_row_q8_0_ref / quantize_row_q8_1_ref on `n` values of x from `xo` (n a multiple of 32). */
export function quantizeQ8(x: Float32Array, xo: number, n: number, withSums: boolean): Q8Row {
  const nb = n / QK;
  const qs = new Int8Array(n);
  const d = new Float32Array(nb);
  const s = withSums ? new Float32Array(nb) : undefined;
  for (let b = 0; b < nb; b++) {
    const o = xo + b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[o + j]));
    const dd = fround(amax / 127);
    const id = dd ? fround(1 / dd) : 0;
    d[b] = roundToF16(dd);
    let sum = 0;
    for (let j = 0; j < QK; j++) {
      const q = roundHalfAway(fround(x[o + j] * id));
      qs[b * QK + j] = q;
      sum += q;
    }
    if (s) s[b] = roundToF16(fround(sum * dd));
  }
  return { qs, d, s };
}

/** quantize_row_q8_K_ref, dequantized: the values a K-quant dot product sees (n a multiple of 256). */
export function roundRowQ8K(x: Float32Array, xo: number, n: number, out: Float32Array, oo: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const o = xo + b * QK_K;
    let max = 0;
    let amax = 0;
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(x[o + j]);
      if (ax > amax) {
        amax = ax;
        max = x[o + j];
      }
    }
    if (!amax) {
      out.fill(0, oo + b * QK_K, oo + (b + 1) * QK_K);
      continue;
    }
    const iscale = fround(-127 / max);
    const d = fround(1 / iscale);
    for (let j = 0; j < QK_K; j++) out[oo + b * QK_K + j] = fround(d * Math.min(127, nearestInt(fround(iscale * x[o + j]))));
  }
}

/** Rounds a row in place to F16 or BF16 (the activation side of an F16/BF16 product). */
export function roundRowFloat(x: Float32Array, o: number, n: number, type: 'F16' | 'BF16'): void {
  if (type === 'F16') for (let j = o; j < o + n; j++) x[j] = roundToF16(x[j]);
  else for (let j = o; j < o + n; j++) x[j] = bf16ToF32(f32ToBf16(x[j]));
}

/** A legacy block-quantized weight as integers: values in [-16, 31], block scales and (for _1 types) minimums. */
export interface IntWeight {
  type: 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0';
  rows: number;
  cols: number;
  qs: Int8Array;
  d: Float32Array;
  m?: Float32Array;
}

const INT_BLOCK_BYTES = { Q4_0: 18, Q4_1: 20, Q5_0: 22, Q5_1: 24, Q8_0: 34 } as const;

export function isIntWeightType(t: DType): t is IntWeight['type'] {
  return t in INT_BLOCK_BYTES;
}

/** Unpacks ggml blocks (block_q4_0 … block_q8_0 of ggml-common.h) into integer values and scales. */
export function unpackIntWeight(type: IntWeight['type'], bytes: Uint8Array, rows: number, cols: number): IntWeight {
  const nb = (rows * cols) / QK;
  const qs = new Int8Array(rows * cols);
  const d = new Float32Array(nb);
  const hasMin = type === 'Q4_1' || type === 'Q5_1';
  const m = hasMin ? new Float32Array(nb) : undefined;
  const bpb = INT_BLOCK_BYTES[type];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < nb; b++) {
    const o = b * bpb;
    d[b] = f16ToF32(dv.getUint16(o, true));
    let p = o + 2;
    if (m) {
      m[b] = f16ToF32(dv.getUint16(p, true));
      p += 2;
    }
    const out = b * QK;
    if (type === 'Q8_0') {
      for (let j = 0; j < QK; j++) qs[out + j] = (bytes[p + j] << 24) >> 24;
      continue;
    }
    let qh = 0;
    if (type === 'Q5_0' || type === 'Q5_1') {
      qh = dv.getUint32(p, true);
      p += 4;
    }
    const offset = type === 'Q4_0' ? 8 : type === 'Q5_0' ? 16 : 0;
    for (let j = 0; j < QK / 2; j++) {
      let lo = bytes[p + j] & 0x0f;
      let hi = bytes[p + j] >> 4;
      if (type === 'Q5_0' || type === 'Q5_1') {
        lo |= ((qh >>> j) << 4) & 0x10;
        hi |= (qh >>> (j + 12)) & 0x10;
      }
      qs[out + j] = lo - offset;
      qs[out + j + QK / 2] = hi - offset;
    }
  }
  return { type, rows, cols, qs, d, m };
}

/**
 * y[t, r] = Σ_blocks (Σ_j w_q · x_q) · d_w · d_x (+ m_w · s_x for the _1 types), in block order,
 * each float step rounded to f32 as ggml's generic dot products do.
 */
export function intMatmul(x: Float32Array, n: number, w: IntWeight, out: Float32Array): void {
  const { rows, cols } = w;
  const nb = cols / QK;
  const withSums = w.type === 'Q4_1' || w.type === 'Q5_1';
  for (let t = 0; t < n; t++) {
    const a = quantizeQ8(x, t * cols, cols, withSums);
    for (let r = 0; r < rows; r++) {
      let sumf = 0;
      for (let b = 0; b < nb; b++) {
        const wo = (r * nb + b) * QK;
        const xo = b * QK;
        let sumi = 0;
        for (let j = 0; j < QK; j++) sumi += w.qs[wo + j] * a.qs[xo + j];
        const wb = r * nb + b;
        if (withSums) sumf = fround(sumf + fround(fround(fround(w.d[wb] * a.d[b]) * sumi) + fround(w.m![wb] * a.s![b])));
        else sumf = fround(sumf + fround(fround(sumi * w.d[wb]) * a.d[b]));
      }
      out[t * rows + r] = sumf;
    }
  }
}
