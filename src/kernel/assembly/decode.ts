// Plain element types → f32: decode<Type>ToF32(src, n, dst) reads n little-endian elements at src
// and writes n f32 at dst. src and dst must not overlap. Twin: src/core/stats/decode.ts (same bits,
// NaN payloads included).

// f16 → f32 without branches: the f16 exponent+mantissa shifted into f32 position is the value
// · 2^-112 (subnormals included, exactly), so multiply by 2^112; Inf/NaN get the f32 exponent set,
// which keeps the payload.
const F16_SCALE: f32 = reinterpret<f32>(0x77800000); // 2^112

@inline function f16Bits(h: u32): u32 {
  const scaled = reinterpret<u32>(reinterpret<f32>((h & 0x7fff) << 13) * F16_SCALE);
  const infNan: u32 = (h & 0x7c00) == 0x7c00 ? 0x7f800000 : 0;
  return scaled | infNan | ((h & 0x8000) << 16);
}

@inline function f16x4Bits(h: v128): v128 {
  const scaled = f32x4.mul(v128.shl<i32>(v128.and(h, i32x4.splat(0x7fff)), 13), f32x4.splat(F16_SCALE));
  const infNan = v128.and(i32x4.eq(v128.and(h, i32x4.splat(0x7c00)), i32x4.splat(0x7c00)), i32x4.splat(0x7f800000));
  const sign = v128.shl<i32>(v128.and(h, i32x4.splat(0x8000)), 16);
  return v128.or(v128.or(scaled, infNan), sign);
}

export function decodeF16ToF32(src: usize, n: usize, dst: usize): void {
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (i << 1));
    v128.store(dst + (i << 2), f16x4Bits(i32x4.extend_low_i16x8_u(h)));
    v128.store(dst + (i << 2), f16x4Bits(i32x4.extend_high_i16x8_u(h)), 16);
  }
  for (; i < n; i++) store<u32>(dst + (i << 2), f16Bits(<u32>load<u16>(src + (i << 1))));
}

export function decodeBF16ToF32(src: usize, n: usize, dst: usize): void {
  let i: usize = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(src + (i << 1));
    v128.store(dst + (i << 2), v128.shl<i32>(i32x4.extend_low_i16x8_u(h), 16));
    v128.store(dst + (i << 2), v128.shl<i32>(i32x4.extend_high_i16x8_u(h), 16), 16);
  }
  for (; i < n; i++) store<u32>(dst + (i << 2), <u32>load<u16>(src + (i << 1)) << 16);
}

// OCP FP8 E5M2 is the top byte of an f16.
export function decodeF8E5M2ToF32(src: usize, n: usize, dst: usize): void {
  for (let i: usize = 0; i < n; i++) store<u32>(dst + (i << 2), f16Bits(<u32>load<u8>(src + i) << 8));
}

// OCP FP8 E4M3 ("fn": no Inf, S.1111.111 = NaN → quiet NaN with the sign). The exponent+mantissa
// shifted into f32 position is the value · 2^-120, as for f16 above.
const E4M3_SCALE: f32 = reinterpret<f32>(0x7b800000); // 2^120

export function decodeF8E4M3ToF32(src: usize, n: usize, dst: usize): void {
  for (let i: usize = 0; i < n; i++) {
    const b = <u32>load<u8>(src + i);
    const sign = (b & 0x80) << 24;
    const bits: u32 = (b & 0x7f) == 0x7f ? 0x7fc00000 : reinterpret<u32>(reinterpret<f32>((b & 0x7f) << 20) * E4M3_SCALE);
    store<u32>(dst + (i << 2), bits | sign);
  }
}

// NaN → the quiet NaN with its sign: f32.demote_f64 leaves NaN bits to the engine.
export function decodeF64ToF32(src: usize, n: usize, dst: usize): void {
  for (let i: usize = 0; i < n; i++) {
    const x = load<f64>(src + (i << 3));
    const bits: u32 = x != x ? (<u32>(reinterpret<u64>(x) >> 32) & 0x80000000) | 0x7fc00000 : reinterpret<u32>(<f32>x);
    store<u32>(dst + (i << 2), bits);
  }
}

@inline function decodeInt<T>(src: usize, n: usize, dst: usize): void {
  for (let i: usize = 0; i < n; i++) store<f32>(dst + (i << 2), <f32>load<T>(src + i * sizeof<T>()));
}

export function decodeI8ToF32(src: usize, n: usize, dst: usize): void {
  decodeInt<i8>(src, n, dst);
}
export function decodeU8ToF32(src: usize, n: usize, dst: usize): void {
  decodeInt<u8>(src, n, dst);
}
export function decodeI16ToF32(src: usize, n: usize, dst: usize): void {
  decodeInt<i16>(src, n, dst);
}
export function decodeU16ToF32(src: usize, n: usize, dst: usize): void {
  decodeInt<u16>(src, n, dst);
}
export function decodeI32ToF32(src: usize, n: usize, dst: usize): void {
  decodeInt<i32>(src, n, dst);
}
export function decodeU32ToF32(src: usize, n: usize, dst: usize): void {
  decodeInt<u32>(src, n, dst);
}
export function decodeI64ToF32(src: usize, n: usize, dst: usize): void {
  decodeInt<i64>(src, n, dst);
}
export function decodeU64ToF32(src: usize, n: usize, dst: usize): void {
  decodeInt<u64>(src, n, dst);
}
