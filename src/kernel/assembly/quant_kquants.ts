// Q2_K, Q3_K, Q4_K, Q5_K and Q6_K quantizers on four rows at once (one block per SIMD lane),
// byte-identical to libggml and to the twins in src/core/quant/ggml-kquants.ts, whose comments
// give each type's layout and operation order.
import {
  clampI, gatherRows, invOrZero, nearestInt, sel, storeBytes4, storeByteLanes, storeU16Lanes, toF16Lanes, toF32,
} from './quant_common';
import { makeQ3V, makeQkxV, makeQpV, makeQxV } from './quant_fit';
import { at, SAUX, SL, SLM, SLS, SMINS, SSCALES, SSUMW, STMP, SW, SX } from './quant_layout';

@inline function ld(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4));
}

@inline function st(p: usize, i: i32, v: v128): void {
  v128.store(p + (<usize>i << 4), v);
}

/** Σ x² over the 256 values, in order (per lane). */
function sumSquares(x: usize): v128 {
  let s = f32x4.splat(0);
  for (let l = 0; l < 256; l++) {
    const v = ld(x, l);
    s = f32x4.add(s, f32x4.mul(v, v));
  }
  return s;
}

/** weight[l] = qw[l] · sqrtf(σ² + x[l]²) for n values; returns Σ weight in order. */
function importanceWeights(x: usize, qw: usize, sigma2: v128, w: usize, n: i32): v128 {
  for (let l = 0; l < n; l++) {
    const v = ld(x, l);
    st(w, l, f32x4.mul(v128.load32_splat(qw + (<usize>l << 2)), f32x4.sqrt(f32x4.add(sigma2, f32x4.mul(v, v)))));
  }
  let sum = f32x4.splat(0);
  for (let l = 0; l < n; l++) sum = f32x4.add(sum, ld(w, l));
  return sum;
}

/** Stores 4·count bytes per lane from the byte vectors at `bytes` (interleaved) to out + k. */
function storeByteRun(bytes: usize, count: i32, out: usize, outStride: usize, lanes: i32): void {
  for (let k = 0; k < count; k += 4) {
    storeBytes4(ld(bytes, k), ld(bytes, k + 1), ld(bytes, k + 2), ld(bytes, k + 3), out + <usize>k, outStride, lanes);
  }
}

/** Four 2-bit levels per byte (Q2_K / Q3_K qs): byte 32h + l holds levels 128h + l + 32k in bits 2k. */
function pack2Bit(L: usize, out: usize, outStride: usize, lanes: i32, bytes: usize): void {
  for (let h = 0; h < 2; h++) {
    for (let l = 0; l < 32; l++) {
      const j = 128 * h + l;
      const q = v128.or(
        v128.or(ld(L, j), i32x4.shl(ld(L, j + 32), 2)),
        v128.or(i32x4.shl(ld(L, j + 64), 4), i32x4.shl(ld(L, j + 96), 6)),
      );
      st(bytes, 32 * h + l, q);
    }
  }
  storeByteRun(bytes, 64, out, outStride, lanes);
}

/**
 * Q4_K (nmax 15, 144-byte blocks) and Q5_K (nmax 31, 176-byte blocks) for `lanes` rows of
 * `cols` values at `src`; block b of lane k goes to dst + k·dstRowBytes + b·blockBytes.
 */
export function quantizeQxKRows(
  src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, qw: usize, s: usize, nmax: i32,
): void {
  const X = s + SX, W = s + SW, L = s + SL, AUX = s + SAUX;
  const SC = s + SSCALES, MN = s + SMINS, SUMW = s + SSUMW, LS = s + SLS, LM = s + SLM, T = s + STMP;
  const blockBytes: usize = nmax == 15 ? 144 : 176;
  for (let b = 0; b < cols / 256; b++) {
    gatherRows(src + (<usize>b << 10), srcRowBytes, lanes, 256, X);
    const out = dst + <usize>b * blockBytes;
    let dBlock: v128, mBlock: v128;
    if (qw) {
      const sigma2 = f32x4.div(f32x4.mul(f32x4.splat(2), sumSquares(X)), f32x4.splat(256));
      for (let j = 0; j < 8; j++) {
        st(SUMW, j, importanceWeights(at(X, 32 * j), qw + (<usize>(256 * b + 32 * j) << 2), sigma2, W, 32));
        st(SC, j, makeQkxV(32, nmax, at(X, 32 * j), W, at(L, 32 * j), AUX, -0.9, 0.05, 36, false, at(MN, j)));
      }
      dBlock = makeQpV(8, 63, SC, LS, SUMW);
      mBlock = makeQpV(8, 63, MN, LM, SUMW);
      if (nmax == 31) {
        for (let j = 0; j < 8; j++) {
          st(LS, j, i32x4.min_u(ld(LS, j), i32x4.splat(63)));
          st(LM, j, i32x4.min_u(ld(LM, j), i32x4.splat(63)));
        }
      }
    } else {
      let maxScale = f32x4.splat(0), maxMin = f32x4.splat(0);
      for (let j = 0; j < 8; j++) {
        const xs = at(X, 32 * j);
        let sumX2 = f32x4.splat(0);
        for (let l = 0; l < 32; l++) {
          const v = ld(xs, l);
          sumX2 = f32x4.add(sumX2, f32x4.mul(v, v));
        }
        const avX = f32x4.sqrt(f32x4.div(sumX2, f32x4.splat(32)));
        for (let l = 0; l < 32; l++) st(W, l, f32x4.add(avX, f32x4.abs(ld(xs, l))));
        const scale = nmax == 15
          ? makeQkxV(32, 15, xs, W, at(L, 32 * j), AUX, -1.0, 0.1, 20, false, at(MN, j))
          : makeQkxV(32, 31, xs, W, at(L, 32 * j), AUX, -0.5, 0.1, 15, false, at(MN, j));
        st(SC, j, scale);
        maxScale = sel(f32x4.gt(scale, maxScale), scale, maxScale);
        const mn = ld(MN, j);
        maxMin = sel(f32x4.gt(mn, maxMin), mn, maxMin);
      }
      const invScale = v128.and(f32x4.div(f32x4.splat(63), maxScale), f32x4.gt(maxScale, f32x4.splat(0)));
      const invMin = v128.and(f32x4.div(f32x4.splat(63), maxMin), f32x4.gt(maxMin, f32x4.splat(0)));
      const byte = i32x4.splat(0xff);
      for (let j = 0; j < 8; j++) {
        st(LS, j, i32x4.min_u(v128.and(nearestInt(f32x4.mul(invScale, ld(SC, j))), byte), i32x4.splat(63)));
        st(LM, j, i32x4.min_u(v128.and(nearestInt(f32x4.mul(invMin, ld(MN, j))), byte), i32x4.splat(63)));
      }
      dBlock = f32x4.div(maxScale, f32x4.splat(63));
      mBlock = f32x4.div(maxMin, f32x4.splat(63));
    }
    storeU16Lanes(toF16Lanes(dBlock, at(T, 0)), out, dstRowBytes, lanes);
    storeU16Lanes(toF16Lanes(mBlock, at(T, 1)), out + 2, dstRowBytes, lanes);
    const d16 = ld(T, 0), dmin16 = ld(T, 1);
    // the 12 scale bytes (as the reference packs them, uint8 stores), at T + 2..13
    const low4 = i32x4.splat(0xf);
    for (let k = 0; k < 4; k++) {
      st(T, 2 + k, v128.or(ld(LS, k), i32x4.shl(i32x4.shr_u(ld(LS, k + 4), 4), 6)));
      st(T, 6 + k, v128.or(ld(LM, k), i32x4.shl(i32x4.shr_u(ld(LM, k + 4), 4), 6)));
      st(T, 10 + k, v128.or(v128.and(ld(LS, k + 4), low4), i32x4.shl(v128.and(ld(LM, k + 4), low4), 4)));
    }
    storeByteRun(at(T, 2), 12, out + 4, dstRowBytes, lanes);
    // requantize each sub-block with its stored scale and min (get_scale_min_k4 on those bytes)
    const byte = i32x4.splat(0xff), six = i32x4.splat(63);
    for (let j = 0; j < 8; j++) {
      let sc: v128, m: v128;
      if (j < 4) {
        sc = v128.and(ld(T, 2 + j), six);
        m = v128.and(ld(T, 6 + j), six);
      } else {
        sc = v128.or(v128.and(ld(T, 6 + j), low4), i32x4.shl(i32x4.shr_u(v128.and(ld(T, j - 2), byte), 6), 4));
        m = v128.or(i32x4.shr_u(v128.and(ld(T, 6 + j), byte), 4), i32x4.shl(i32x4.shr_u(v128.and(ld(T, 2 + j), byte), 6), 4));
      }
      const d = f32x4.mul(d16, toF32(sc));
      const active = v128.not(f32x4.eq(d, f32x4.splat(0)));
      if (!v128.any_true(active)) continue;
      const dm = f32x4.mul(dmin16, toF32(m));
      for (let ii = 0; ii < 32; ii++) {
        const i = 32 * j + ii;
        const l = clampI(nearestInt(f32x4.div(f32x4.add(ld(X, i), dm), d)), 0, nmax);
        st(L, i, sel(active, l, ld(L, i)));
      }
    }
    if (nmax == 15) {
      for (let g = 0; g < 4; g++) {
        for (let l = 0; l < 32; l++) st(AUX, 32 * g + l, v128.or(ld(L, 64 * g + l), i32x4.shl(ld(L, 64 * g + 32 + l), 4)));
      }
      storeByteRun(AUX, 128, out + 16, dstRowBytes, lanes);
    } else {
      const low = i32x4.splat(15);
      for (let l = 0; l < 32; l++) {
        let qh = i32x4.splat(0);
        for (let g = 0; g < 4; g++) {
          const l1 = ld(L, 64 * g + l), l2 = ld(L, 64 * g + 32 + l);
          qh = v128.or(qh, i32x4.shl(i32x4.shr_u(l1, 4), 2 * g));
          qh = v128.or(qh, i32x4.shl(i32x4.shr_u(l2, 4), 2 * g + 1));
          st(AUX, 32 + 32 * g + l, v128.or(v128.and(l1, low), i32x4.shl(v128.and(l2, low), 4)));
        }
        st(AUX, l, qh);
      }
      storeByteRun(AUX, 160, out + 16, dstRowBytes, lanes);
    }
  }
}

/** The signed 6-bit scale j of Q3_K from the 12 packed byte vectors at `bytes`. */
@inline function q3kScale(bytes: usize, j: i32): v128 {
  const lo = j < 8 ? v128.and(ld(bytes, j), i32x4.splat(0xf)) : i32x4.shr_u(v128.and(ld(bytes, j - 8), i32x4.splat(0xff)), 4);
  const hi = v128.and(i32x4.shr_u(ld(bytes, 8 + (j & 3)), 2 * (j >> 2)), i32x4.splat(3));
  // (int8_t)(lo | hi << 4) − 32: lo | hi << 4 < 64, no wrap
  return i32x4.sub(v128.or(lo, i32x4.shl(hi, 4)), i32x4.splat(32));
}

/** Q3_K (110-byte blocks) for `lanes` rows; see quantizeQxKRows for the addressing. */
export function quantizeQ3KRows(
  src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, qw: usize, s: usize,
): void {
  const X = s + SX, W = s + SW, L = s + SL, AUX = s + SAUX;
  const SC = s + SSCALES, SUMW = s + SSUMW, LS = s + SLS, T = s + STMP;
  for (let b = 0; b < cols / 256; b++) {
    gatherRows(src + (<usize>b << 10), srcRowBytes, lanes, 256, X);
    const out = dst + <usize>b * 110;
    let dBlock: v128;
    if (qw) {
      const sigma2 = f32x4.div(f32x4.mul(f32x4.splat(2), sumSquares(X)), f32x4.splat(256));
      for (let j = 0; j < 16; j++) {
        st(SUMW, j, importanceWeights(at(X, 16 * j), qw + (<usize>(256 * b + 16 * j) << 2), sigma2, W, 16));
        st(SC, j, makeQxV(16, 4, at(X, 16 * j), at(L, 16 * j), W, AUX));
      }
      dBlock = makeQxV(16, 32, SC, LS, SUMW, AUX);
    } else {
      let maxScale = f32x4.splat(0), amax = f32x4.splat(0);
      for (let j = 0; j < 16; j++) {
        const scale = makeQ3V(16, 4, at(X, 16 * j), at(L, 16 * j));
        st(SC, j, scale);
        const a = f32x4.abs(scale);
        const gt = f32x4.gt(a, amax);
        amax = sel(gt, a, amax);
        maxScale = sel(gt, scale, maxScale);
      }
      const nonzero = v128.not(f32x4.eq(maxScale, f32x4.splat(0)));
      const iscale = f32x4.div(f32x4.splat(-32), maxScale);
      for (let j = 0; j < 16; j++) {
        // int8_t l = nearest_int(·): sign-extend the low byte, clamp, offset
        const l8 = i32x4.shr_s(i32x4.shl(nearestInt(f32x4.mul(iscale, ld(SC, j))), 24), 24);
        st(LS, j, v128.and(i32x4.add(clampI(l8, -32, 31), i32x4.splat(32)), nonzero));
      }
      dBlock = v128.and(f32x4.div(f32x4.splat(1), iscale), nonzero);
    }
    // 12 scale bytes: low nibbles of scales 0..15 in bytes j % 8 (high half for j ≥ 8), 2-bit highs in 8 + j % 4
    for (let k = 0; k < 8; k++) {
      st(T, 2 + k, v128.or(v128.and(ld(LS, k), i32x4.splat(0xf)), i32x4.shl(v128.and(ld(LS, k + 8), i32x4.splat(0xf)), 4)));
    }
    for (let k = 0; k < 4; k++) {
      let h = i32x4.splat(0);
      for (let q = 0; q < 4; q++) h = v128.or(h, i32x4.shl(i32x4.shr_s(ld(LS, k + 4 * q), 4), 2 * q));
      st(T, 10 + k, h);
    }
    storeByteRun(at(T, 2), 12, out + 96, dstRowBytes, lanes);
    storeU16Lanes(toF16Lanes(dBlock, at(T, 0)), out + 108, dstRowBytes, lanes);
    const d16 = ld(T, 0);
    for (let j = 0; j < 16; j++) {
      const d = f32x4.mul(d16, toF32(q3kScale(at(T, 2), j)));
      const active = v128.not(f32x4.eq(d, f32x4.splat(0)));
      if (!v128.any_true(active)) continue;
      for (let ii = 0; ii < 16; ii++) {
        const i = 16 * j + ii;
        const l = i32x4.add(clampI(nearestInt(f32x4.div(ld(X, i), d)), -4, 3), i32x4.splat(4));
        st(L, i, sel(active, l, ld(L, i)));
      }
    }
    // hmask byte m, bit k: level 32k + m > 3 (then the level loses 4)
    for (let m = 0; m < 32; m++) {
      let h = i32x4.splat(0);
      for (let k = 0; k < 8; k++) {
        const i = 32 * k + m;
        const li = ld(L, i);
        const high = i32x4.gt_s(li, i32x4.splat(3));
        h = v128.or(h, v128.and(high, i32x4.splat(1 << k)));
        st(L, i, i32x4.sub(li, v128.and(high, i32x4.splat(4))));
      }
      st(AUX, m, h);
    }
    storeByteRun(AUX, 32, out, dstRowBytes, lanes);
    pack2Bit(L, out + 32, dstRowBytes, lanes, AUX);
  }
}

/** Q2_K (84-byte blocks) for `lanes` rows. */
export function quantizeQ2KRows(
  src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, qw: usize, s: usize,
): void {
  const X = s + SX, W = s + SW, L = s + SL, AUX = s + SAUX;
  const SC = s + SSCALES, MN = s + SMINS, SUMW = s + SSUMW, LS = s + SLS, LM = s + SLM, T = s + STMP;
  const byte = i32x4.splat(0xff);
  for (let b = 0; b < cols / 256; b++) {
    gatherRows(src + (<usize>b << 10), srcRowBytes, lanes, 256, X);
    const out = dst + <usize>b * 84;
    let dBlock: v128, mBlock: v128;
    if (qw) {
      const sigma2 = f32x4.div(sumSquares(X), f32x4.splat(256));
      for (let j = 0; j < 16; j++) {
        st(SUMW, j, importanceWeights(at(X, 16 * j), qw + (<usize>(256 * b + 16 * j) << 2), sigma2, W, 16));
        st(SC, j, makeQkxV(16, 3, at(X, 16 * j), W, at(L, 16 * j), AUX, -0.9, 0.05, 36, false, at(MN, j)));
      }
      dBlock = makeQpV(16, 15, SC, LS, SUMW);
      mBlock = makeQpV(16, 15, MN, LM, SUMW);
      for (let j = 0; j < 16; j++) st(AUX, j, v128.or(ld(LS, j), i32x4.shl(ld(LM, j), 4)));
    } else {
      let maxScale = f32x4.splat(0), maxMin = f32x4.splat(0);
      for (let j = 0; j < 16; j++) {
        const xs = at(X, 16 * j);
        for (let l = 0; l < 16; l++) st(W, l, f32x4.abs(ld(xs, l)));
        const scale = makeQkxV(16, 3, xs, W, at(L, 16 * j), AUX, -0.5, 0.1, 15, true, at(MN, j));
        st(SC, j, scale);
        maxScale = sel(f32x4.gt(scale, maxScale), scale, maxScale);
        const mn = ld(MN, j);
        maxMin = sel(f32x4.gt(mn, maxMin), mn, maxMin);
      }
      const hasScale = f32x4.gt(maxScale, f32x4.splat(0));
      const hasMin = f32x4.gt(maxMin, f32x4.splat(0));
      const iscale = f32x4.div(f32x4.splat(15), maxScale);
      const imin = f32x4.div(f32x4.splat(15), maxMin);
      for (let j = 0; j < 16; j++) {
        const ls = v128.and(nearestInt(f32x4.mul(iscale, ld(SC, j))), hasScale);
        const lm = v128.and(i32x4.shl(nearestInt(f32x4.mul(imin, ld(MN, j))), 4), hasMin);
        st(AUX, j, v128.or(v128.and(ls, byte), lm));
      }
      dBlock = v128.and(f32x4.div(maxScale, f32x4.splat(15)), hasScale);
      mBlock = v128.and(f32x4.div(maxMin, f32x4.splat(15)), hasMin);
    }
    for (let j = 0; j < 16; j++) st(AUX, j, v128.and(ld(AUX, j), byte));
    storeByteRun(AUX, 16, out, dstRowBytes, lanes);
    storeU16Lanes(toF16Lanes(dBlock, at(T, 0)), out + 80, dstRowBytes, lanes);
    storeU16Lanes(toF16Lanes(mBlock, at(T, 1)), out + 82, dstRowBytes, lanes);
    const d16 = ld(T, 0), dmin16 = ld(T, 1);
    for (let j = 0; j < 16; j++) {
      const sc = ld(AUX, j);
      const d = f32x4.mul(d16, toF32(v128.and(sc, i32x4.splat(0xf))));
      const active = v128.not(f32x4.eq(d, f32x4.splat(0)));
      if (!v128.any_true(active)) continue;
      const m = f32x4.mul(dmin16, toF32(i32x4.shr_u(sc, 4)));
      for (let ii = 0; ii < 16; ii++) {
        const i = 16 * j + ii;
        const l = clampI(nearestInt(f32x4.div(f32x4.add(ld(X, i), m), d)), 0, 3);
        st(L, i, sel(active, l, ld(L, i)));
      }
    }
    pack2Bit(L, out + 16, dstRowBytes, lanes, AUX);
  }
}

/** Q6_K (210-byte blocks) for `lanes` rows. */
export function quantizeQ6KRows(
  src: usize, srcRowBytes: usize, lanes: i32, cols: i32, dst: usize, dstRowBytes: usize, qw: usize, s: usize,
): void {
  const X = s + SX, W = s + SW, L = s + SL, AUX = s + SAUX, SC = s + SSCALES, LS = s + SLS, T = s + STMP;
  const byte = i32x4.splat(0xff);
  for (let b = 0; b < cols / 256; b++) {
    gatherRows(src + (<usize>b << 10), srcRowBytes, lanes, 256, X);
    const out = dst + <usize>b * 210;
    if (qw) {
      for (let l = 0; l < 256; l++) st(W, l, v128.load32_splat(qw + (<usize>(256 * b + l) << 2)));
    }
    let maxScale = f32x4.splat(0), maxAbs = f32x4.splat(0);
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxV(16, 32, at(X, 16 * ib), at(L, 16 * ib), qw ? at(W, 16 * ib) : 0, AUX);
      st(SC, ib, scale);
      const a = f32x4.abs(scale);
      const gt = f32x4.gt(a, maxAbs);
      maxAbs = sel(gt, a, maxAbs);
      maxScale = sel(gt, scale, maxScale);
    }
    // a block whose every scale is below GROUP_MAX_EPS is all zero bytes
    const zero = f32x4.lt(maxAbs, f32x4.splat(<f32>1e-15));
    const iscale = f32x4.div(f32x4.splat(-128), maxScale);
    storeU16Lanes(v128.andnot(toF16Lanes(f32x4.div(f32x4.splat(1), iscale), at(T, 0)), zero), out + 208, dstRowBytes, lanes);
    const d16 = ld(T, 0);
    for (let ib = 0; ib < 16; ib++) {
      st(LS, ib, v128.andnot(v128.and(i32x4.min_s(nearestInt(f32x4.mul(iscale, ld(SC, ib))), i32x4.splat(127)), byte), zero));
    }
    storeByteRun(LS, 16, out + 192, dstRowBytes, lanes);
    for (let j = 0; j < 16; j++) {
      const sc = i32x4.shr_s(i32x4.shl(ld(LS, j), 24), 24);
      const d = f32x4.mul(d16, toF32(sc));
      const active = v128.andnot(v128.not(f32x4.eq(d, f32x4.splat(0))), zero);
      if (!v128.any_true(active)) continue;
      for (let ii = 0; ii < 16; ii++) {
        const i = 16 * j + ii;
        const l = i32x4.add(clampI(nearestInt(f32x4.div(ld(X, i), d)), -32, 31), i32x4.splat(32));
        st(L, i, sel(active, l, ld(L, i)));
      }
    }
    const low = i32x4.splat(0xf);
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const j = 128 * h + l;
        const l0 = ld(L, j), l1 = ld(L, j + 32), l2 = ld(L, j + 64), l3 = ld(L, j + 96);
        st(AUX, 64 * h + l, v128.or(v128.and(l0, low), i32x4.shl(v128.and(l2, low), 4)));
        st(AUX, 64 * h + 32 + l, v128.or(v128.and(l1, low), i32x4.shl(v128.and(l3, low), 4)));
        const hi = v128.or(
          v128.or(i32x4.shr_s(l0, 4), i32x4.shl(i32x4.shr_s(l1, 4), 2)),
          v128.or(i32x4.shl(i32x4.shr_s(l2, 4), 4), i32x4.shl(i32x4.shr_s(l3, 4), 6)),
        );
        st(AUX, 128 + 32 * h + l, hi);
      }
    }
    for (let k = 0; k < 192; k++) st(AUX, k, v128.andnot(ld(AUX, k), zero));
    storeByteRun(AUX, 192, out, dstRowBytes, lanes);
  }
}
