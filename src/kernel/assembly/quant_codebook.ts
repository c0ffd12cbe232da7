// TQ1_0, TQ2_0, IQ4_NL, IQ4_XS and MXFP4 quantizers on four rows at once (one block per SIMD
// lane), byte-identical to libggml and to the twins in src/core/quant/ggml-ternary.ts,
// ggml-iq4.ts and ggml-mxfp4.ts, whose comments give each type's layout and operation order.
import {
  clampI, gatherRows, invOrZero, nearestInt, roundHalfAway, sel, storeBytes4, storeU16Lanes, toF16Lanes, toF32,
} from './quant_common';
import { at, SAUX, SL, SSCALES, STMP, SW, SX } from './quant_layout';

@inline function ld(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4));
}

@inline function st(p: usize, i: i32, v: v128): void {
  v128.store(p + (<usize>i << 4), v);
}

function storeByteRun(bytes: usize, count: i32, out: usize, outStride: usize, lanes: i32): void {
  for (let k = 0; k < count; k += 4) {
    storeBytes4(ld(bytes, k), ld(bytes, k + 1), ld(bytes, k + 2), ld(bytes, k + 3), out + <usize>k, outStride, lanes);
  }
}

/** amax = MAX(amax, |v|) over 256 values (pmax keeps the reference's NaN behaviour). */
function absMax256(X: usize): v128 {
  let amax = f32x4.splat(0);
  for (let j = 0; j < 256; j++) amax = f32x4.pmax(f32x4.abs(ld(X, j)), amax);
  return amax;
}

/**
 * `(int)lroundf(v) + 1`: ties away from zero; NaN and ±Inf give 0 + 1 (the low 32 bits of
 * LONG_MIN). Finite |v| ≥ 2^31 cannot occur here (|x · (1/amax)| ≤ 1), so it is not modelled.
 */
@inline function tritLevel(v: v128): v128 {
  const finite = f32x4.lt(f32x4.abs(v), f32x4.splat(2147483648.0));
  return i32x4.add(v128.and(i32x4.trunc_sat_f32x4_s(roundHalfAway(v)), finite), i32x4.splat(1));
}

/** ceil(q · 256 / 243) for 0 ≤ q < 256 (the f32 quotient is far enough from the next integer to floor exactly). */
@inline function tritsToByte(q: v128): v128 {
  const num = toF32(i32x4.add(i32x4.shl(q, 8), i32x4.splat(242)));
  return i32x4.trunc_sat_f32x4_s(f32x4.floor(f32x4.div(num, f32x4.splat(243))));
}

/** Base-3 digits of `count` levels `stride` apart from X[at], most significant first, as a uint8. */
function trits(X: usize, first: i32, stride: i32, count: i32, id: v128): v128 {
  let q = i32x4.splat(0);
  for (let k = 0; k < count; k++) {
    q = v128.and(i32x4.add(i32x4.mul(q, i32x4.splat(3)), tritLevel(f32x4.mul(ld(X, first + k * stride), id))), i32x4.splat(0xff));
  }
  return q;
}

/** TQ1_0 (54-byte blocks) and TQ2_0 (66-byte blocks); importance weights are ignored. */
export function quantizeTQRows(
  src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, s: usize, tq1: bool,
): void {
  const X = s + SX, B = s + SAUX, T = s + STMP;
  const blockBytes: usize = tq1 ? 54 : 66;
  for (let b = 0; b < cols / 256; b++) {
    gatherRows(src + (<usize>b << 10), srcRowBytes, lanes, 256, X);
    const out = dst + <usize>b * blockBytes;
    const d = absMax256(X);
    const id = invOrZero(d);
    if (tq1) {
      for (let m = 0; m < 32; m++) st(B, m, tritsToByte(trits(X, m, 32, 5, id)));
      for (let m = 0; m < 16; m++) st(B, 32 + m, tritsToByte(trits(X, 160 + m, 16, 5, id)));
      for (let j = 0; j < 4; j++) {
        st(B, 48 + j, tritsToByte(v128.and(i32x4.mul(trits(X, 240 + j, 4, 4, id), i32x4.splat(3)), i32x4.splat(0xff))));
      }
      storeByteRun(B, 52, out, dstRowBytes, lanes);
      storeU16Lanes(toF16Lanes(d, at(T, 0)), out + 52, dstRowBytes, lanes);
    } else {
      for (let g = 0; g < 2; g++) {
        for (let m = 0; m < 32; m++) {
          let q = i32x4.splat(0);
          for (let k = 0; k < 4; k++) {
            const xi = tritLevel(f32x4.mul(ld(X, 128 * g + m + 32 * k), id));
            q = i32x4.add(q, i32x4.shl(v128.and(xi, i32x4.splat(3)), 2 * k));
          }
          st(B, 32 * g + m, q);
        }
      }
      storeByteRun(B, 64, out, dstRowBytes, lanes);
      storeU16Lanes(toF16Lanes(d, at(T, 0)), out + 64, dstRowBytes, lanes);
    }
  }
}

/** The IQ4 levels (ggml-common.h `kvalues_iq4nl`). */
const IQ4 = memory.data<f32>([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]);

@inline function level(i: i32): f32 {
  return load<f32>(IQ4 + (<usize>i << 2));
}

/** The IQ4 levels as bytes, for i8x16.swizzle lookups. */
const IQ4_BYTES = v128(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

/** The level values of indices `idx` (i32 lanes 0..15): a byte lookup, sign-extended. */
@inline function levelOf(idx: v128): v128 {
  return toF32(i32x4.shr_s(i32x4.shl(i8x16.swizzle(IQ4_BYTES, idx), 24), 24));
}

/**
 * best_index_int8 on the IQ4 levels, per lane: the bisection ends at the pair lo ≤ x < hi of
 * neighbouring levels (hi's index is 1 + the number of inner levels ≤ x); the lower index wins
 * only when strictly nearer. x ≤ −127 gives 0; x ≥ 113 and NaN (every bisection step goes up) give 15.
 */
function nearestLevelV(x: v128): v128 {
  let mu = i32x4.splat(1);
  for (let k = 1; k < 15; k++) mu = i32x4.sub(mu, f32x4.ge(x, f32x4.splat(level(k))));
  const lo = levelOf(i32x4.sub(mu, i32x4.splat(1)));
  const hi = levelOf(mu);
  const lower = f32x4.lt(f32x4.sub(x, lo), f32x4.sub(hi, x));
  let idx = i32x4.add(mu, lower);
  idx = sel(f32x4.le(x, f32x4.splat(level(0))), i32x4.splat(0), idx);
  return sel(v128.or(f32x4.ge(x, f32x4.splat(level(15))), f32x4.ne(x, x)), i32x4.splat(15), idx);
}

/**
 * The sub-block scale search of quantize_row_iq4_nl_impl (ntry 7) for `count` sub-blocks of 32
 * at X: scales to SC, levels to L; returns the scale of largest magnitude.
 */
function searchScalesV(X: usize, count: i32, qw: usize, W: usize, L: usize, SC: usize): v128 {
  let sigma2 = f32x4.splat(0);
  for (let j = 0; j < 32 * count; j++) {
    const v = ld(X, j);
    sigma2 = f32x4.add(sigma2, f32x4.mul(v, v));
  }
  const values: f32 = <f32>count * 32.0;
  sigma2 = f32x4.mul(sigma2, f32x4.splat(2.0 / values));
  let maxScale = f32x4.splat(0), amaxScale = f32x4.splat(0);
  for (let ib = 0; ib < count; ib++) {
    const xs = at(X, 32 * ib);
    const ls = at(L, 32 * ib);
    for (let j = 0; j < 32; j++) {
      const v = ld(xs, j);
      const w = qw
        ? f32x4.mul(v128.load32_splat(qw + (<usize>(32 * ib + j) << 2)), f32x4.sqrt(f32x4.add(sigma2, f32x4.mul(v, v))))
        : f32x4.mul(v, v);
      st(W, j, w);
    }
    let amax = f32x4.splat(0), max = f32x4.splat(0);
    for (let j = 0; j < 32; j++) {
      const v = ld(xs, j);
      const a = f32x4.abs(v);
      const gt = f32x4.gt(a, amax);
      amax = sel(gt, a, amax);
      max = sel(gt, v, max);
    }
    const zero = f32x4.lt(amax, f32x4.splat(<f32>1e-15));
    let d = f32x4.div(f32x4.neg(max), f32x4.splat(level(0)));
    let id = f32x4.div(f32x4.splat(1), d);
    let sumqx = f32x4.splat(0), sumq2 = f32x4.splat(0);
    for (let j = 0; j < 32; j++) {
      const v = ld(xs, j);
      const l = nearestLevelV(f32x4.mul(id, v));
      st(ls, j, l);
      const q = levelOf(l);
      const wq = f32x4.mul(ld(W, j), q);
      sumqx = f32x4.add(sumqx, f32x4.mul(wq, v));
      sumq2 = f32x4.add(sumq2, f32x4.mul(wq, q));
    }
    d = v128.and(f32x4.div(sumqx, sumq2), f32x4.gt(sumq2, f32x4.splat(0)));
    let best = f32x4.mul(d, sumqx);
    for (let itry = -7; itry <= 7; itry++) {
      id = f32x4.div(f32x4.splat(<f32>(itry + <i32>level(0))), max);
      sumqx = f32x4.splat(0);
      sumq2 = f32x4.splat(0);
      for (let j = 0; j < 32; j++) {
        const v = ld(xs, j);
        const q = levelOf(nearestLevelV(f32x4.mul(id, v)));
        const wq = f32x4.mul(ld(W, j), q);
        sumqx = f32x4.add(sumqx, f32x4.mul(wq, v));
        sumq2 = f32x4.add(sumq2, f32x4.mul(wq, q));
      }
      const take = v128.and(f32x4.gt(sumq2, f32x4.splat(0)), f32x4.gt(f32x4.mul(sumqx, sumqx), f32x4.mul(best, sumq2)));
      d = sel(take, f32x4.div(sumqx, sumq2), d);
      best = sel(take, f32x4.mul(d, sumqx), best);
    }
    d = v128.andnot(d, zero);
    st(SC, ib, d);
    const a = f32x4.abs(d);
    const gt = f32x4.gt(a, amaxScale);
    amaxScale = sel(gt, a, amaxScale);
    maxScale = sel(gt, d, maxScale);
  }
  return maxScale;
}

/** 16 bytes per 32 levels: level j low nibble, level j + 16 high nibble. */
function storeLevels(L: usize, count: i32, out: usize, outStride: usize, lanes: i32, B: usize): void {
  for (let i = 0; i < count; i++) {
    for (let j = 0; j < 16; j++) st(B, 16 * i + j, v128.or(ld(L, 32 * i + j), i32x4.shl(ld(L, 32 * i + 16 + j), 4)));
  }
  storeByteRun(B, 16 * count, out, outStride, lanes);
}

/** IQ4_NL (18-byte blocks of 32) and IQ4_XS (136-byte blocks of 256). */
export function quantizeIQ4Rows(
  src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, qw: usize, s: usize, xs: bool,
): void {
  const X = s + SX, W = s + SW, L = s + SL, B = s + SAUX, SC = s + SSCALES, T = s + STMP;
  const n: i32 = xs ? 256 : 32;
  const blockBytes: usize = xs ? 136 : 18;
  for (let b = 0; b < cols / n; b++) {
    gatherRows(src + (<usize>(b * n) << 2), srcRowBytes, lanes, n, X);
    const out = dst + <usize>b * blockBytes;
    const bqw = qw ? qw + (<usize>(b * n) << 2) : 0;
    if (!xs) {
      searchScalesV(X, 1, bqw, W, L, SC);
      const d = ld(SC, 0);
      storeU16Lanes(toF16Lanes(d, at(T, 0)), out, dstRowBytes, lanes);
      const id = invOrZero(d);
      for (let j = 0; j < 32; j++) st(L, j, nearestLevelV(f32x4.mul(id, ld(X, j))));
      storeLevels(L, 1, out + 2, dstRowBytes, lanes, B);
      continue;
    }
    const maxScale = searchScalesV(X, 8, bqw, W, L, SC);
    const d = f32x4.div(f32x4.neg(maxScale), f32x4.splat(32));
    storeU16Lanes(toF16Lanes(d, at(T, 0)), out, dstRowBytes, lanes);
    const id = invOrZero(d);
    let scalesH = i32x4.splat(0);
    for (let ib = 0; ib < 8; ib++) {
      const l = clampI(nearestInt(f32x4.mul(id, ld(SC, ib))), -32, 31);
      const idl = invOrZero(f32x4.mul(d, toF32(l)));
      for (let j = 0; j < 32; j++) st(L, 32 * ib + j, nearestLevelV(f32x4.mul(idl, ld(X, 32 * ib + j))));
      const biased = i32x4.add(l, i32x4.splat(32));
      const nib = i32x4.shl(v128.and(biased, i32x4.splat(0xf)), 4 * (ib & 1));
      st(T, 2 + (ib >> 1), ib & 1 ? v128.or(ld(T, 2 + (ib >> 1)), nib) : nib);
      scalesH = v128.or(scalesH, i32x4.shl(i32x4.shr_s(biased, 4), 2 * ib));
    }
    storeU16Lanes(scalesH, out + 2, dstRowBytes, lanes);
    storeBytes4(ld(T, 2), ld(T, 3), ld(T, 4), ld(T, 5), out + 4, dstRowBytes, lanes);
    storeLevels(L, 8, out + 8, dstRowBytes, lanes, B);
  }
}

/** E2M1 values doubled, code order (ggml-common.h `kvalues_mxfp4`, OCP MX v1.0). */
const E2M1 = memory.data<f32>([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]);

/** e = (uint8_t)(floorf(log2f(amax)) − 2 + 127) for amax > 0, else 0 (log2f as the f32 nearest the f64 logarithm). */
@inline function e8m0(amax: f32): i32 {
  if (!(amax > 0)) return 0;
  const v = Mathf.floor(<f32>Math.log2(<f64>amax)) - 2 + 127;
  return (v >= -2147483648.0 && v < 2147483648.0 ? <i32>v : i32.MIN_VALUE) & 0xff;
}

/** 2^(e − 128) (ggml_e8m0_to_fp32_half). */
@inline function e8m0Half(e: i32): f32 {
  return reinterpret<f32>(e < 2 ? <u32>0x00200000 << e : <u32>(e - 1) << 23);
}

/** MXFP4 (17-byte blocks: exponent byte, 16 bytes of E2M1 code pairs); importance weights are ignored. */
export function quantizeMXFP4Rows(src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, s: usize): void {
  const X = s + SX, L = s + SL, B = s + SAUX;
  for (let b = 0; b < cols / 32; b++) {
    gatherRows(src + (<usize>b << 7), srcRowBytes, lanes, 32, X);
    const out = dst + <usize>b * 17;
    let amax = f32x4.splat(0);
    for (let j = 0; j < 32; j++) {
      const a = f32x4.abs(ld(X, j));
      amax = sel(f32x4.lt(amax, a), a, amax);
    }
    const e0 = e8m0(f32x4.extract_lane(amax, 0)), e1 = e8m0(f32x4.extract_lane(amax, 1));
    const e2 = e8m0(f32x4.extract_lane(amax, 2)), e3 = e8m0(f32x4.extract_lane(amax, 3));
    store<u8>(out, <u8>e0);
    if (lanes > 1) store<u8>(out + dstRowBytes, <u8>e1);
    if (lanes > 2) store<u8>(out + 2 * dstRowBytes, <u8>e2);
    if (lanes > 3) store<u8>(out + 3 * dstRowBytes, <u8>e3);
    let d = f32x4.splat(e8m0Half(e0));
    d = f32x4.replace_lane(d, 1, e8m0Half(e1));
    d = f32x4.replace_lane(d, 2, e8m0Half(e2));
    d = f32x4.replace_lane(d, 3, e8m0Half(e3));
    for (let j = 0; j < 32; j++) {
      const x = ld(X, j);
      let best = i32x4.splat(0);
      let bestErr = f32x4.abs(f32x4.sub(f32x4.mul(f32x4.splat(load<f32>(E2M1)), d), x));
      for (let i = 1; i < 16; i++) {
        const err = f32x4.abs(f32x4.sub(f32x4.mul(f32x4.splat(load<f32>(E2M1 + (<usize>i << 2))), d), x));
        const better = f32x4.lt(err, bestErr);
        best = sel(better, i32x4.splat(i), best);
        bestErr = sel(better, err, bestErr);
      }
      st(L, j, best);
    }
    storeLevels(L, 1, out + 1, dstRowBytes, lanes, B);
  }
}
