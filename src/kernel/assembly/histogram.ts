// Pass 2 of the lane statistics: central moments and the histogram, in one sweep.
// Definitions in the twin, src/core/stats/stats.ts (`momentsValues`, `binOf`).
//
// Moment state at `state` (f64 slots, updated in place): [0..3] lane sums of d², [4..7] of d⁴,
// d = v − mean. `edges` holds bins + 1 f64 (numpy's linspace, computed by the caller);
// `counts` holds 4 × bins u32 counters, one histogram per lane (lane k at counts + 4·bins·k) so
// that neighbouring equal bins do not stall on each other; the caller adds and clears them.

@inline function binOf(v: f64, lo: f64, denom: f64, bins: i32, edges: usize): i32 {
  const f = ((v - lo) / denom) * <f64>bins;
  // f is in [0, bins] unless the range overflows f64 (then NaN or ±Inf): clamp before converting
  let i: i32 = f >= 0 ? (f < <f64>bins ? <i32>f : bins - 1) : 0;
  if (v < load<f64>(edges + (<usize>i << 3))) i--;
  else if (i != bins - 1 && v >= load<f64>(edges + (<usize>(i + 1) << 3))) i++;
  return i;
}

@inline function bump(counts: usize, lane: usize, bins: i32, i: i32): void {
  const p = counts + ((lane * <usize>bins + <usize>i) << 2);
  store<u32>(p, load<u32>(p) + 1);
}

export function statsMomentsF32(src: usize, n: usize, mean: f64, lo: f64, denom: f64, bins: i32, edges: usize, state: usize, counts: usize): void {
  let m2a = v128.load(state);
  let m2b = v128.load(state, 16);
  let m4a = v128.load(state, 32);
  let m4b = v128.load(state, 48);
  const m = f64x2.splat(mean);
  const inf = f32x4.splat(Infinity);
  let i: usize = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(src + (i << 2));
    const fin = f32x4.lt(f32x4.abs(v), inf);
    const dlo = f64x2.sub(f64x2.promote_low_f32x4(v), m);
    const dhi = f64x2.sub(f64x2.promote_low_f32x4(v128.shuffle<u32>(v, v, 2, 3, 2, 3)), m);
    // non-finite lanes contribute +0 (their d² is NaN or Inf before the mask)
    const d2lo = v128.and(f64x2.mul(dlo, dlo), i64x2.extend_low_i32x4_s(fin));
    const d2hi = v128.and(f64x2.mul(dhi, dhi), i64x2.extend_high_i32x4_s(fin));
    m2a = f64x2.add(m2a, d2lo);
    m2b = f64x2.add(m2b, d2hi);
    m4a = f64x2.add(m4a, f64x2.mul(d2lo, d2lo));
    m4b = f64x2.add(m4b, f64x2.mul(d2hi, d2hi));
    const mask = i32x4.bitmask(fin);
    if (mask & 1) bump(counts, 0, bins, binOf(<f64>f32x4.extract_lane(v, 0), lo, denom, bins, edges));
    if (mask & 2) bump(counts, 1, bins, binOf(<f64>f32x4.extract_lane(v, 1), lo, denom, bins, edges));
    if (mask & 4) bump(counts, 2, bins, binOf(<f64>f32x4.extract_lane(v, 2), lo, denom, bins, edges));
    if (mask & 8) bump(counts, 3, bins, binOf(<f64>f32x4.extract_lane(v, 3), lo, denom, bins, edges));
  }
  v128.store(state, m2a);
  v128.store(state, m2b, 16);
  v128.store(state, m4a, 32);
  v128.store(state, m4b, 48);
  for (let lane: usize = 0; i < n; i++, lane++) {
    const v = <f64>load<f32>(src + (i << 2));
    if (!(abs<f64>(v) < Infinity)) continue;
    momentLane(state, lane, v - mean);
    bump(counts, lane, bins, binOf(v, lo, denom, bins, edges));
  }
}

@inline function momentLane(state: usize, lane: usize, d: f64): void {
  const d2 = d * d;
  const p = state + (lane << 3);
  store<f64>(p, load<f64>(p) + d2);
  store<f64>(p, load<f64>(p, 32) + d2 * d2, 32);
}

@inline function momentsWide<T>(src: usize, n: usize, mean: f64, lo: f64, denom: f64, bins: i32, edges: usize, state: usize, counts: usize): void {
  for (let i: usize = 0; i < n; i++) {
    const v = <f64>load<T>(src + i * sizeof<T>());
    if (!(abs<f64>(v) < Infinity)) continue;
    const lane = i & 3;
    momentLane(state, lane, v - mean);
    bump(counts, lane, bins, binOf(v, lo, denom, bins, edges));
  }
}

export function statsMomentsF64(src: usize, n: usize, mean: f64, lo: f64, denom: f64, bins: i32, edges: usize, state: usize, counts: usize): void {
  momentsWide<f64>(src, n, mean, lo, denom, bins, edges, state, counts);
}
export function statsMomentsI32(src: usize, n: usize, mean: f64, lo: f64, denom: f64, bins: i32, edges: usize, state: usize, counts: usize): void {
  momentsWide<i32>(src, n, mean, lo, denom, bins, edges, state, counts);
}
export function statsMomentsU32(src: usize, n: usize, mean: f64, lo: f64, denom: f64, bins: i32, edges: usize, state: usize, counts: usize): void {
  momentsWide<u32>(src, n, mean, lo, denom, bins, edges, state, counts);
}
export function statsMomentsI64(src: usize, n: usize, mean: f64, lo: f64, denom: f64, bins: i32, edges: usize, state: usize, counts: usize): void {
  momentsWide<i64>(src, n, mean, lo, denom, bins, edges, state, counts);
}
export function statsMomentsU64(src: usize, n: usize, mean: f64, lo: f64, denom: f64, bins: i32, edges: usize, state: usize, counts: usize): void {
  momentsWide<u64>(src, n, mean, lo, denom, bins, edges, state, counts);
}
