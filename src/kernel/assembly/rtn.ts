// Round-to-nearest integer and NF4 quantization with the optional MSE clip search: the kernels of
// src/core/quant/rtn.ts, whose file comment states the conventions and the operation order this
// code keeps bit for bit (f32 division, nearest-even, squared error in four lanes, element j of a
// group in lane j mod 4, combined as (l0 + l1) + (l2 + l3)).

/** NF4 levels (bitsandbytes get_4bit_type('nf4'), see src/core/quant/rtn.ts NF4_LEVELS). */
const NF4_LEVELS: StaticArray<f32> = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

/** f32 midpoints (l[i] + l[i+1]) / 2 of NF4_LEVELS (the twin's NF4_BOUNDS; the tests hold them equal). */
const NF4_BOUNDS: StaticArray<f32> = [
  -0.848096371, -0.610632896, -0.459995270, -0.339679420, -0.234607399, -0.137911737, -0.0455250181,
  0.0397901498, 0.120255247, 0.203521252, 0.292013764, 0.389312536, 0.501663446, 0.642786920, 0.861478448,
];

/** bitsandbytes' floor of an absmax before dividing by it. */
const ABSMAX_FLOOR: f32 = 1e-38;

// @ts-ignore: decorator
@inline function clipRatio(k: i32, steps: i32): f32 {
  return steps <= 1 ? 1 : <f32>(1.0 - (0.5 * <f64>k) / <f64>(steps - 1));
}

/** Lanes of `v` that are finite (all-ones), others zero. */
// @ts-ignore: decorator
@inline function finiteMask(v: v128): v128 {
  return f32x4.lt(f32x4.abs(v), f32x4.splat(Infinity));
}

/** Sum of the four f32 lanes in the twin's order. */
// @ts-ignore: decorator
@inline function laneTotal(l0: f32, l1: f32, l2: f32, l3: f32): f32 {
  return (l0 + l1) + (l2 + l3);
}

// ---------------------------------------------------------------- integers

// the group statistics and parameters of the last call (kernels are single-threaded per instance)
let gAbsmax: f32 = 0;
let gLo: f32 = 0;
let gHi: f32 = 0;
let pScale: f32 = 1;
let pZero: i32 = 0;

/** absmax, min and max (both including 0) of the finite values of a group. */
function groupRange(x: usize, n: i32): void {
  let amax = f32x4.splat(0);
  let lo = f32x4.splat(0);
  let hi = f32x4.splat(0);
  let j: i32 = 0;
  for (; j + 4 <= n; j += 4) {
    const v = v128.load(x + (<usize>j << 2));
    const m = v128.and(v, finiteMask(v));
    amax = f32x4.pmax(amax, f32x4.abs(m));
    lo = f32x4.pmin(lo, m);
    hi = f32x4.pmax(hi, m);
  }
  let a = f32x4.extract_lane(amax, 0);
  let l = f32x4.extract_lane(lo, 0);
  let h = f32x4.extract_lane(hi, 0);
  for (let k: u8 = 1; k < 4; k++) {
    // lanes differ only as values (no NaN, no −0): any order gives the same result
    const ak = k == 1 ? f32x4.extract_lane(amax, 1) : k == 2 ? f32x4.extract_lane(amax, 2) : f32x4.extract_lane(amax, 3);
    const lk = k == 1 ? f32x4.extract_lane(lo, 1) : k == 2 ? f32x4.extract_lane(lo, 2) : f32x4.extract_lane(lo, 3);
    const hk = k == 1 ? f32x4.extract_lane(hi, 1) : k == 2 ? f32x4.extract_lane(hi, 2) : f32x4.extract_lane(hi, 3);
    if (ak > a) a = ak;
    if (lk < l) l = lk;
    if (hk > h) h = hk;
  }
  for (; j < n; j++) {
    const v = load<f32>(x + (<usize>j << 2));
    if (!(abs<f32>(v) < Infinity)) continue;
    if (abs<f32>(v) > a) a = abs<f32>(v);
    if (v < l) l = v;
    if (v > h) h = v;
  }
  gAbsmax = a;
  gLo = l;
  gHi = h;
}

function intParams(bits: i32, symmetric: bool, ratio: f32): void {
  if (symmetric) {
    const scale = (gAbsmax * ratio) / <f32>((1 << (bits - 1)) - 1);
    pScale = scale == 0 ? 1 : scale;
    pZero = 0;
    return;
  }
  const l = gLo * ratio;
  const h = gHi * ratio;
  let scale = (h - l) / <f32>((1 << bits) - 1);
  if (scale == 0) scale = 1;
  const qmin = -(1 << (bits - 1));
  let zero = qmin - <i32>nearest<f32>(l / scale);
  if (zero < qmin) zero = qmin;
  if (zero > -qmin - 1) zero = -qmin - 1;
  pScale = scale;
  pZero = zero;
}

/** Squared error of a group quantized with pScale, pZero (levels clamped to [lo, hi] before the zero-point). */
function intGroupError(x: usize, n: i32, lo: f32, hi: f32): f32 {
  const scale = f32x4.splat(pScale);
  const vlo = f32x4.splat(lo);
  const vhi = f32x4.splat(hi);
  let acc = f32x4.splat(0);
  let j: i32 = 0;
  for (; j + 4 <= n; j += 4) {
    const v = v128.load(x + (<usize>j << 2));
    const r = f32x4.pmax(f32x4.pmin(f32x4.nearest(f32x4.div(v, scale)), vhi), vlo);
    const e = v128.and(f32x4.sub(v, f32x4.mul(r, scale)), finiteMask(v));
    acc = f32x4.add(acc, f32x4.mul(e, e));
  }
  let l0 = f32x4.extract_lane(acc, 0);
  let l1 = f32x4.extract_lane(acc, 1);
  let l2 = f32x4.extract_lane(acc, 2);
  let l3 = f32x4.extract_lane(acc, 3);
  for (; j < n; j++) {
    const v = load<f32>(x + (<usize>j << 2));
    let sq: f32 = 0;
    if (abs<f32>(v) < Infinity) {
      let r = nearest<f32>(v / pScale);
      if (r > hi) r = hi;
      if (r < lo) r = lo;
      const e = v - r * pScale;
      sq = e * e;
    }
    const lane = j & 3;
    if (lane == 0) l0 += sq;
    else if (lane == 1) l1 += sq;
    else if (lane == 2) l2 += sq;
    else l3 += sq;
  }
  return laneTotal(l0, l1, l2, l3);
}

/** Writes the group's levels with pScale, pZero: clamp(nearest(x / scale), lo, hi) + zero; NaN → zero. */
function intGroupWrite(x: usize, n: i32, lo: f32, hi: f32, q: usize): void {
  const scale = f32x4.splat(pScale);
  const vlo = f32x4.splat(lo);
  const vhi = f32x4.splat(hi);
  const zero = i32x4.splat(pZero);
  let j: i32 = 0;
  for (; j + 4 <= n; j += 4) {
    const v = v128.load(x + (<usize>j << 2));
    // pmin/pmax keep a NaN, which trunc_sat turns into 0
    const r = f32x4.pmax(f32x4.pmin(f32x4.nearest(f32x4.div(v, scale)), vhi), vlo);
    const qi = i32x4.add(i32x4.trunc_sat_f32x4_s(r), zero);
    const q16 = i16x8.narrow_i32x4_s(qi, qi);
    v128.store32_lane(q + <usize>j, i8x16.narrow_i16x8_s(q16, q16), 0);
  }
  for (; j < n; j++) {
    const v = load<f32>(x + (<usize>j << 2)) / pScale;
    let level: i32 = 0;
    if (v == v) {
      let r = nearest<f32>(v);
      if (r > hi) r = hi;
      if (r < lo) r = lo;
      level = <i32>r;
    }
    store<i8>(q + <usize>j, <i8>(level + pZero));
  }
}

/**
 * Quantizes the row-major [rows, cols] f32 values at `x` in groups of `group` along each row:
 * one i8 level per value at `q`, one f32 scale per group at `scales`, and for asymmetric schemes
 * one i8 zero-point per group at `zeroPoints`. `clipSteps` > 1 runs the clip search.
 */
export function rtnIntQuantize(
  x: usize, rows: i32, cols: i32, group: i32, bits: i32, symmetric: i32, clipSteps: i32,
  q: usize, scales: usize, zeroPoints: usize,
): void {
  const groupsPerRow = (cols + group - 1) / group;
  const qmax = (1 << (bits - 1)) - 1;
  const qmin = symmetric ? -qmax : -qmax - 1;
  for (let r: i32 = 0; r < rows; r++) {
    for (let g: i32 = 0; g < groupsPerRow; g++) {
      const offset = <usize>r * <usize>cols + <usize>g * <usize>group;
      const base = x + (offset << 2);
      const n = min(group, cols - g * group);
      groupRange(base, n);
      intParams(bits, symmetric != 0, 1);
      if (clipSteps > 1) {
        let bestErr: f32 = Infinity;
        let bestScale = pScale;
        let bestZero = pZero;
        for (let k: i32 = 0; k < clipSteps; k++) {
          intParams(bits, symmetric != 0, clipRatio(k, clipSteps));
          const err = intGroupError(base, n, <f32>(qmin - pZero), <f32>(qmax - pZero));
          if (err < bestErr) {
            bestErr = err;
            bestScale = pScale;
            bestZero = pZero;
          }
        }
        pScale = bestScale;
        pZero = bestZero;
      }
      intGroupWrite(base, n, <f32>(qmin - pZero), <f32>(qmax - pZero), q + offset);
      const gi = <usize>r * <usize>groupsPerRow + <usize>g;
      store<f32>(scales + (gi << 2), pScale);
      if (!symmetric) store<i8>(zeroPoints + gi, <i8>pZero);
    }
  }
}

/** x̂ = (q − zero) · scale for the layout of rtnIntQuantize (`zeroPoints` 0: symmetric). */
export function rtnIntDequantize(q: usize, rows: i32, cols: i32, group: i32, scales: usize, zeroPoints: usize, out: usize): void {
  const groupsPerRow = (cols + group - 1) / group;
  for (let r: i32 = 0; r < rows; r++) {
    for (let g: i32 = 0; g < groupsPerRow; g++) {
      const offset = <usize>r * <usize>cols + <usize>g * <usize>group;
      const n = min(group, cols - g * group);
      const gi = <usize>r * <usize>groupsPerRow + <usize>g;
      const scale = load<f32>(scales + (gi << 2));
      const zero = zeroPoints ? <i32>load<i8>(zeroPoints + gi) : 0;
      const vs = f32x4.splat(scale);
      const vz = i32x4.splat(zero);
      let j: i32 = 0;
      for (; j + 4 <= n; j += 4) {
        const b = v128.load32_zero(q + offset + <usize>j);
        const qi = i32x4.sub(i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(b)), vz);
        v128.store(out + ((offset + <usize>j) << 2), f32x4.mul(f32x4.convert_i32x4_s(qi), vs));
      }
      for (; j < n; j++) {
        store<f32>(out + ((offset + <usize>j) << 2), <f32>(<i32>load<i8>(q + offset + <usize>j) - zero) * scale);
      }
    }
  }
}

// ---------------------------------------------------------------- NF4

/** NF4 indices of four scaled values: the number of bounds strictly below each (NaN counts as 0). */
// @ts-ignore: decorator
@inline function nf4Index(s: v128): v128 {
  const clean = v128.and(s, f32x4.eq(s, s));
  let count = i32x4.splat(0);
  const b = changetype<usize>(NF4_BOUNDS);
  for (let i: usize = 0; i < 15; i++) {
    count = i32x4.sub(count, f32x4.lt(v128.load32_splat(b + (i << 2)), clean));
  }
  return count;
}

/** The values of a block scaled for NF4: clamp(x · inv, −1, 1) (whole block) or clamp(x / stored, −1, 1). */
// @ts-ignore: decorator
@inline function nf4Scaled(v: v128, full: bool, inv: f32, stored: f32): v128 {
  const s = full ? f32x4.mul(v, f32x4.splat(inv)) : f32x4.div(v, f32x4.splat(stored));
  return f32x4.pmax(f32x4.pmin(s, f32x4.splat(1)), f32x4.splat(-1));
}

// @ts-ignore: decorator
@inline function nf4IndexScalar(v: f32, full: bool, inv: f32, stored: f32): i32 {
  let s = full ? v * inv : v / stored;
  if (s != s) s = 0;
  if (s < -1) s = -1;
  if (s > 1) s = 1;
  let count: i32 = 0;
  for (let i: i32 = 0; i < 15; i++) if (unchecked(NF4_BOUNDS[i]) < s) count++;
  return count;
}

/** Squared error of an NF4 block with absmax `a` (the twin's order). */
function nf4BlockError(x: usize, n: i32, full: bool, a: f32): f32 {
  const stored = full ? a : max(a, ABSMAX_FLOOR);
  const inv: f32 = 1 / max(a, ABSMAX_FLOOR);
  const levels = changetype<usize>(NF4_LEVELS);
  let l0: f32 = 0, l1: f32 = 0, l2: f32 = 0, l3: f32 = 0;
  let j: i32 = 0;
  for (; j + 4 <= n; j += 4) {
    const v = v128.load(x + (<usize>j << 2));
    const idx = nf4Index(nf4Scaled(v, full, inv, stored));
    const xhat = f32x4.mul(
      f32x4(
        load<f32>(levels + (<usize>i32x4.extract_lane(idx, 0) << 2)),
        load<f32>(levels + (<usize>i32x4.extract_lane(idx, 1) << 2)),
        load<f32>(levels + (<usize>i32x4.extract_lane(idx, 2) << 2)),
        load<f32>(levels + (<usize>i32x4.extract_lane(idx, 3) << 2)),
      ),
      f32x4.splat(stored),
    );
    const e = v128.and(f32x4.sub(v, xhat), finiteMask(v));
    const sq = f32x4.mul(e, e);
    l0 += f32x4.extract_lane(sq, 0);
    l1 += f32x4.extract_lane(sq, 1);
    l2 += f32x4.extract_lane(sq, 2);
    l3 += f32x4.extract_lane(sq, 3);
  }
  for (; j < n; j++) {
    const v = load<f32>(x + (<usize>j << 2));
    let sq: f32 = 0;
    if (abs<f32>(v) < Infinity) {
      const e = v - unchecked(NF4_LEVELS[nf4IndexScalar(v, full, inv, stored)]) * stored;
      sq = e * e;
    }
    const lane = j & 3;
    if (lane == 0) l0 += sq;
    else if (lane == 1) l1 += sq;
    else if (lane == 2) l2 += sq;
    else l3 += sq;
  }
  return laneTotal(l0, l1, l2, l3);
}

/**
 * NF4 as bitsandbytes: blocks of `block` over the `n` f32 values at `x` (the last may be shorter);
 * one index 0–15 per value at `indices` (unpacked bytes), one f32 absmax per block at `absmax`.
 */
export function rtnNf4Quantize(x: usize, n: i32, block: i32, clipSteps: i32, indices: usize, absmax: usize): void {
  const blocks = (n + block - 1) / block;
  for (let b: i32 = 0; b < blocks; b++) {
    const offset = <usize>b * <usize>block;
    const base = x + (offset << 2);
    const len = min(block, n - b * block);
    const full = len == block;
    groupRange(base, len);
    let bestA = gAbsmax;
    if (clipSteps > 1) {
      let bestErr: f32 = Infinity;
      for (let k: i32 = 0; k < clipSteps; k++) {
        const a = gAbsmax * clipRatio(k, clipSteps);
        const err = nf4BlockError(base, len, full, a);
        if (err < bestErr) {
          bestErr = err;
          bestA = a;
        }
      }
    }
    const stored = full ? bestA : max(bestA, ABSMAX_FLOOR);
    const inv: f32 = 1 / max(bestA, ABSMAX_FLOOR);
    let j: i32 = 0;
    for (; j + 4 <= len; j += 4) {
      const idx = nf4Index(nf4Scaled(v128.load(base + (<usize>j << 2)), full, inv, stored));
      const i16 = i16x8.narrow_i32x4_s(idx, idx);
      v128.store32_lane(indices + offset + <usize>j, i8x16.narrow_i16x8_s(i16, i16), 0);
    }
    for (; j < len; j++) {
      store<u8>(indices + offset + <usize>j, <u8>nf4IndexScalar(load<f32>(base + (<usize>j << 2)), full, inv, stored));
    }
    store<f32>(absmax + (<usize>b << 2), stored);
  }
}

/** x̂ = level[index] · absmax of its block. */
export function rtnNf4Dequantize(indices: usize, n: i32, block: i32, absmax: usize, out: usize): void {
  const levels = changetype<usize>(NF4_LEVELS);
  for (let i: i32 = 0; i < n; i++) {
    const a = load<f32>(absmax + (<usize>(i / block) << 2));
    store<f32>(out + (<usize>i << 2), load<f32>(levels + (<usize>load<u8>(indices + <usize>i) << 2)) * a);
  }
}
