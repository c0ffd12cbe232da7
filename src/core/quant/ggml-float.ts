/**
 * The C float semantics the libggml quantizers rely on, spelled out for the TypeScript twins
 * (ggml-quants.c, compiled for x86-64 with SSE: every `float` operation rounds to f32, no
 * contraction into FMA). Every arithmetic step of a twin goes through `fround`; a sum or
 * product of two f32 values computed in f64 and rounded once is the correctly rounded f32
 * result (53 ≥ 2·24 + 2), so `fround(a * b)` is exactly C's `a * b`.
 */

import { f16ToF32, f32ToF16 } from './fp16';

export const fround = Math.fround;

const f32Scratch = new Float32Array(1);
const i32Scratch = new Int32Array(f32Scratch.buffer);

/**
 * ggml's `nearest_int`: add 1.5·2^23 in f32 and read the low 22 mantissa bits back. For
 * |v| < 2^22 that is round-half-to-even; outside it (and for NaN, ±Inf) it is the same
 * well-defined bit pattern libggml computes, which the twins reproduce rather than guard.
 */
export function nearestInt(v: number): number {
  f32Scratch[0] = v + 12582912;
  return (i32Scratch[0]! & 0x007fffff) - 0x00400000;
}

/** C `(int)v` for a float on x86-64 (`cvttss2si`): truncation; NaN and out-of-range give INT32_MIN. */
export function truncToInt32(v: number): number {
  if (!(v > -2147483649 && v < 2147483648)) return -2147483648;
  return Math.trunc(v);
}

/** C conversion of an int to `int8_t` (keep the low byte, signed). */
export function toInt8(i: number): number {
  return (i << 24) >> 24;
}

/** C `roundf`: nearest, ties away from zero (truncate, then adjust: `v - t` is exact for an f32). */
export function roundHalfAway(v: number): number {
  const t = Math.trunc(v);
  const r = v - t;
  if (r >= 0.5) return t + 1;
  if (r <= -0.5) return t - 1;
  return t;
}

/**
 * `(int)lroundf(v)` with glibc on x86-64: ties away from zero; NaN, ±Inf and values beyond
 * 64 bits give LONG_MIN, whose low 32 bits are 0; otherwise the low 32 bits of the result.
 */
export function lroundToInt32(v: number): number {
  if (!(Math.abs(v) < 9223372036854775808)) return 0;
  const r = roundHalfAway(v);
  return Math.abs(r) < 2147483648 ? r : Number(BigInt.asIntN(32, BigInt(r)));
}

/** C `log2f` of an f32, taken as the f32 nearest to the exact logarithm. */
export function log2f(v: number): number {
  return fround(Math.log2(v));
}

/** Stores `v` as a little-endian f16 (round to nearest even, libggml's GGML_FP32_TO_FP16). */
export function writeF16(out: Uint8Array, o: number, v: number): void {
  const h = f32ToF16(v);
  out[o] = h & 0xff;
  out[o + 1] = h >>> 8;
}

/** The f32 value of the little-endian f16 at `out[o]` (GGML_FP16_TO_FP32). */
export function readF16(out: Uint8Array, o: number): number {
  return f16ToF32(out[o]! | (out[o + 1]! << 8));
}
