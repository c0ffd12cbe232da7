/**
 * IEEE half (f16) and bfloat16 (bf16) ↔ f32, bit-compatible with libggml (ggml-impl.h
 * `ggml_compute_fp16_to_fp32`, `ggml_compute_fp32_to_fp16`, `ggml_compute_fp32_to_bf16`):
 * f32 → f16/bf16 rounds to nearest, ties to even; every NaN becomes a quiet NaN
 * (f16: sign | 0x7E00; bf16: the top half with the quiet bit set); overflow gives ±Inf.
 * Values are JS numbers; arguments of the f32 → * functions are rounded to f32 first.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bits of `x` rounded to f32. */
export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/** The f32 whose bits are `bits`. */
export function f32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/** The f32 value of the half-precision code `h` (exact: every f16 is an f32). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man === 0 ? sign * Infinity : NaN;
  return sign * (1024 + man) * 2 ** (exp - 25);
}

/** The half-precision code nearest to `x` (rounded to f32 first), ties to even. */
export function f32ToF16(x: number): number {
  const w = f32Bits(x);
  const sign = (w >>> 16) & 0x8000;
  const exp = (w >>> 23) & 0xff;
  const man = w & 0x7fffff;
  if (exp === 0xff) return sign | (man === 0 ? 0x7c00 : 0x7e00);
  const e = exp - 112; // f16 biased exponent
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // f16 subnormal: the value in units of 2^-24 is (1.man) · 2^(e - 1 + 10 - 23 + 14) = m >> (14 - e)
    if (e < -10) return sign;
    const m = man | 0x800000;
    const shift = 14 - e;
    return sign | roundShiftEven(m, shift);
  }
  // normal: a carry out of the mantissa rounds up into the exponent (up to Inf), as it should
  return sign | ((e << 10) + roundShiftEven(man, 13));
}

/** The f32 value of the bfloat16 code `h`. */
export function bf16ToF32(h: number): number {
  return f32FromBits((h & 0xffff) << 16);
}

/** The bfloat16 code nearest to `x` (rounded to f32 first), ties to even. */
export function f32ToBf16(x: number): number {
  const w = f32Bits(x);
  if ((w & 0x7fffffff) > 0x7f800000) return (w >>> 16) | 0x40;
  return ((w + 0x7fff + ((w >>> 16) & 1)) >>> 16) & 0xffff;
}

/** `m >> shift` rounded to nearest, ties to even (0 < shift ≤ 24, m < 2^24). */
function roundShiftEven(m: number, shift: number): number {
  const q = m >>> shift;
  const rem = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}
