// Statistics kernels. The definitions (lane order, what counts) are in the twin,
// src/core/stats/stats.ts; this file only says how the kernel follows them.
//
// Scan state at `state` (f64 slots, updated in place so chunks continue the lanes):
//   [0..3] lane sums of v, [4] min, [5] max, [6] finite count, [7] zero count.
// Callers start a tensor with sums 0, min +Inf, max -Inf, counts 0, and start every chunk but the
// last at a multiple of 4 elements.

@inline function finiteF64(x: f64): bool {
  return abs<f64>(x) < Infinity;
}

const SCAN_MIN: usize = 32;
const SCAN_MAX: usize = 40;
const SCAN_FINITE: usize = 48;
const SCAN_ZEROS: usize = 56;

export function statsScanF32(src: usize, n: usize, state: usize): void {
  let s01 = v128.load(state);
  let s23 = v128.load(state, 16);
  let vmin = f32x4.splat(<f32>load<f64>(state, SCAN_MIN));
  let vmax = f32x4.splat(<f32>load<f64>(state, SCAN_MAX));
  let finite = i32x4.splat(0);
  let zeros = i32x4.splat(0);
  const inf = f32x4.splat(Infinity);
  const ninf = f32x4.splat(-Infinity);
  const zero = f32x4.splat(0);
  let i: usize = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(src + (i << 2));
    const fin = f32x4.lt(f32x4.abs(v), inf); // false for NaN and ±Inf
    const vf = v128.and(v, fin); // non-finite → +0, which leaves a lane sum unchanged
    s01 = f64x2.add(s01, f64x2.promote_low_f32x4(vf));
    s23 = f64x2.add(s23, f64x2.promote_low_f32x4(v128.shuffle<u32>(vf, vf, 2, 3, 2, 3)));
    vmin = f32x4.min(vmin, v128.bitselect(v, inf, fin));
    vmax = f32x4.max(vmax, v128.bitselect(v, ninf, fin));
    finite = i32x4.sub(finite, fin);
    zeros = i32x4.sub(zeros, f32x4.eq(v, zero));
  }
  let mn = min<f32>(min<f32>(f32x4.extract_lane(vmin, 0), f32x4.extract_lane(vmin, 1)), min<f32>(f32x4.extract_lane(vmin, 2), f32x4.extract_lane(vmin, 3)));
  let mx = max<f32>(max<f32>(f32x4.extract_lane(vmax, 0), f32x4.extract_lane(vmax, 1)), max<f32>(f32x4.extract_lane(vmax, 2), f32x4.extract_lane(vmax, 3)));
  let nFinite = <f64>(<u32>(i32x4.extract_lane(finite, 0) + i32x4.extract_lane(finite, 1) + i32x4.extract_lane(finite, 2) + i32x4.extract_lane(finite, 3)));
  let nZeros = <f64>(<u32>(i32x4.extract_lane(zeros, 0) + i32x4.extract_lane(zeros, 1) + i32x4.extract_lane(zeros, 2) + i32x4.extract_lane(zeros, 3)));
  v128.store(state, s01);
  v128.store(state, s23, 16);
  // the tail (< 4 elements) goes to lanes 0, 1, 2 in order
  for (let lane: usize = 0; i < n; i++, lane++) {
    const v = load<f32>(src + (i << 2));
    if (!(abs<f32>(v) < Infinity)) continue;
    const p = state + (lane << 3);
    store<f64>(p, load<f64>(p) + <f64>v);
    mn = min<f32>(mn, v);
    mx = max<f32>(mx, v);
    nFinite += 1;
    if (v == 0) nZeros += 1;
  }
  store<f64>(state, <f64>mn, SCAN_MIN);
  store<f64>(state, <f64>mx, SCAN_MAX);
  store<f64>(state, load<f64>(state, SCAN_FINITE) + nFinite, SCAN_FINITE);
  store<f64>(state, load<f64>(state, SCAN_ZEROS) + nZeros, SCAN_ZEROS);
}

// Elements of type T (f64, or an integer type converted to f64 exactly or rounded to nearest even).
@inline function scanWide<T>(src: usize, n: usize, state: usize): void {
  let s0 = load<f64>(state, 0);
  let s1 = load<f64>(state, 8);
  let s2 = load<f64>(state, 16);
  let s3 = load<f64>(state, 24);
  let mn = load<f64>(state, SCAN_MIN);
  let mx = load<f64>(state, SCAN_MAX);
  let nFinite: f64 = 0;
  let nZeros: f64 = 0;
  for (let i: usize = 0; i < n; i++) {
    const v = <f64>load<T>(src + i * sizeof<T>());
    if (!finiteF64(v)) continue;
    const lane = i & 3;
    if (lane == 0) s0 += v;
    else if (lane == 1) s1 += v;
    else if (lane == 2) s2 += v;
    else s3 += v;
    mn = min<f64>(mn, v);
    mx = max<f64>(mx, v);
    nFinite += 1;
    if (v == 0) nZeros += 1;
  }
  store<f64>(state, s0, 0);
  store<f64>(state, s1, 8);
  store<f64>(state, s2, 16);
  store<f64>(state, s3, 24);
  store<f64>(state, mn, SCAN_MIN);
  store<f64>(state, mx, SCAN_MAX);
  store<f64>(state, load<f64>(state, SCAN_FINITE) + nFinite, SCAN_FINITE);
  store<f64>(state, load<f64>(state, SCAN_ZEROS) + nZeros, SCAN_ZEROS);
}

export function statsScanF64(src: usize, n: usize, state: usize): void {
  scanWide<f64>(src, n, state);
}
export function statsScanI32(src: usize, n: usize, state: usize): void {
  scanWide<i32>(src, n, state);
}
export function statsScanU32(src: usize, n: usize, state: usize): void {
  scanWide<u32>(src, n, state);
}
export function statsScanI64(src: usize, n: usize, state: usize): void {
  scanWide<i64>(src, n, state);
}
export function statsScanU64(src: usize, n: usize, state: usize): void {
  scanWide<u64>(src, n, state);
}

// Pass 3: the number of finite values with |v − mean| > threshold.
export function statsOutliersF32(src: usize, n: usize, mean: f64, threshold: f64): f64 {
  const m = f64x2.splat(mean);
  const t = f64x2.splat(threshold);
  const inf = f32x4.splat(Infinity);
  let count = i64x2.splat(0);
  let i: usize = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(src + (i << 2));
    const fin = f32x4.lt(f32x4.abs(v), inf);
    const lo = f64x2.gt(f64x2.abs(f64x2.sub(f64x2.promote_low_f32x4(v), m)), t);
    const hi = f64x2.gt(f64x2.abs(f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<u32>(v, v, 2, 3, 2, 3)), m)), t);
    count = i64x2.sub(count, v128.and(lo, i64x2.extend_low_i32x4_s(fin)));
    count = i64x2.sub(count, v128.and(hi, i64x2.extend_high_i32x4_s(fin)));
  }
  let total = <f64>(i64x2.extract_lane(count, 0) + i64x2.extract_lane(count, 1));
  for (; i < n; i++) {
    const v = <f64>load<f32>(src + (i << 2));
    if (finiteF64(v) && abs<f64>(v - mean) > threshold) total += 1;
  }
  return total;
}

@inline function outliersWide<T>(src: usize, n: usize, mean: f64, threshold: f64): f64 {
  let total: f64 = 0;
  for (let i: usize = 0; i < n; i++) {
    const v = <f64>load<T>(src + i * sizeof<T>());
    if (finiteF64(v) && abs<f64>(v - mean) > threshold) total += 1;
  }
  return total;
}

export function statsOutliersF64(src: usize, n: usize, mean: f64, threshold: f64): f64 {
  return outliersWide<f64>(src, n, mean, threshold);
}
export function statsOutliersI32(src: usize, n: usize, mean: f64, threshold: f64): f64 {
  return outliersWide<i32>(src, n, mean, threshold);
}
export function statsOutliersU32(src: usize, n: usize, mean: f64, threshold: f64): f64 {
  return outliersWide<u32>(src, n, mean, threshold);
}
export function statsOutliersI64(src: usize, n: usize, mean: f64, threshold: f64): f64 {
  return outliersWide<i64>(src, n, mean, threshold);
}
export function statsOutliersU64(src: usize, n: usize, mean: f64, threshold: f64): f64 {
  return outliersWide<u64>(src, n, mean, threshold);
}

// Code tables: table[code] += 1 (u32 counters) for each element. The caller flushes the table
// before any counter could pass 2^32 − 1. Two interleaved tables (the second at table + 4·codes)
// halve the stalls when neighbouring elements share a code; the caller adds them.
export function countCodes16(src: usize, n: usize, table: usize): void {
  const second = table + (65536 << 2);
  let i: usize = 0;
  for (; i + 2 <= n; i += 2) {
    const w = load<u32>(src + (i << 1));
    const a = table + ((w & 0xffff) << 2);
    const b = second + ((w >>> 16) << 2);
    store<u32>(a, load<u32>(a) + 1);
    store<u32>(b, load<u32>(b) + 1);
  }
  if (i < n) {
    const a = table + (<usize>load<u16>(src + (i << 1)) << 2);
    store<u32>(a, load<u32>(a) + 1);
  }
}

export function countCodes8(src: usize, n: usize, table: usize): void {
  const second = table + (256 << 2);
  let i: usize = 0;
  for (; i + 2 <= n; i += 2) {
    const w = <u32>load<u16>(src + i);
    const a = table + ((w & 0xff) << 2);
    const b = second + ((w >>> 8) << 2);
    store<u32>(a, load<u32>(a) + 1);
    store<u32>(b, load<u32>(b) + 1);
  }
  if (i < n) {
    const a = table + (<usize>load<u8>(src + i) << 2);
    store<u32>(a, load<u32>(a) + 1);
  }
}

// Absmax profile of rows × cols f32 values over finite values (non-finite → 0), seeded with 0.
// Rows: out[r] = max over the row (written). Columns: out[c] = max(out[c], …) (accumulated, so
// row chunks can follow each other).
export function absMaxRowsF32(src: usize, rows: usize, cols: usize, out: usize): void {
  const inf = f32x4.splat(Infinity);
  for (let r: usize = 0; r < rows; r++) {
    const row = src + r * cols * 4;
    let m = f32x4.splat(0);
    let c: usize = 0;
    for (; c + 4 <= cols; c += 4) {
      const a = f32x4.abs(v128.load(row + (c << 2)));
      m = f32x4.max(m, v128.and(a, f32x4.lt(a, inf)));
    }
    let s = max<f32>(max<f32>(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), max<f32>(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
    for (; c < cols; c++) {
      const a = abs<f32>(load<f32>(row + (c << 2)));
      if (a < Infinity) s = max<f32>(s, a);
    }
    store<f32>(out + (r << 2), s);
  }
}

export function absMaxColsF32(src: usize, rows: usize, cols: usize, out: usize): void {
  const inf = f32x4.splat(Infinity);
  for (let r: usize = 0; r < rows; r++) {
    const row = src + r * cols * 4;
    let c: usize = 0;
    for (; c + 4 <= cols; c += 4) {
      const a = f32x4.abs(v128.load(row + (c << 2)));
      const p = out + (c << 2);
      v128.store(p, f32x4.max(v128.load(p), v128.and(a, f32x4.lt(a, inf))));
    }
    for (; c < cols; c++) {
      const a = abs<f32>(load<f32>(row + (c << 2)));
      const p = out + (c << 2);
      if (a < Infinity) store<f32>(p, max<f32>(load<f32>(p), a));
    }
  }
}
