// The scale searches of libggml's quantizers on four blocks at once (one per SIMD lane):
// make_qx_quants, make_q3_quants, make_qkx2/3_quants, make_qp_quants. Arrays are interleaved:
// element i of the four blocks is the v128 at base + 16·i (f32 values, i32 levels). Each lane
// runs the twin's operations (src/core/quant/ggml-kquants.ts) in its order; where the
// reference branches per block, the lanes compute both sides and select. The reference's early
// exits of the refinement passes ("no level changed") are not taken: a pass that changes nothing
// leaves the state as it was, so the passes after it change nothing either.
import { clampI, nearestInt, sel, toF32 } from './quant_common';

const GROUP_MAX_EPS: f32 = 1e-15;

@inline function ld(p: usize, i: i32): v128 {
  return v128.load(p + (<usize>i << 4));
}

@inline function st(p: usize, i: i32, v: v128): void {
  v128.store(p + (<usize>i << 4), v);
}

/**
 * make_qx_quants, rmse_type 1: levels [−nmax, nmax−1] written to L as l + nmax; weights `w`
 * (interleaved), or x² when w is 0. `cand` is scratch for n levels. Returns the scales.
 */
export function makeQxV(n: i32, nmax: i32, x: usize, L: usize, w: usize, cand: usize): v128 {
  let amax = f32x4.splat(0);
  let max = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const xi = ld(x, i);
    const ax = f32x4.abs(xi);
    const gt = f32x4.gt(ax, amax);
    amax = sel(gt, ax, amax);
    max = sel(gt, xi, max);
  }
  const zero = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS));
  let iscale = f32x4.div(f32x4.splat(<f32>-nmax), max);
  let sumlx = f32x4.splat(0);
  let suml2 = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const xi = ld(x, i);
    const l = clampI(nearestInt(f32x4.mul(iscale, xi)), -nmax, nmax - 1);
    st(L, i, i32x4.add(l, i32x4.splat(nmax)));
    const wi = w ? ld(w, i) : f32x4.mul(xi, xi);
    const lf = toF32(l);
    sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(wi, xi), lf));
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(wi, lf), lf));
  }
  let scale = v128.andnot(f32x4.div(sumlx, suml2), f32x4.eq(suml2, f32x4.splat(0)));
  let best = f32x4.mul(scale, sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = f32x4.div(f32x4.splat(-(<f32>nmax + <f32>0.1 * <f32>is)), max);
    sumlx = f32x4.splat(0);
    suml2 = f32x4.splat(0);
    for (let i = 0; i < n; i++) {
      const xi = ld(x, i);
      const l = clampI(nearestInt(f32x4.mul(iscale, xi)), -nmax, nmax - 1);
      st(cand, i, l);
      const wi = w ? ld(w, i) : f32x4.mul(xi, xi);
      const lf = toF32(l);
      sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(wi, xi), lf));
      suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(wi, lf), lf));
    }
    const take = v128.and(
      f32x4.gt(suml2, f32x4.splat(0)),
      f32x4.gt(f32x4.mul(sumlx, sumlx), f32x4.mul(best, suml2)),
    );
    if (v128.any_true(take)) {
      for (let i = 0; i < n; i++) st(L, i, sel(take, i32x4.add(ld(cand, i), i32x4.splat(nmax)), ld(L, i)));
      scale = sel(take, f32x4.div(sumlx, suml2), scale);
      best = sel(take, f32x4.mul(scale, sumlx), best);
    }
  }
  if (v128.any_true(zero)) {
    for (let i = 0; i < n; i++) st(L, i, v128.andnot(ld(L, i), zero));
    scale = v128.andnot(scale, zero);
  }
  return scale;
}

/** make_q3_quants with do_rmse (n = 16, weights x²): levels written to L as l + nmax. Returns the scales. */
export function makeQ3V(n: i32, nmax: i32, x: usize, L: usize): v128 {
  let amax = f32x4.splat(0);
  let max = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const xi = ld(x, i);
    const ax = f32x4.abs(xi);
    const gt = f32x4.gt(ax, amax);
    amax = sel(gt, ax, amax);
    max = sel(gt, xi, max);
  }
  const zero = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS));
  const iscale = f32x4.div(f32x4.splat(<f32>-nmax), max);
  let sumlx = f32x4.splat(0);
  let suml2 = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const xi = ld(x, i);
    const l = clampI(nearestInt(f32x4.mul(iscale, xi)), -nmax, nmax - 1);
    st(L, i, l);
    const w = f32x4.mul(xi, xi);
    const lf = toF32(l);
    sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(w, xi), lf));
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, lf), lf));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = i32x4.splat(0);
    for (let i = 0; i < n; i++) {
      const xi = ld(x, i);
      const w = f32x4.mul(xi, xi);
      const li = ld(L, i);
      const lif = toF32(li);
      let slx = f32x4.sub(sumlx, f32x4.mul(f32x4.mul(w, xi), lif));
      let sl2 = f32x4.sub(suml2, f32x4.mul(f32x4.mul(w, lif), lif));
      const newL = clampI(nearestInt(f32x4.div(f32x4.mul(xi, sl2), slx)), -nmax, nmax - 1);
      const nlf = toF32(newL);
      slx = f32x4.add(slx, f32x4.mul(f32x4.mul(w, xi), nlf));
      sl2 = f32x4.add(sl2, f32x4.mul(f32x4.mul(w, nlf), nlf));
      const take = v128.and(
        v128.and(f32x4.gt(f32x4.sub(sumlx, f32x4.mul(f32x4.mul(w, xi), lif)), f32x4.splat(0)), v128.not(i32x4.eq(newL, li))),
        v128.and(
          f32x4.gt(sl2, f32x4.splat(0)),
          f32x4.gt(f32x4.mul(f32x4.mul(slx, slx), suml2), f32x4.mul(f32x4.mul(sumlx, sumlx), sl2)),
        ),
      );
      st(L, i, sel(take, newL, li));
      sumlx = sel(take, slx, sumlx);
      suml2 = sel(take, sl2, suml2);
      changed = v128.or(changed, take);
    }
    if (!v128.any_true(changed)) break;
  }
  for (let i = 0; i < n; i++) st(L, i, v128.andnot(i32x4.add(ld(L, i), i32x4.splat(nmax)), zero));
  const scale = v128.and(f32x4.div(sumlx, suml2), f32x4.gt(suml2, f32x4.splat(0)));
  return v128.andnot(scale, zero);
}

/**
 * make_qkx2_quants / make_qkx3_quants with weights: levels [0, nmax] in L, −min stored at
 * `theMin`; `aux` is scratch for n levels. Returns the scales.
 */
export function makeQkxV(
  n: i32, nmax: i32, x: usize, w: usize, L: usize, aux: usize,
  rmin: f32, rdelta: f32, nstep: i32, useMad: bool, theMin: usize,
): v128 {
  let min = ld(x, 0);
  let max = min;
  const sumW0 = ld(w, 0);
  let sumW = sumW0;
  let sumX = f32x4.mul(sumW0, min);
  for (let i = 1; i < n; i++) {
    const xi = ld(x, i);
    min = sel(f32x4.lt(xi, min), xi, min);
    max = sel(f32x4.gt(xi, max), xi, max);
    const wi = ld(w, i);
    sumW = f32x4.add(sumW, wi);
    sumX = f32x4.add(sumX, f32x4.mul(wi, xi));
  }
  min = sel(f32x4.gt(min, f32x4.splat(0)), f32x4.splat(0), min);
  const flat = f32x4.eq(max, min);
  const flatMin = min;
  const nmaxF = f32x4.splat(<f32>nmax);
  let iscale = f32x4.div(nmaxF, f32x4.sub(max, min));
  let scale = f32x4.div(f32x4.splat(1), iscale);
  let bestError = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const xi = ld(x, i);
    const l = clampI(nearestInt(f32x4.mul(iscale, f32x4.sub(xi, min))), 0, nmax);
    st(L, i, l);
    let diff = f32x4.sub(f32x4.add(f32x4.mul(scale, toF32(l)), min), xi);
    diff = useMad ? f32x4.abs(diff) : f32x4.mul(diff, diff);
    bestError = f32x4.add(bestError, f32x4.mul(ld(w, i), diff));
  }
  for (let is = 0; is <= nstep; is++) {
    // min is the best candidate's so far: later trials are centred on it
    iscale = f32x4.div(f32x4.splat(rmin + rdelta * <f32>is + <f32>nmax), f32x4.sub(max, min));
    let sumL = f32x4.splat(0);
    let sumL2 = f32x4.splat(0);
    let sumXL = f32x4.splat(0);
    for (let i = 0; i < n; i++) {
      const xi = ld(x, i);
      const l = clampI(nearestInt(f32x4.mul(iscale, f32x4.sub(xi, min))), 0, nmax);
      st(aux, i, l);
      const wi = ld(w, i);
      const lf = toF32(l);
      const wl = f32x4.mul(wi, lf);
      sumL = f32x4.add(sumL, wl);
      sumL2 = f32x4.add(sumL2, f32x4.mul(wl, lf));
      sumXL = f32x4.add(sumXL, f32x4.mul(wl, xi));
    }
    const D = f32x4.sub(f32x4.mul(sumW, sumL2), f32x4.mul(sumL, sumL));
    const positive = f32x4.gt(D, f32x4.splat(0));
    if (!v128.any_true(positive)) continue;
    let thisScale = f32x4.div(f32x4.sub(f32x4.mul(sumW, sumXL), f32x4.mul(sumX, sumL)), D);
    let thisMin = f32x4.div(f32x4.sub(f32x4.mul(sumL2, sumX), f32x4.mul(sumL, sumXL)), D);
    const clampMin = f32x4.gt(thisMin, f32x4.splat(0));
    thisMin = sel(clampMin, f32x4.splat(0), thisMin);
    thisScale = sel(clampMin, f32x4.div(sumXL, sumL2), thisScale);
    let curError = f32x4.splat(0);
    for (let i = 0; i < n; i++) {
      let diff = f32x4.sub(f32x4.add(f32x4.mul(thisScale, toF32(ld(aux, i))), thisMin), ld(x, i));
      diff = useMad ? f32x4.abs(diff) : f32x4.mul(diff, diff);
      curError = f32x4.add(curError, f32x4.mul(ld(w, i), diff));
    }
    const take = v128.and(positive, f32x4.lt(curError, bestError));
    if (v128.any_true(take)) {
      for (let i = 0; i < n; i++) st(L, i, sel(take, ld(aux, i), ld(L, i)));
      bestError = sel(take, curError, bestError);
      scale = sel(take, thisScale, scale);
      min = sel(take, thisMin, min);
    }
  }
  if (v128.any_true(flat)) {
    for (let i = 0; i < n; i++) st(L, i, v128.andnot(ld(L, i), flat));
    scale = v128.andnot(scale, flat);
    min = sel(flat, flatMin, min);
  }
  v128.store(theMin, f32x4.neg(min));
  return scale;
}

/**
 * make_qp_quants: the non-negative values x (n interleaved) to levels [0, nmax] with weights qw;
 * levels are stored as C uint8 (a negative level wraps). Returns the scales.
 */
export function makeQpV(n: i32, nmax: i32, x: usize, L: usize, qw: usize): v128 {
  let max = f32x4.splat(0);
  for (let i = 0; i < n; i++) max = f32x4.pmax(ld(x, i), max);
  const zero = f32x4.lt(max, f32x4.splat(GROUP_MAX_EPS));
  const nmaxF = f32x4.splat(<f32>nmax);
  const byte = i32x4.splat(0xff);
  let iscale = f32x4.div(nmaxF, max);
  for (let i = 0; i < n; i++) st(L, i, v128.and(nearestInt(f32x4.mul(iscale, ld(x, i))), byte));
  const scale = f32x4.div(f32x4.splat(1), iscale);
  let bestMse = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const diff = f32x4.sub(ld(x, i), f32x4.mul(scale, toF32(ld(L, i))));
    bestMse = f32x4.add(bestMse, f32x4.mul(f32x4.mul(ld(qw, i), diff), diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is == 0) continue;
    const iscaleIs = f32x4.div(f32x4.splat(<f32>0.1 * <f32>is + <f32>nmax), max);
    const scaleIs = f32x4.div(f32x4.splat(1), iscaleIs);
    let mse = f32x4.splat(0);
    for (let i = 0; i < n; i++) {
      const xi = ld(x, i);
      const l = i32x4.min_s(i32x4.splat(nmax), nearestInt(f32x4.mul(iscaleIs, xi)));
      const diff = f32x4.sub(xi, f32x4.mul(scaleIs, toF32(l)));
      mse = f32x4.add(mse, f32x4.mul(f32x4.mul(ld(qw, i), diff), diff));
    }
    const better = f32x4.lt(mse, bestMse);
    bestMse = sel(better, mse, bestMse);
    iscale = sel(better, iscaleIs, iscale);
  }
  let sumlx = f32x4.splat(0);
  let suml2 = f32x4.splat(0);
  for (let i = 0; i < n; i++) {
    const xi = ld(x, i);
    const l = i32x4.min_s(i32x4.splat(nmax), nearestInt(f32x4.mul(iscale, xi)));
    st(L, i, v128.and(l, byte));
    const wi = ld(qw, i);
    const lf = toF32(l);
    sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(wi, xi), lf));
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(wi, lf), lf));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = i32x4.splat(0);
    for (let i = 0; i < n; i++) {
      const xi = ld(x, i);
      const wi = ld(qw, i);
      const li = ld(L, i);
      const lif = toF32(li);
      let slx = f32x4.sub(sumlx, f32x4.mul(f32x4.mul(wi, xi), lif));
      let sl2 = f32x4.sub(suml2, f32x4.mul(f32x4.mul(wi, lif), lif));
      const ok = v128.and(f32x4.gt(slx, f32x4.splat(0)), f32x4.gt(sl2, f32x4.splat(0)));
      const newL = i32x4.min_s(i32x4.splat(nmax), nearestInt(f32x4.div(f32x4.mul(xi, sl2), slx)));
      const nlf = toF32(newL);
      slx = f32x4.add(slx, f32x4.mul(f32x4.mul(wi, xi), nlf));
      sl2 = f32x4.add(sl2, f32x4.mul(f32x4.mul(wi, nlf), nlf));
      const take = v128.and(
        v128.and(ok, v128.not(i32x4.eq(newL, li))),
        f32x4.gt(f32x4.mul(f32x4.mul(slx, slx), suml2), f32x4.mul(f32x4.mul(sumlx, sumlx), sl2)),
      );
      st(L, i, sel(take, v128.and(newL, byte), li));
      sumlx = sel(take, slx, sumlx);
      suml2 = sel(take, sl2, suml2);
      changed = v128.or(changed, take);
    }
    if (!v128.any_true(changed)) break;
  }
  if (v128.any_true(zero)) {
    for (let i = 0; i < n; i++) st(L, i, v128.andnot(ld(L, i), zero));
  }
  return v128.andnot(v128.and(f32x4.div(sumlx, suml2), f32x4.gt(suml2, f32x4.splat(0))), zero);
}
