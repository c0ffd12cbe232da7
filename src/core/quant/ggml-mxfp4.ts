/**
 * TypeScript twin of libggml's MXFP4 quantizer (ggml-quants.c `quantize_row_mxfp4_ref`),
 * byte-exact; importance weights are ignored. Blocks of 32: one E8M0 exponent byte, then 16
 * bytes of two 4-bit E2M1 codes (element j low nibble, j + 16 high nibble).
 */
import { fround as f, log2f, truncToInt32 } from './ggml-float';

/** E2M1 values doubled, code order (ggml-common.h `kvalues_mxfp4`, from the OCP MX v1.0 spec). */
export const E2M1_DOUBLED = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12] as const;

/** 2^(e − 128): half the E8M0 scale, because the table above is doubled (ggml_e8m0_to_fp32_half). */
export function e8m0Half(e: number): number {
  return 2 ** (e - 128);
}

/** The code whose doubled value times `d` is nearest to `x`; the lowest code on ties. */
function nearestCode(x: number, d: number): number {
  let best = 0;
  let bestErr = Math.abs(f(f(E2M1_DOUBLED[0] * d) - x));
  for (let i = 1; i < 16; i++) {
    const err = Math.abs(f(f(E2M1_DOUBLED[i]! * d) - x));
    if (err < bestErr) {
      best = i;
      bestErr = err;
    }
  }
  return best;
}

export function quantizeRowMXFP4(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number): void {
  for (let b = 0; b < n / 32; b++) {
    const xb = xo + b * 32;
    const ob = oo + b * 17;
    let amax = 0;
    for (let j = 0; j < 32; j++) if (amax < Math.abs(x[xb + j]!)) amax = Math.abs(x[xb + j]!);
    // e = (uint8_t)(floorf(log2f(amax)) − 2 + 127), through a 32-bit conversion
    const e = amax > 0 ? truncToInt32(Math.floor(log2f(amax)) - 2 + 127) & 0xff : 0;
    const d = e8m0Half(e);
    out[ob] = e;
    for (let j = 0; j < 16; j++) out[ob + 1 + j] = nearestCode(x[xb + j]!, d) | (nearestCode(x[xb + j + 16]!, d) << 4);
  }
}
