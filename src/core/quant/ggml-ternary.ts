/**
 * TypeScript twins of libggml's ternary quantizers TQ1_0 and TQ2_0 (ggml-quants.c
 * `quantize_row_tq1_0_ref`, `quantize_row_tq2_0_ref`), byte-exact. Both ignore importance
 * weights. Levels are `lroundf(x / amax) + 1` ∈ {0, 1, 2}, ties away from zero.
 */
import { fround as f, lroundToInt32, writeF16 } from './ggml-float';

const QK_K = 256;

/** amax = MAX(amax, |v|) over a super-block (a NaN is kept only until the next element). */
function absMax(x: Float32Array, xb: number): number {
  let amax = 0;
  for (let j = 0; j < QK_K; j++) {
    const a = Math.abs(x[xb + j]!);
    amax = amax > a ? amax : a;
  }
  return amax;
}

/** Base-3 digits of `count` elements `stride` apart, most significant first, in a uint8 (wrapping as in C). */
function trits(x: Float32Array, at: number, stride: number, count: number, id: number): number {
  let q = 0;
  for (let k = 0; k < count; k++) q = (q * 3 + lroundToInt32(f(x[at + k * stride]! * id)) + 1) & 0xff;
  return q;
}

/** The 5-trit value q scaled to a byte: ceil(q · 256 / 243). */
function tritsToByte(q: number): number {
  return Math.floor((q * 256 + 242) / 243) & 0xff;
}

/**
 * TQ1_0 (54 bytes: 48 qs with 5 trits each, 4 qh with 4 trits each, f16 d). qs[m] holds
 * elements m + 32k (k < 5) of the first 160; qs[32 + m] elements 160 + m + 16k; qh[j] elements
 * 240 + j + 4k, shifted up by one trit.
 */
export function quantizeRowTQ1_0(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number): void {
  for (let i = 0; i < n / QK_K; i++) {
    const xb = xo + i * QK_K;
    const ob = oo + i * 54;
    const d = absMax(x, xb);
    const id = d !== 0 ? f(1 / d) : 0;
    writeF16(out, ob + 52, d);
    for (let m = 0; m < 32; m++) out[ob + m] = tritsToByte(trits(x, xb + m, 32, 5, id));
    for (let m = 0; m < 16; m++) out[ob + 32 + m] = tritsToByte(trits(x, xb + 160 + m, 16, 5, id));
    for (let j = 0; j < 4; j++) out[ob + 48 + j] = tritsToByte((trits(x, xb + 240 + j, 4, 4, id) * 3) & 0xff);
  }
}

/** TQ2_0 (66 bytes: 64 qs with four 2-bit levels, f16 d): byte m of group g holds elements 128g + m + 32k in bits 2k. */
export function quantizeRowTQ2_0(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number): void {
  for (let i = 0; i < n / QK_K; i++) {
    const xb = xo + i * QK_K;
    const ob = oo + i * 66;
    const d = absMax(x, xb);
    const id = d !== 0 ? f(1 / d) : 0;
    writeF16(out, ob + 64, d);
    for (let g = 0; g < 2; g++) {
      for (let m = 0; m < 32; m++) {
        let q = 0;
        for (let k = 0; k < 4; k++) {
          const xi = lroundToInt32(f(x[xb + 128 * g + m + 32 * k]! * id)) + 1;
          q = (q + ((xi & 3) << (2 * k))) & 0xff;
        }
        out[ob + 32 * g + m] = q;
      }
    }
  }
}
