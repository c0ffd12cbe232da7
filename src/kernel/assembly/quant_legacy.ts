// Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 quantizers on four rows at once (one block per SIMD lane),
// byte-identical to libggml and to the twins in src/core/quant/ggml-legacy.ts, whose comments
// give each type's layout and operation order.
import {
  gatherRows, invOrZero, roundHalfAway, storeBytes4, storeU16Lanes, toF16Lanes, truncToInt32,
} from './quant_common';
import { makeQkxV, makeQxV } from './quant_fit';
import { at, SAUX, SL, STMP, SW, SX } from './quant_layout';

@inline function ld(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4));
}

@inline function st(p: usize, i: i32, v: v128): void {
  v128.store(p + (<usize>i << 4), v);
}

/** C `(int8_t)` of an int (sign-extend the low byte). */
@inline function toInt8(v: v128): v128 {
  return i32x4.shr_s(i32x4.shl(v, 24), 24);
}

/** Q8_0 (34-byte blocks) for `lanes` rows of `cols` values. */
export function quantizeQ8_0Rows(src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, s: usize): void {
  const X = s + SX, T = s + STMP;
  for (let b = 0; b < cols / 32; b++) {
    gatherRows(src + (<usize>b << 7), srcRowBytes, lanes, 32, X);
    const out = dst + <usize>b * 34;
    // amax = MAX(amax, |v|) = pmax(|v|, amax): a NaN is kept only until the next element
    let amax = f32x4.splat(0);
    for (let j = 0; j < 32; j++) amax = f32x4.pmax(f32x4.abs(ld(X, j)), amax);
    const d = f32x4.div(amax, f32x4.splat(127));
    const id = invOrZero(d);
    storeU16Lanes(toF16Lanes(d, at(T, 0)), out, dstRowBytes, lanes);
    for (let j = 0; j < 32; j += 4) {
      storeBytes4(
        truncToInt32(roundHalfAway(f32x4.mul(ld(X, j), id))),
        truncToInt32(roundHalfAway(f32x4.mul(ld(X, j + 1), id))),
        truncToInt32(roundHalfAway(f32x4.mul(ld(X, j + 2), id))),
        truncToInt32(roundHalfAway(f32x4.mul(ld(X, j + 3), id))),
        out + 2 + <usize>j, dstRowBytes, lanes,
      );
    }
  }
}

/** The value of largest magnitude of each lane's block, the first on ties (`if (amax < |v|)`). */
@inline function signedAbsMax(X: usize): v128 {
  let amax = f32x4.splat(0);
  let max = f32x4.splat(0);
  for (let j = 0; j < 32; j++) {
    const v = ld(X, j);
    const a = f32x4.abs(v);
    const gt = f32x4.lt(amax, a);
    amax = v128.bitselect(a, amax, gt);
    max = v128.bitselect(v, max, gt);
  }
  return max;
}

/** Stores 16 nibble-pair bytes (level j low, level j + 16 high) from the levels at L. */
function storeNibbles(L: usize, out: usize, outStride: usize, lanes: i32): void {
  for (let j = 0; j < 16; j += 4) {
    storeBytes4(
      v128.or(ld(L, j), i32x4.shl(ld(L, j + 16), 4)),
      v128.or(ld(L, j + 1), i32x4.shl(ld(L, j + 17), 4)),
      v128.or(ld(L, j + 2), i32x4.shl(ld(L, j + 18), 4)),
      v128.or(ld(L, j + 3), i32x4.shl(ld(L, j + 19), 4)),
      out + <usize>j, outStride, lanes,
    );
  }
}

/** Q5 quants: 4 bytes qh (bit j = bit 4 of level j), then 16 bytes of low nibbles. */
function storeQ5(L: usize, out: usize, outStride: usize, lanes: i32, tmp: usize): void {
  const low = i32x4.splat(0xf);
  let qh = i32x4.splat(0);
  for (let j = 0; j < 32; j++) {
    const q = v128.and(ld(L, j), i32x4.splat(0xff));
    qh = v128.or(qh, i32x4.shl(i32x4.shr_u(v128.and(q, i32x4.splat(0x10)), 4), j));
    if (j < 16) st(tmp, j, v128.and(q, low));
    else st(tmp, j - 16, v128.or(ld(tmp, j - 16), i32x4.shl(v128.and(q, low), 4)));
  }
  store<u32>(out, <u32>i32x4.extract_lane(qh, 0));
  if (lanes > 1) store<u32>(out + outStride, <u32>i32x4.extract_lane(qh, 1));
  if (lanes > 2) store<u32>(out + 2 * outStride, <u32>i32x4.extract_lane(qh, 2));
  if (lanes > 3) store<u32>(out + 3 * outStride, <u32>i32x4.extract_lane(qh, 3));
  for (let j = 0; j < 16; j += 4) {
    storeBytes4(ld(tmp, j), ld(tmp, j + 1), ld(tmp, j + 2), ld(tmp, j + 3), out + 4 + <usize>j, outStride, lanes);
  }
}

/** σ² = Σ x² / n over each lane's whole row (the row statistic of the legacy imatrix paths). */
function rowSigma2(src: usize, srcRowBytes: usize, lanes: i32, cols: i32, X: usize): v128 {
  let sum = f32x4.splat(0);
  for (let b = 0; b < cols / 32; b++) {
    gatherRows(src + (<usize>b << 7), srcRowBytes, lanes, 32, X);
    for (let j = 0; j < 32; j++) {
      const v = ld(X, j);
      sum = f32x4.add(sum, f32x4.mul(v, v));
    }
  }
  return f32x4.div(sum, f32x4.splat(<f32>cols));
}

/** weight[j] = qw[j] · sqrtf(σ² + x[j]²) for the 32 values of a block. */
function blockWeights(X: usize, qw: usize, sigma2: v128, W: usize): void {
  for (let j = 0; j < 32; j++) {
    const v = ld(X, j);
    st(W, j, f32x4.mul(v128.load32_splat(qw + (<usize>j << 2)), f32x4.sqrt(f32x4.add(sigma2, f32x4.mul(v, v)))));
  }
}

/**
 * Q4_0 (nmax 8, 18-byte blocks) and Q5_0 (nmax 16, 22-byte blocks): the `+ 8.5f` / `+ 16.5f`
 * truncation without weights, make_qx_quants with them.
 */
export function quantizeQx0Rows(
  src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, qw: usize, s: usize, nmax: i32,
): void {
  const X = s + SX, W = s + SW, L = s + SL, AUX = s + SAUX, T = s + STMP;
  const blockBytes: usize = nmax == 8 ? 18 : 22;
  const sigma2 = qw ? rowSigma2(src, srcRowBytes, lanes, cols, X) : f32x4.splat(0);
  for (let b = 0; b < cols / 32; b++) {
    gatherRows(src + (<usize>b << 7), srcRowBytes, lanes, 32, X);
    const out = dst + <usize>b * blockBytes;
    let d: v128;
    if (qw) {
      blockWeights(X, qw + (<usize>b << 7), sigma2, W);
      d = makeQxV(32, nmax, X, L, W, AUX);
    } else {
      d = f32x4.div(signedAbsMax(X), f32x4.splat(<f32>-nmax));
      const id = invOrZero(d);
      const offset = f32x4.splat(<f32>nmax + 0.5);
      for (let j = 0; j < 32; j++) {
        const q = toInt8(truncToInt32(f32x4.add(f32x4.mul(ld(X, j), id), offset)));
        st(L, j, v128.and(i32x4.min_s(q, i32x4.splat(2 * nmax - 1)), i32x4.splat(0xff)));
      }
    }
    storeU16Lanes(toF16Lanes(d, at(T, 0)), out, dstRowBytes, lanes);
    if (nmax == 8) storeNibbles(L, out + 2, dstRowBytes, lanes);
    else storeQ5(L, out + 2, dstRowBytes, lanes, AUX);
  }
}

/**
 * Q4_1 (nmax 15, 20-byte blocks) and Q5_1 (nmax 31, 24-byte blocks): min and (max − min)/nmax
 * with `+ 0.5f` truncation without weights, make_qkx3_quants with them.
 */
export function quantizeQx1Rows(
  src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, qw: usize, s: usize, nmax: i32,
): void {
  const X = s + SX, W = s + SW, L = s + SL, AUX = s + SAUX, T = s + STMP;
  const blockBytes: usize = nmax == 15 ? 20 : 24;
  const sigma2 = qw ? rowSigma2(src, srcRowBytes, lanes, cols, X) : f32x4.splat(0);
  for (let b = 0; b < cols / 32; b++) {
    gatherRows(src + (<usize>b << 7), srcRowBytes, lanes, 32, X);
    const out = dst + <usize>b * blockBytes;
    let d: v128, m: v128;
    if (qw) {
      blockWeights(X, qw + (<usize>b << 7), sigma2, W);
      d = makeQkxV(32, nmax, X, W, L, AUX, -0.9, 0.05, 36, false, at(T, 2));
      m = f32x4.neg(ld(T, 2));
    } else {
      let min = f32x4.splat(f32.MAX_VALUE);
      let max = f32x4.splat(-f32.MAX_VALUE);
      for (let j = 0; j < 32; j++) {
        const v = ld(X, j);
        min = v128.bitselect(v, min, f32x4.lt(v, min));
        max = v128.bitselect(v, max, f32x4.gt(v, max));
      }
      d = f32x4.div(f32x4.sub(max, min), f32x4.splat(<f32>nmax));
      m = min;
      const id = invOrZero(d);
      for (let j = 0; j < 32; j++) {
        const q = truncToInt32(f32x4.add(f32x4.mul(f32x4.sub(ld(X, j), min), id), f32x4.splat(0.5)));
        // Q4_1: MIN(15, (int8_t)·); Q5_1: (uint8_t)· without a clamp
        st(L, j, nmax == 15 ? v128.and(i32x4.min_s(toInt8(q), i32x4.splat(15)), i32x4.splat(0xff)) : v128.and(q, i32x4.splat(0xff)));
      }
    }
    storeU16Lanes(toF16Lanes(d, at(T, 0)), out, dstRowBytes, lanes);
    storeU16Lanes(toF16Lanes(m, at(T, 1)), out + 2, dstRowBytes, lanes);
    if (nmax == 15) storeNibbles(L, out + 4, dstRowBytes, lanes);
    else storeQ5(L, out + 4, dstRowBytes, lanes, AUX);
  }
}
