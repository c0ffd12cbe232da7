// Shared pieces of the GGUF quantizer kernels (quant_*.ts). The kernels run four rows at once:
// SIMD lane k holds the block of row r + k at the same column, so every lane performs exactly
// the scalar reference's operations on its own block, in the reference's order (the twins in
// src/core/quant/ggml-*.ts write that order down), and importance weights, which depend only on
// the column, are the same for all four lanes. Rows past the end repeat the first row of the
// group; their results are never stored.

/** Gathers element j of `n` f32 values from four rows into lane k of the v128 at dst + 16·j. */
export function gatherRows(src: usize, rowBytes: usize, lanes: i32, n: i32, dst: usize): void {
  const a = src;
  const b = lanes > 1 ? src + rowBytes : src;
  const c = lanes > 2 ? src + 2 * rowBytes : src;
  const d = lanes > 3 ? src + 3 * rowBytes : src;
  for (let j: i32 = 0; j < n; j += 4) {
    const o = <usize>j << 2;
    const va = v128.load(a + o);
    const vb = v128.load(b + o);
    const vc = v128.load(c + o);
    const vd = v128.load(d + o);
    const t0 = i32x4.shuffle(va, vb, 0, 4, 1, 5);
    const t1 = i32x4.shuffle(va, vb, 2, 6, 3, 7);
    const t2 = i32x4.shuffle(vc, vd, 0, 4, 1, 5);
    const t3 = i32x4.shuffle(vc, vd, 2, 6, 3, 7);
    const p = dst + (<usize>j << 4);
    v128.store(p, i32x4.shuffle(t0, t2, 0, 1, 4, 5));
    v128.store(p, i32x4.shuffle(t0, t2, 2, 3, 6, 7), 16);
    v128.store(p, i32x4.shuffle(t1, t3, 0, 1, 4, 5), 32);
    v128.store(p, i32x4.shuffle(t1, t3, 2, 3, 6, 7), 48);
  }
}

/**
 * Stores four byte vectors (i32 lanes; only the low byte counts, as a C uint8 store) as bytes
 * k..k+3 of each lane's block: lane l's four bytes go to out + l·outStride.
 */
@inline export function storeBytes4(q0: v128, q1: v128, q2: v128, q3: v128, out: usize, outStride: usize, lanes: i32): void {
  const m = i32x4.splat(0xff);
  const a = i16x8.narrow_i32x4_u(v128.and(q0, m), v128.and(q1, m));
  const b = i16x8.narrow_i32x4_u(v128.and(q2, m), v128.and(q3, m));
  const bytes = i8x16.shuffle(i8x16.narrow_i16x8_u(a, b), a, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  v128.store32_lane(out, bytes, 0);
  if (lanes > 1) v128.store32_lane(out + outStride, bytes, 1);
  if (lanes > 2) v128.store32_lane(out + 2 * outStride, bytes, 2);
  if (lanes > 3) v128.store32_lane(out + 3 * outStride, bytes, 3);
}

/** Stores lane l's i32 `v` (low byte) at out + l·outStride. */
@inline export function storeByteLanes(v: v128, out: usize, outStride: usize, lanes: i32): void {
  store<u8>(out, <u8>i32x4.extract_lane(v, 0));
  if (lanes > 1) store<u8>(out + outStride, <u8>i32x4.extract_lane(v, 1));
  if (lanes > 2) store<u8>(out + 2 * outStride, <u8>i32x4.extract_lane(v, 2));
  if (lanes > 3) store<u8>(out + 3 * outStride, <u8>i32x4.extract_lane(v, 3));
}

/** Stores lane l's u16 `v` (little-endian) at out + l·outStride. */
@inline export function storeU16Lanes(v: v128, out: usize, outStride: usize, lanes: i32): void {
  store<u16>(out, <u16>i32x4.extract_lane(v, 0));
  if (lanes > 1) store<u16>(out + outStride, <u16>i32x4.extract_lane(v, 1));
  if (lanes > 2) store<u16>(out + 2 * outStride, <u16>i32x4.extract_lane(v, 2));
  if (lanes > 3) store<u16>(out + 3 * outStride, <u16>i32x4.extract_lane(v, 3));
}

/** ggml's nearest_int: add 1.5·2^23 in f32, keep the low 22 mantissa bits (ties to even for |v| < 2^22). */
@inline export function nearestInt(v: v128): v128 {
  const t = f32x4.add(v, f32x4.splat(12582912.0));
  return i32x4.sub(v128.and(t, i32x4.splat(0x007fffff)), i32x4.splat(0x00400000));
}

/** C `(int)v` on x86-64: truncation; NaN and out-of-range values give INT32_MIN. */
@inline export function truncToInt32(v: v128): v128 {
  const inRange = v128.and(f32x4.ge(v, f32x4.splat(-2147483648.0)), f32x4.lt(v, f32x4.splat(2147483648.0)));
  return v128.bitselect(i32x4.trunc_sat_f32x4_s(v), i32x4.splat(-2147483648), inRange);
}

/** C `roundf`: ties away from zero (truncate, then adjust by the exact remainder). */
@inline export function roundHalfAway(v: v128): v128 {
  const t = f32x4.trunc(v);
  const r = f32x4.sub(v, t);
  const up = v128.and(f32x4.ge(r, f32x4.splat(0.5)), f32x4.splat(1.0));
  const down = v128.and(f32x4.le(r, f32x4.splat(-0.5)), f32x4.splat(1.0));
  return f32x4.sub(f32x4.add(t, up), down);
}

/** max(lo, min(hi, v)) on i32 lanes. */
@inline export function clampI(v: v128, lo: i32, hi: i32): v128 {
  return i32x4.max_s(i32x4.splat(lo), i32x4.min_s(i32x4.splat(hi), v));
}

/** `cond ? a : b` per lane (cond is an all-ones / all-zeros mask). */
@inline export function sel(cond: v128, a: v128, b: v128): v128 {
  return v128.bitselect(a, b, cond);
}

@inline export function toF32(v: v128): v128 {
  return f32x4.convert_i32x4_s(v);
}

/** `x / y` where y ≠ 0, else 0 (C's `d ? 1/d : 0` with NaN counting as non-zero). */
@inline export function invOrZero(d: v128): v128 {
  return v128.andnot(f32x4.div(f32x4.splat(1.0), d), f32x4.eq(d, f32x4.splat(0.0)));
}

/** `m >> shift` rounded to nearest, ties to even (0 < shift ≤ 24). */
@inline function roundShiftEven(m: u32, shift: u32): u32 {
  const q = m >> shift;
  const rem = m & ((1 << shift) - 1);
  const half: u32 = 1 << (shift - 1);
  return rem > half || (rem == half && (q & 1) == 1) ? q + 1 : q;
}

/** GGML_FP32_TO_FP16: round to nearest even, NaN to sign | 0x7E00, overflow to ±Inf. */
export function f32ToF16(x: f32): u32 {
  const w = reinterpret<u32>(x);
  const sign = (w >> 16) & 0x8000;
  const exp = <i32>((w >> 23) & 0xff);
  const man = w & 0x7fffff;
  if (exp == 0xff) return sign | (man != 0 ? 0x7e00 : 0x7c00);
  const e = exp - 112;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    return sign | roundShiftEven(man | 0x800000, <u32>(14 - e));
  }
  return sign | ((<u32>e << 10) + roundShiftEven(man, 13));
}

/** GGML_FP16_TO_FP32 (exact). */
export function f16ToF32(h: u32): f32 {
  const sign: u32 = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp == 0) {
    const v = <f32>man * 5.9604644775390625e-8; // 2^-24
    return reinterpret<f32>(reinterpret<u32>(v) | sign);
  }
  if (exp == 31) return reinterpret<f32>(sign | 0x7f800000 | (man << 13));
  return reinterpret<f32>(sign | ((exp + 112) << 23) | (man << 13));
}

/** Per lane: the f16 code of `v` (returned as i32 lanes) and, in `rounded`, its f32 value. */
@inline export function toF16Lanes(v: v128, rounded: usize): v128 {
  const h0 = f32ToF16(f32x4.extract_lane(v, 0));
  const h1 = f32ToF16(f32x4.extract_lane(v, 1));
  const h2 = f32ToF16(f32x4.extract_lane(v, 2));
  const h3 = f32ToF16(f32x4.extract_lane(v, 3));
  let r = f32x4.splat(f16ToF32(h0));
  r = f32x4.replace_lane(r, 1, f16ToF32(h1));
  r = f32x4.replace_lane(r, 2, f16ToF32(h2));
  r = f32x4.replace_lane(r, 3, f16ToF32(h3));
  v128.store(rounded, r);
  let h = i32x4.splat(<i32>h0);
  h = i32x4.replace_lane(h, 1, <i32>h1);
  h = i32x4.replace_lane(h, 2, <i32>h2);
  h = i32x4.replace_lane(h, 3, <i32>h3);
  return h;
}
