// Dequantization of every ggml block type to f32, bit-equal to libggml's dequantize_row_* and to the
// twin src/core/quant/dequant.ts (which documents each layout and the operation order). Each
// element's f32 operations are the reference's, in its order; SIMD only runs the same operation
// on four elements at once (no reduction, no fused multiply-add), so it changes no bit.
import {
  IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID,
  KSIGNS_IQ2XS, KVALUES_IQ4NL, KVALUES_MXFP4,
} from './ggml_tables';
import {
  IQ1_M, IQ1_S, IQ2_S, IQ2_XS, IQ2_XXS, IQ3_S, IQ3_XXS, IQ4_NL, IQ4_XS, MXFP4,
  Q2_K, Q3_K, Q4_0, Q4_1, Q4_K, Q5_0, Q5_1, Q5_K, Q6_K, Q8_0, Q8_K, TQ1_0, TQ2_0,
} from './ggml_types';

/**
 * Dequantizes `blocks` blocks of ggml type `ggmlType` at `src` into f32 at `dst`.
 * Returns the number of values written, or -1 for a type without a dequantizer.
 */
export function dequantizeBlocks(ggmlType: i32, src: usize, dst: usize, blocks: i32): i32 {
  let bytes: usize = 0;
  let size: i32 = 256;
  switch (ggmlType) {
    case Q4_0: bytes = 18; size = 32; break;
    case Q4_1: bytes = 20; size = 32; break;
    case Q5_0: bytes = 22; size = 32; break;
    case Q5_1: bytes = 24; size = 32; break;
    case Q8_0: bytes = 34; size = 32; break;
    case Q2_K: bytes = 84; break;
    case Q3_K: bytes = 110; break;
    case Q4_K: bytes = 144; break;
    case Q5_K: bytes = 176; break;
    case Q6_K: bytes = 210; break;
    case Q8_K: bytes = 292; break;
    case IQ2_XXS: bytes = 66; break;
    case IQ2_XS: bytes = 74; break;
    case IQ2_S: bytes = 82; break;
    case IQ3_XXS: bytes = 98; break;
    case IQ3_S: bytes = 110; break;
    case IQ1_S: bytes = 50; break;
    case IQ1_M: bytes = 56; break;
    case IQ4_NL: bytes = 18; size = 32; break;
    case IQ4_XS: bytes = 136; break;
    case TQ1_0: bytes = 54; break;
    case TQ2_0: bytes = 66; break;
    case MXFP4: bytes = 17; size = 32; break;
    default: return -1;
  }
  const out: usize = <usize>size * 4;
  for (let b: i32 = 0; b < blocks; b++) {
    const s = src + <usize>b * bytes;
    const y = dst + <usize>b * out;
    switch (ggmlType) {
      case Q4_0: q4_0(s, y); break;
      case Q4_1: q4_1(s, y); break;
      case Q5_0: q5_0(s, y); break;
      case Q5_1: q5_1(s, y); break;
      case Q8_0: q8_0(s, y); break;
      case Q2_K: q2_K(s, y); break;
      case Q3_K: q3_K(s, y); break;
      case Q4_K: q4_K(s, y); break;
      case Q5_K: q5_K(s, y); break;
      case Q6_K: q6_K(s, y); break;
      case Q8_K: q8_K(s, y); break;
      case IQ2_XXS: iq2_xxs(s, y); break;
      case IQ2_XS: iq2_xs(s, y); break;
      case IQ2_S: iq2_s(s, y); break;
      case IQ3_XXS: iq3_xxs(s, y); break;
      case IQ3_S: iq3_s(s, y); break;
      case IQ1_S: iq1_s(s, y); break;
      case IQ1_M: iq1_m(s, y); break;
      case IQ4_NL: iq4_nl(s, y); break;
      case IQ4_XS: iq4_xs(s, y); break;
      case TQ1_0: tq1_0(s, y); break;
      case TQ2_0: tq2_0(s, y); break;
      default: mxfp4(s, y); break;
    }
  }
  return blocks * size;
}

/** IEEE half → f32 (exact; NaN comes out quiet, as x86's conversion in libggml gives). */
// @ts-ignore: decorator
@inline function halfToF32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const em = h & 0x7fff;
  if (em >= 0x7c00) return reinterpret<f32>(sign | 0x7f800000 | ((em & 0x3ff) << 13) | (em > 0x7c00 ? 0x400000 : 0));
  if (em >= 0x400) return reinterpret<f32>(sign | ((em << 13) + 0x38000000));
  const v = <f32>em * 5.9604645e-8; // subnormal: em · 2^-24, exact
  return sign ? -v : v;
}

// @ts-ignore: decorator
@inline function half(p: usize): f32 {
  return halfToF32(<u32>load<u16>(p));
}

// ---- SIMD helpers: 16 signed bytes → 16 f32 at y (q·d, q·d + m, q·d − m)

// @ts-ignore: decorator
@inline function store16Mul(y: usize, q: v128, d: v128): void {
  const lo = i16x8.extend_low_i8x16_s(q);
  const hi = i16x8.extend_high_i8x16_s(q);
  v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), d));
  v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), d), 16);
  v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), d), 32);
  v128.store(y, f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), d), 48);
}

// @ts-ignore: decorator
@inline function store16MulAdd(y: usize, q: v128, d: v128, m: v128): void {
  const lo = i16x8.extend_low_i8x16_s(q);
  const hi = i16x8.extend_high_i8x16_s(q);
  v128.store(y, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), d), m));
  v128.store(y, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), d), m), 16);
  v128.store(y, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), d), m), 32);
  v128.store(y, f32x4.add(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), d), m), 48);
}

// @ts-ignore: decorator
@inline function store16MulSub(y: usize, q: v128, d: v128, m: v128): void {
  const lo = i16x8.extend_low_i8x16_s(q);
  const hi = i16x8.extend_high_i8x16_s(q);
  v128.store(y, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), d), m));
  v128.store(y, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), d), m), 16);
  v128.store(y, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), d), m), 32);
  v128.store(y, f32x4.sub(f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), d), m), 48);
}

/** Sixteen copies of bit `bit` of each byte of `v`, moved to bit `to` (0 or 4). */
// @ts-ignore: decorator
@inline function bitOf(v: v128, bit: i32, to: i32): v128 {
  return i8x16.shl(v128.and(i8x16.shr_u(v, bit), i8x16.splat(1)), to);
}

// ---- legacy types

function q4_0(s: usize, y: usize): void {
  const d = f32x4.splat(half(s));
  const v = v128.load(s, 2);
  const eight = i8x16.splat(8);
  store16Mul(y, i8x16.sub(v128.and(v, i8x16.splat(15)), eight), d);
  store16Mul(y + 64, i8x16.sub(i8x16.shr_u(v, 4), eight), d);
}

function q4_1(s: usize, y: usize): void {
  const d = f32x4.splat(half(s));
  const m = f32x4.splat(half(s + 2));
  const v = v128.load(s, 4);
  store16MulAdd(y, v128.and(v, i8x16.splat(15)), d, m);
  store16MulAdd(y + 64, i8x16.shr_u(v, 4), d, m);
}

/** The 32 fifth bits of Q5_0/Q5_1 at `p` as two vectors of 0 or 16 (elements 0–15 and 16–31). */
// @ts-ignore: decorator
@inline function fifthBitsLow(p: usize): v128 {
  // spread bit j of the 16-bit word to byte j: broadcast the word's bytes, then test one bit per lane
  const w = <u32>load<u16>(p);
  const bytes = i8x16.replace_lane(i8x16.splat(<i8>w), 8, <i8>(w >> 8));
  const spread = i8x16.shuffle(bytes, bytes, 0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8);
  const mask = v128(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return v128.and(i8x16.eq(v128.and(spread, mask), mask), i8x16.splat(16));
}

function q5_0(s: usize, y: usize): void {
  const d = f32x4.splat(half(s));
  const v = v128.load(s, 6);
  const sixteen = i8x16.splat(16);
  const lo = v128.or(v128.and(v, i8x16.splat(15)), fifthBitsLow(s + 2));
  const hi = v128.or(i8x16.shr_u(v, 4), fifthBitsLow(s + 4));
  store16Mul(y, i8x16.sub(lo, sixteen), d);
  store16Mul(y + 64, i8x16.sub(hi, sixteen), d);
}

function q5_1(s: usize, y: usize): void {
  const d = f32x4.splat(half(s));
  const m = f32x4.splat(half(s + 2));
  const v = v128.load(s, 8);
  store16MulAdd(y, v128.or(v128.and(v, i8x16.splat(15)), fifthBitsLow(s + 4)), d, m);
  store16MulAdd(y + 64, v128.or(i8x16.shr_u(v, 4), fifthBitsLow(s + 6)), d, m);
}

function q8_0(s: usize, y: usize): void {
  const d = f32x4.splat(half(s));
  store16Mul(y, v128.load(s, 2), d);
  store16Mul(y + 64, v128.load(s, 18), d);
}

function mxfp4(s: usize, y: usize): void {
  const e = <u32>load<u8>(s);
  const d = f32x4.splat(reinterpret<f32>(e < 2 ? <u32>0x00200000 << e : (e - 1) << 23));
  const levels = v128.load(changetype<usize>(KVALUES_MXFP4));
  const v = v128.load(s, 1);
  store16Mul(y, i8x16.swizzle(levels, v128.and(v, i8x16.splat(15))), d);
  store16Mul(y + 64, i8x16.swizzle(levels, i8x16.shr_u(v, 4)), d);
}

// ---- K-quants

function q2_K(s: usize, y: usize): void {
  const d = half(s + 80);
  const dmin = half(s + 82);
  const three = i8x16.splat(3);
  for (let g: i32 = 0; g < 16; g++) {
    const sc = <u32>load<u8>(s + g);
    const dl = f32x4.splat(d * <f32>(sc & 15));
    const ml = f32x4.splat(dmin * <f32>(sc >> 4));
    const q = v128.load(s + 16 + 32 * (g >> 3) + 16 * (g & 1));
    store16MulSub(y + 64 * g, v128.and(i8x16.shr_u(q, 2 * ((g >> 1) & 3)), three), dl, ml);
  }
}

function q3_K(s: usize, y: usize): void {
  const d = half(s + 108);
  const three = i8x16.splat(3);
  const four = i8x16.splat(4);
  for (let g: i32 = 0; g < 16; g++) {
    const low4 = g < 8 ? <i32>load<u8>(s + 96 + g) & 15 : <i32>load<u8>(s + 96 + g - 8) >> 4;
    const high2 = (<i32>load<u8>(s + 104 + (g & 3)) >> (2 * (g >> 2))) & 3;
    const dl = f32x4.splat(d * <f32>((low4 | (high2 << 4)) - 32));
    const q = v128.load(s + 32 + 32 * (g >> 3) + 16 * (g & 1));
    const hm = v128.load(s + 16 * (g & 1));
    const low = v128.and(i8x16.shr_u(q, 2 * ((g >> 1) & 3)), three);
    // low − (high bit clear ? 4 : 0) = low − 4 + 4·high
    const high = bitOf(hm, 4 * (g >> 3) + ((g >> 1) & 3), 2);
    store16Mul(y + 64 * g, i8x16.add(i8x16.sub(low, four), high), dl);
  }
}

// @ts-ignore: decorator
@inline function kScale(p: usize, j: i32): u32 {
  return j < 4 ? <u32>load<u8>(p + j) & 63 : (<u32>load<u8>(p + j + 4) & 15) | ((<u32>load<u8>(p + j - 4) >> 6) << 4);
}

// @ts-ignore: decorator
@inline function kMin(p: usize, j: i32): u32 {
  return j < 4 ? <u32>load<u8>(p + j + 4) & 63 : (<u32>load<u8>(p + j + 4) >> 4) | ((<u32>load<u8>(p + j) >> 6) << 4);
}

function q4_K(s: usize, y: usize): void {
  const d = half(s);
  const dmin = half(s + 2);
  const fifteen = i8x16.splat(15);
  for (let j: i32 = 0; j < 8; j++) {
    const dl = f32x4.splat(d * <f32>kScale(s + 4, j));
    const ml = f32x4.splat(dmin * <f32>kMin(s + 4, j));
    const qp = s + 16 + 32 * (j >> 1);
    const shift = 4 * (j & 1);
    store16MulSub(y + 128 * j, v128.and(i8x16.shr_u(v128.load(qp), shift), fifteen), dl, ml);
    store16MulSub(y + 128 * j + 64, v128.and(i8x16.shr_u(v128.load(qp, 16), shift), fifteen), dl, ml);
  }
}

function q5_K(s: usize, y: usize): void {
  const d = half(s);
  const dmin = half(s + 2);
  const fifteen = i8x16.splat(15);
  const qh0 = v128.load(s + 16);
  const qh1 = v128.load(s + 32);
  for (let j: i32 = 0; j < 8; j++) {
    const dl = f32x4.splat(d * <f32>kScale(s + 4, j));
    const ml = f32x4.splat(dmin * <f32>kMin(s + 4, j));
    const qp = s + 48 + 32 * (j >> 1);
    const shift = 4 * (j & 1);
    const a = v128.or(v128.and(i8x16.shr_u(v128.load(qp), shift), fifteen), bitOf(qh0, j, 4));
    const b = v128.or(v128.and(i8x16.shr_u(v128.load(qp, 16), shift), fifteen), bitOf(qh1, j, 4));
    store16MulSub(y + 128 * j, a, dl, ml);
    store16MulSub(y + 128 * j + 64, b, dl, ml);
  }
}

function q6_K(s: usize, y: usize): void {
  const d = half(s + 208);
  const fifteen = i8x16.splat(15);
  const three = i8x16.splat(3);
  const bias = i8x16.splat(32);
  for (let n: i32 = 0; n < 2; n++) {
    const ql = s + 64 * n;
    const qh = s + 128 + 32 * n;
    const sc = s + 192 + 8 * n;
    for (let half16: i32 = 0; half16 < 2; half16++) {
      const off = 16 * half16;
      const l0 = v128.load(ql + off);
      const l1 = v128.load(ql + off + 32);
      const h = v128.load(qh + off);
      const q1 = v128.or(v128.and(l0, fifteen), i8x16.shl(v128.and(h, three), 4));
      const q2 = v128.or(v128.and(l1, fifteen), i8x16.shl(v128.and(i8x16.shr_u(h, 2), three), 4));
      const q3 = v128.or(i8x16.shr_u(l0, 4), i8x16.shl(v128.and(i8x16.shr_u(h, 4), three), 4));
      const q4 = v128.or(i8x16.shr_u(l1, 4), i8x16.shl(i8x16.shr_u(h, 6), 4));
      const o = y + 512 * n + 4 * off;
      store16Mul(o, i8x16.sub(q1, bias), f32x4.splat(d * <f32>load<i8>(sc + half16)));
      store16Mul(o + 128, i8x16.sub(q2, bias), f32x4.splat(d * <f32>load<i8>(sc + half16 + 2)));
      store16Mul(o + 256, i8x16.sub(q3, bias), f32x4.splat(d * <f32>load<i8>(sc + half16 + 4)));
      store16Mul(o + 384, i8x16.sub(q4, bias), f32x4.splat(d * <f32>load<i8>(sc + half16 + 6)));
    }
  }
}

function q8_K(s: usize, y: usize): void {
  const d = f32x4.splat(load<f32>(s));
  for (let j: i32 = 0; j < 16; j++) store16Mul(y + 64 * j, v128.load(s + 4 + 16 * j), d);
}

// ---- IQ types (scalar: table-driven, one grid row per 8 or 4 elements)

// @ts-ignore: decorator
@inline function signedProduct(db: f32, magnitude: u32, signs: u32, j: i32): f32 {
  const v = db * <f32>magnitude;
  return (signs >> j) & 1 ? -v : v;
}

function iq2_xxs(s: usize, y: usize): void {
  const d = half(s);
  const grid = changetype<usize>(IQ2XXS_GRID);
  const ksigns = changetype<usize>(KSIGNS_IQ2XS);
  for (let ib: i32 = 0; ib < 8; ib++) {
    const p = s + 2 + 8 * ib;
    const aux1 = load<u32>(p + 4);
    const db = d * (<f32>0.5 + <f32>(aux1 >> 28)) * <f32>0.25;
    for (let l: i32 = 0; l < 4; l++) {
      const g = grid + 8 * <usize>load<u8>(p + l);
      const signs = <u32>load<u8>(ksigns + ((aux1 >> (7 * l)) & 127));
      const o = y + 4 * (32 * ib + 8 * l);
      for (let j: i32 = 0; j < 8; j++) store<f32>(o + 4 * j, signedProduct(db, load<u8>(g + j), signs, j));
    }
  }
}

function iq2_xs(s: usize, y: usize): void {
  const d = half(s);
  const grid = changetype<usize>(IQ2XS_GRID);
  const ksigns = changetype<usize>(KSIGNS_IQ2XS);
  for (let ib: i32 = 0; ib < 8; ib++) {
    const sc = <u32>load<u8>(s + 66 + ib);
    const db0 = d * (<f32>0.5 + <f32>(sc & 15)) * <f32>0.25;
    const db1 = d * (<f32>0.5 + <f32>(sc >> 4)) * <f32>0.25;
    for (let l: i32 = 0; l < 4; l++) {
      const q = <u32>load<u16>(s + 2 + 2 * (4 * ib + l));
      const g = grid + 8 * <usize>(q & 511);
      const signs = <u32>load<u8>(ksigns + (q >> 9));
      const db = l < 2 ? db0 : db1;
      const o = y + 4 * (32 * ib + 8 * l);
      for (let j: i32 = 0; j < 8; j++) store<f32>(o + 4 * j, signedProduct(db, load<u8>(g + j), signs, j));
    }
  }
}

function iq2_s(s: usize, y: usize): void {
  const d = half(s);
  const grid = changetype<usize>(IQ2S_GRID);
  for (let ib: i32 = 0; ib < 8; ib++) {
    const sc = <u32>load<u8>(s + 74 + ib);
    const db0 = d * (<f32>0.5 + <f32>(sc & 15)) * <f32>0.25;
    const db1 = d * (<f32>0.5 + <f32>(sc >> 4)) * <f32>0.25;
    const qh = <u32>load<u8>(s + 66 + ib);
    for (let l: i32 = 0; l < 4; l++) {
      const g = grid + 8 * <usize>(<u32>load<u8>(s + 2 + 4 * ib + l) | (((qh >> (2 * l)) & 3) << 8));
      const signs = <u32>load<u8>(s + 34 + 4 * ib + l);
      const db = l < 2 ? db0 : db1;
      const o = y + 4 * (32 * ib + 8 * l);
      for (let j: i32 = 0; j < 8; j++) store<f32>(o + 4 * j, signedProduct(db, load<u8>(g + j), signs, j));
    }
  }
}

function iq3_xxs(s: usize, y: usize): void {
  const d = half(s);
  const grid = changetype<usize>(IQ3XXS_GRID);
  const ksigns = changetype<usize>(KSIGNS_IQ2XS);
  for (let ib: i32 = 0; ib < 8; ib++) {
    const aux = load<u32>(s + 66 + 4 * ib);
    const db = d * (<f32>0.5 + <f32>(aux >> 28)) * <f32>0.5;
    for (let l: i32 = 0; l < 4; l++) {
      const signs = <u32>load<u8>(ksigns + ((aux >> (7 * l)) & 127));
      const g1 = grid + 4 * <usize>load<u8>(s + 2 + 8 * ib + 2 * l);
      const g2 = grid + 4 * <usize>load<u8>(s + 3 + 8 * ib + 2 * l);
      const o = y + 4 * (32 * ib + 8 * l);
      for (let j: i32 = 0; j < 4; j++) {
        store<f32>(o + 4 * j, signedProduct(db, load<u8>(g1 + j), signs, j));
        store<f32>(o + 16 + 4 * j, signedProduct(db, load<u8>(g2 + j), signs, j + 4));
      }
    }
  }
}

function iq3_s(s: usize, y: usize): void {
  const d = half(s);
  const grid = changetype<usize>(IQ3S_GRID);
  for (let ib: i32 = 0; ib < 8; ib++) {
    const sc = <i32>load<u8>(s + 106 + (ib >> 1));
    const db = d * <f32>(((ib & 1) == 0 ? sc & 15 : sc >> 4) * 2 + 1);
    const qh = <u32>load<u8>(s + 66 + ib);
    for (let l: i32 = 0; l < 4; l++) {
      const g1 = grid + 4 * <usize>(<u32>load<u8>(s + 2 + 8 * ib + 2 * l) | (((qh >> (2 * l)) & 1) << 8));
      const g2 = grid + 4 * <usize>(<u32>load<u8>(s + 3 + 8 * ib + 2 * l) | (((qh >> (2 * l + 1)) & 1) << 8));
      const signs = <u32>load<u8>(s + 74 + 4 * ib + l);
      const o = y + 4 * (32 * ib + 8 * l);
      for (let j: i32 = 0; j < 4; j++) {
        store<f32>(o + 4 * j, signedProduct(db, load<u8>(g1 + j), signs, j));
        store<f32>(o + 16 + 4 * j, signedProduct(db, load<u8>(g2 + j), signs, j + 4));
      }
    }
  }
}

const IQ1_DELTA: f32 = 0.125;

function iq1_s(s: usize, y: usize): void {
  const d = half(s);
  const grid = changetype<usize>(IQ1S_GRID);
  for (let ib: i32 = 0; ib < 8; ib++) {
    const qh = <u32>load<u16>(s + 34 + 2 * ib);
    const dl = d * <f32>(((qh >> 12) & 7) * 2 + 1);
    const delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
    for (let l: i32 = 0; l < 4; l++) {
      const g = grid + 8 * <usize>(<u32>load<u8>(s + 2 + 4 * ib + l) | (((qh >> (3 * l)) & 7) << 8));
      const o = y + 4 * (32 * ib + 8 * l);
      for (let j: i32 = 0; j < 8; j++) store<f32>(o + 4 * j, dl * (<f32>load<i8>(g + j) + delta));
    }
  }
}

function iq1_m(s: usize, y: usize): void {
  const sc0 = <u32>load<u16>(s + 48), sc1 = <u32>load<u16>(s + 50);
  const sc2 = <u32>load<u16>(s + 52), sc3 = <u32>load<u16>(s + 54);
  const d = halfToF32((sc0 >> 12) | ((sc1 >> 8) & 0x00f0) | ((sc2 >> 4) & 0x0f00) | (sc3 & 0xf000));
  const grid = changetype<usize>(IQ1S_GRID);
  for (let ib: i32 = 0; ib < 8; ib++) {
    const sc = <u32>load<u16>(s + 48 + 2 * (ib >> 1));
    const shift = 6 * (ib & 1);
    const dl1 = d * <f32>(((sc >> shift) & 7) * 2 + 1);
    const dl2 = d * <f32>(((sc >> (shift + 3)) & 7) * 2 + 1);
    for (let l: i32 = 0; l < 4; l++) {
      const qh = <u32>load<u8>(s + 32 + 2 * ib + (l >> 1));
      const odd = (l & 1) != 0;
      const hi = odd ? (qh >> 4) & 7 : qh & 7;
      const delta = (odd ? qh & 0x80 : qh & 0x08) ? -IQ1_DELTA : IQ1_DELTA;
      const g = grid + 8 * <usize>(<u32>load<u8>(s + 4 * ib + l) | (hi << 8));
      const dl = l < 2 ? dl1 : dl2;
      const o = y + 4 * (32 * ib + 8 * l);
      for (let j: i32 = 0; j < 8; j++) store<f32>(o + 4 * j, dl * (<f32>load<i8>(g + j) + delta));
    }
  }
}

function iq4_nl(s: usize, y: usize): void {
  const d = f32x4.splat(half(s));
  const levels = v128.load(changetype<usize>(KVALUES_IQ4NL));
  const v = v128.load(s, 2);
  store16Mul(y, i8x16.swizzle(levels, v128.and(v, i8x16.splat(15))), d);
  store16Mul(y + 64, i8x16.swizzle(levels, i8x16.shr_u(v, 4)), d);
}

function iq4_xs(s: usize, y: usize): void {
  const d = half(s);
  const scalesH = <u32>load<u16>(s + 2);
  const levels = v128.load(changetype<usize>(KVALUES_IQ4NL));
  for (let ib: i32 = 0; ib < 8; ib++) {
    const ls = ((<u32>load<u8>(s + 4 + (ib >> 1)) >> (4 * (ib & 1))) & 15) | (((scalesH >> (2 * ib)) & 3) << 4);
    const dl = f32x4.splat(d * <f32>(<i32>ls - 32));
    const v = v128.load(s + 8 + 16 * ib);
    store16Mul(y + 128 * ib, i8x16.swizzle(levels, v128.and(v, i8x16.splat(15))), dl);
    store16Mul(y + 128 * ib + 64, i8x16.swizzle(levels, i8x16.shr_u(v, 4)), dl);
  }
}

// ---- ternary types

// @ts-ignore: decorator
@inline function trit(byte: u32, pow3: u32): f32 {
  const q = (byte * pow3) & 255;
  return <f32>(<i32>((q * 3) >> 8) - 1);
}

function tq1_0(s: usize, y: usize): void {
  const d = half(s + 52);
  let o = y;
  let pow3: u32 = 1;
  for (let n: i32 = 0; n < 5; n++) {
    for (let m: i32 = 0; m < 32; m++) store<f32>(o + 4 * m, trit(load<u8>(s + m), pow3) * d);
    o += 128;
    pow3 *= 3;
  }
  pow3 = 1;
  for (let n: i32 = 0; n < 5; n++) {
    for (let m: i32 = 0; m < 16; m++) store<f32>(o + 4 * m, trit(load<u8>(s + 32 + m), pow3) * d);
    o += 64;
    pow3 *= 3;
  }
  pow3 = 1;
  for (let n: i32 = 0; n < 4; n++) {
    for (let m: i32 = 0; m < 4; m++) store<f32>(o + 4 * m, trit(load<u8>(s + 48 + m), pow3) * d);
    o += 16;
    pow3 *= 3;
  }
}

function tq2_0(s: usize, y: usize): void {
  const d = f32x4.splat(half(s + 64));
  const three = i8x16.splat(3);
  const one = i8x16.splat(1);
  for (let j: i32 = 0; j < 64; j += 16) {
    const v = v128.load(s + j);
    // byte m of 32 feeds elements 128·⌊m/32⌋ + 32·l + (m mod 32)
    const o = y + 4 * (128 * (j >> 5) + (j & 31));
    for (let l: i32 = 0; l < 4; l++) {
      store16Mul(o + 128 * l, i8x16.sub(v128.and(i8x16.shr_u(v, 2 * l), three), one), d);
    }
  }
}
