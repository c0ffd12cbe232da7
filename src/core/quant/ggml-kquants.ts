/**
 * TypeScript twins of libggml's K-quant quantizers Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and their scale
 * searches (ggml-quants.c `make_qx_quants`, `make_q3_quants`, `make_qkx2_quants` /
 * `make_qkx3_quants`, `make_qp_quants`, `quantize_row_q*_K_ref` and, with importance weights,
 * `quantize_row_q*_K_impl`), byte-exact. Each row function quantizes `n` values (a multiple of
 * 256) at `x[xo]` into `out[oo]`. Every float step is rounded to f32 in the reference's order;
 * a C `int` operand of a float operation is converted first (`w*x*l` is `(w·x)·(float)l`).
 */
import { fround as f, nearestInt, readF16, toInt8, writeF16 } from './ggml-float';

const QK_K = 256;
const GROUP_MAX_EPS = f(1e-15);

/**
 * make_qx_quants with rmse_type 1 (the only one the quantizers use): symmetric levels
 * [−nmax, nmax−1] for weights `qw` (x² when absent), the least-squares scale of the
 * first rounding, then 18 trial scales −(nmax + 0.1·is)/max, is ∈ [−9, 9] \ {0}, kept when
 * sumlx²/suml2 grows. Writes L = l + nmax; returns the scale.
 */
export function makeQxQuants(
  n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, Lo: number, qw: Float32Array | null, qwo: number,
): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[Lo + i] = 0;
    return 0;
  }
  let iscale = f(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
    L[Lo + i] = l + nmax;
    const w = qw ? qw[qwo + i]! : f(xi * xi);
    sumlx = f(sumlx + f(f(w * xi) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 !== 0 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
      const w = qw ? qw[qwo + i]! : f(xi * xi);
      sumlx = f(sumlx + f(f(w * xi) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) {
        L[Lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[xo + i]!))));
      }
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/**
 * make_q3_quants with do_rmse (Q3_K without importance weights): levels [−nmax, nmax−1], weights
 * x², then up to 5 passes moving single levels to l = nearest(x·Σl²/Σxl) when that raises
 * (Σwxl)²/Σwl². Writes L = l + nmax; returns the scale.
 */
function makeQ3Quants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, Lo: number): number {
  let amax = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[Lo + i] = 0;
    return 0;
  }
  const iscale = f(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
    L[Lo + i] = l;
    const w = f(xi * xi);
    sumlx = f(sumlx + f(f(w * xi) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const w = f(xi * xi);
      const li = L[Lo + i]!;
      let slx = f(sumlx - f(f(w * xi) * li));
      if (slx > 0) {
        let sl2 = f(suml2 - f(f(w * li) * li));
        const newL = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(f(xi * sl2) / slx))));
        if (newL !== li) {
          slx = f(slx + f(f(w * xi) * newL));
          sl2 = f(sl2 + f(f(w * newL) * newL));
          if (sl2 > 0 && f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            L[Lo + i] = newL;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (changed === 0) break;
  }
  for (let i = 0; i < n; i++) L[Lo + i] = L[Lo + i]! + nmax;
  return suml2 > 0 ? f(sumlx / suml2) : 0;
}

/**
 * make_qkx2_quants / make_qkx3_quants (identical when weights are given: `max == min` and
 * `max <= min` agree because max ≥ min, and both are false for NaN): asymmetric levels
 * [0, nmax] with min ≤ 0, first the plain rounding, then nstep+1 trial scales
 * (rmin + rdelta·is + nmax)/(max − min) each refitted by weighted least squares, kept when the
 * weighted error (|d| if useMad, else d²) drops. Writes L, stores −min into theMin[ti]; returns the scale.
 */
export function makeQkxQuants(
  n: number, nmax: number, x: Float32Array, xo: number, weights: Float32Array, wo: number,
  L: Uint8Array, Lo: number, Laux: Uint8Array, rmin: number, rdelta: number, nstep: number, useMad: boolean,
  theMin: Float32Array, ti: number,
): number {
  let min = x[xo]!;
  let max = x[xo]!;
  let sumW = weights[wo]!;
  let sumX = f(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[wo + i]!;
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[Lo + i] = 0;
    theMin[ti] = -min;
    return 0;
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
    L[Lo + i] = l;
    let diff = f(f(f(scale * l) + min) - xi);
    diff = useMad ? Math.abs(diff) : f(diff * diff);
    bestError = f(bestError + f(weights[wo + i]! * diff));
  }
  for (let is = 0; is <= nstep; is++) {
    // min is the best candidate's so far: later trials are centred on it
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
      Laux[i] = l;
      const w = weights[wo + i]!;
      sumL = f(sumL + f(w * l));
      sumL2 = f(sumL2 + f(f(w * l) * l));
      sumXL = f(sumXL + f(f(w * l) * xi));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = f(f(f(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        diff = useMad ? Math.abs(diff) : f(diff * diff);
        curError = f(curError + f(weights[wo + i]! * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[Lo + i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  theMin[ti] = -min;
  return scale;
}

/**
 * make_qp_quants: quantizes the non-negative sub-block scales (or mins) `x` to [0, nmax] with
 * weights `qw`: 8 trial scales (0.1·is + nmax)/max by weighted MSE, then up to 5 passes of
 * single-level moves. L is uint8 (a negative level wraps, as in C); returns the scale.
 */
function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, qw: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = max > x[i]! ? max : x[i]!;
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(f(iscale * x[i]!));
  const scale = f(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f(x[i]! - f(scale * L[i]!));
    bestMse = f(bestMse + f(f(qw[i]! * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f(f(f(f(0.1) * is) + nmax) / max);
    const scaleIs = f(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(f(iscaleIs * x[i]!)));
      const diff = f(x[i]! - f(scaleIs * l));
      mse = f(mse + f(f(qw[i]! * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(f(iscale * x[i]!)));
    L[i] = l;
    const w = qw[i]!;
    sumlx = f(sumlx + f(f(w * x[i]!) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = qw[i]!;
      const li = L[i]!;
      let slx = f(sumlx - f(f(w * x[i]!) * li));
      let sl2 = f(suml2 - f(f(w * li) * li));
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearestInt(f(f(x[i]! * sl2) / slx)));
        if (newL !== li) {
          slx = f(slx + f(f(w * x[i]!) * newL));
          sl2 = f(sl2 + f(f(w * newL) * newL));
          if (f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            L[i] = newL;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (changed === 0) break;
  }
  return suml2 > 0 ? f(sumlx / suml2) : 0;
}

/** Σ x² over a 256-value super-block, in order. */
function sumSquares(x: Float32Array, xo: number, n: number): number {
  let s = 0;
  for (let l = 0; l < n; l++) s = f(s + f(x[xo + l]! * x[xo + l]!));
  return s;
}

/** weight[l] = qw[l] · sqrtf(σ² + x[l]²) for one sub-block; returns Σ weight in order. */
function importanceWeights(
  x: Float32Array, xo: number, qw: Float32Array, qo: number, sigma2: number, weight: Float32Array, n: number,
): number {
  let sum = 0;
  for (let l = 0; l < n; l++) {
    weight[l] = f(qw[qo + l]! * f(Math.sqrt(f(sigma2 + f(x[xo + l]! * x[xo + l]!)))));
  }
  for (let l = 0; l < n; l++) sum = f(sum + weight[l]!);
  return sum;
}

/** qs of Q2_K / Q3_K: four 2-bit levels per byte, element j + 32·k in bits 2k, per 128 values. */
function pack2Bit(L: Uint8Array | Int8Array, out: Uint8Array, o: number): void {
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      out[o + j / 4 + l] = (L[j + l]! | (L[j + l + 32]! << 2) | (L[j + l + 64]! << 4) | (L[j + l + 96]! << 6)) & 0xff;
    }
  }
}

/** Q2_K (84 bytes: 16 scale bytes (low nibble scale, high nibble min), 64 qs, f16 d, f16 dmin). */
export function quantizeRowQ2_K(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  const L = new Uint8Array(QK_K);
  const Laux = new Uint8Array(16);
  const weights = new Float32Array(16);
  const mins = new Float32Array(16);
  const scales = new Float32Array(16);
  const sw = new Float32Array(16);
  const Ls = new Uint8Array(16);
  const Lm = new Uint8Array(16);
  for (let i = 0; i < n / QK_K; i++) {
    const xb = xo + i * QK_K;
    const ob = oo + i * 84;
    let dm: number;
    let mm: number;
    if (qw) {
      const sigma2 = f(sumSquares(x, xb, QK_K) / QK_K);
      for (let j = 0; j < 16; j++) {
        sw[j] = importanceWeights(x, xb + 16 * j, qw, QK_K * i + 16 * j, sigma2, weights, 16);
        scales[j] = makeQkxQuants(16, 3, x, xb + 16 * j, weights, 0, L, 16 * j, Laux, f(-0.9), f(0.05), 36, false, mins, j);
      }
      dm = makeQpQuants(16, 15, scales, Ls, sw);
      mm = makeQpQuants(16, 15, mins, Lm, sw);
      writeF16(out, ob + 80, dm);
      writeF16(out, ob + 82, mm);
      for (let j = 0; j < 16; j++) out[ob + j] = (Ls[j]! | (Lm[j]! << 4)) & 0xff;
    } else {
      let maxScale = 0;
      let maxMin = 0;
      for (let j = 0; j < 16; j++) {
        for (let l = 0; l < 16; l++) weights[l] = Math.abs(x[xb + 16 * j + l]!);
        scales[j] = makeQkxQuants(16, 3, x, xb + 16 * j, weights, 0, L, 16 * j, Laux, f(-0.5), f(0.1), 15, true, mins, j);
        if (scales[j]! > maxScale) maxScale = scales[j]!;
        if (mins[j]! > maxMin) maxMin = mins[j]!;
      }
      if (maxScale > 0) {
        const iscale = f(15 / maxScale);
        for (let j = 0; j < 16; j++) out[ob + j] = nearestInt(f(iscale * scales[j]!)) & 0xff;
        writeF16(out, ob + 80, f(maxScale / 15));
      } else {
        for (let j = 0; j < 16; j++) out[ob + j] = 0;
        writeF16(out, ob + 80, 0);
      }
      if (maxMin > 0) {
        const iscale = f(15 / maxMin);
        for (let j = 0; j < 16; j++) out[ob + j] = (out[ob + j]! | (nearestInt(f(iscale * mins[j]!)) << 4)) & 0xff;
        writeF16(out, ob + 82, f(maxMin / 15));
      } else {
        writeF16(out, ob + 82, 0);
      }
    }
    // requantize every sub-block with its stored scale and min
    dm = readF16(out, ob + 80);
    mm = readF16(out, ob + 82);
    for (let j = 0; j < 16; j++) {
      const d = f(dm * (out[ob + j]! & 0xf));
      if (d === 0) continue;
      const m = f(mm * (out[ob + j]! >>> 4));
      for (let ii = 0; ii < 16; ii++) {
        L[16 * j + ii] = Math.max(0, Math.min(3, nearestInt(f(f(x[xb + 16 * j + ii]! + m) / d))));
      }
    }
    pack2Bit(L, out, ob + 16);
  }
}

/** The 6-bit signed scale j of a Q3_K block (12 packed bytes at `s`), minus 32. */
function q3kScale(out: Uint8Array, s: number, j: number): number {
  const lo = j < 8 ? out[s + j]! & 0xf : out[s + j - 8]! >>> 4;
  return toInt8(lo | (((out[s + 8 + (j % 4)]! >>> (2 * (j >> 2))) & 3) << 4)) - 32;
}

/** Q3_K (110 bytes: 32 hmask, 64 qs, 12 packed 6-bit scales, f16 d). */
export function quantizeRowQ3_K(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  const weight = new Float32Array(16);
  const sw = new Float32Array(16);
  const Ls = new Int8Array(16);
  for (let i = 0; i < n / QK_K; i++) {
    const xb = xo + i * QK_K;
    const ob = oo + i * 110;
    const s = ob + 96;
    out.fill(0, s, s + 12);
    const putScale = (j: number, l: number): void => {
      if (j < 8) out[s + j] = l & 0xf;
      else out[s + j - 8] = out[s + j - 8]! | ((l & 0xf) << 4);
      out[s + 8 + (j % 4)] = (out[s + 8 + (j % 4)]! | ((l >> 4) << (2 * (j >> 2)))) & 0xff;
    };
    if (qw) {
      const sigma2 = f(f(2 * sumSquares(x, xb, QK_K)) / QK_K);
      for (let j = 0; j < 16; j++) {
        sw[j] = importanceWeights(x, xb + 16 * j, qw, QK_K * i + 16 * j, sigma2, weight, 16);
        scales[j] = makeQxQuants(16, 4, x, xb + 16 * j, L, 16 * j, weight, 0);
      }
      const dBlock = makeQxQuants(16, 32, scales, 0, Ls, 0, sw, 0);
      for (let j = 0; j < 16; j++) putScale(j, Ls[j]!);
      writeF16(out, ob + 108, dBlock);
    } else {
      let maxScale = 0;
      let amax = 0;
      for (let j = 0; j < 16; j++) {
        scales[j] = makeQ3Quants(16, 4, x, xb + 16 * j, L, 16 * j);
        const scale = Math.abs(scales[j]!);
        if (scale > amax) {
          amax = scale;
          maxScale = scales[j]!;
        }
      }
      if (maxScale !== 0) {
        const iscale = f(-32 / maxScale);
        for (let j = 0; j < 16; j++) {
          // int8_t l = nearest_int(·), then clamped to [−32, 31] and offset
          putScale(j, Math.max(-32, Math.min(31, toInt8(nearestInt(f(iscale * scales[j]!))))) + 32);
        }
        writeF16(out, ob + 108, f(1 / iscale));
      } else {
        writeF16(out, ob + 108, 0);
      }
    }
    const d16 = readF16(out, ob + 108);
    for (let j = 0; j < 16; j++) {
      const d = f(d16 * q3kScale(out, s, j));
      if (d === 0) continue;
      for (let ii = 0; ii < 16; ii++) {
        L[16 * j + ii] = Math.max(-4, Math.min(3, nearestInt(f(x[xb + 16 * j + ii]! / d)))) + 4;
      }
    }
    // high bit of element j goes to hmask[j % 32], bit j / 32
    out.fill(0, ob, ob + 32);
    for (let j = 0; j < QK_K; j++) {
      if (L[j]! > 3) {
        out[ob + (j & 31)] = out[ob + (j & 31)]! | (1 << (j >> 5));
        L[j] = L[j]! - 4;
      }
    }
    pack2Bit(L, out, ob + 32);
  }
}

/** The 6-bit scale and min of sub-block j from the 12 packed bytes at `s` (get_scale_min_k4). */
function scaleMinK4(out: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [out[s + j]! & 63, out[s + j + 4]! & 63];
  return [
    (out[s + j + 4]! & 0xf) | ((out[s + j - 4]! >>> 6) << 4),
    (out[s + j + 4]! >>> 4) | ((out[s + j]! >>> 6) << 4),
  ];
}

/** Packs the 6-bit scales `ls` and mins `lm` of the eight sub-blocks into 12 bytes at `s`. */
function packScaleMinK4(out: Uint8Array, s: number, ls: Uint8Array, lm: Uint8Array): void {
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      out[s + j] = ls[j]!;
      out[s + j + 4] = lm[j]!;
    } else {
      out[s + j + 4] = (ls[j]! & 0xf) | ((lm[j]! & 0xf) << 4);
      out[s + j - 4] = out[s + j - 4]! | ((ls[j]! >>> 4) << 6);
      out[s + j] = out[s + j]! | ((lm[j]! >>> 4) << 6);
    }
  }
}

/**
 * Q4_K (144 bytes: f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes) and Q5_K (176 bytes: the
 * same head, 32 bytes qh, 128 nibble bytes): eight sub-blocks of 32 with a 6-bit scale and min.
 */
function quantizeRowQxK(
  x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw: Float32Array | undefined, nmax: 15 | 31,
): void {
  const blockBytes = nmax === 15 ? 144 : 176;
  const L = new Uint8Array(QK_K);
  const Laux = new Uint8Array(32);
  const Ls = new Uint8Array(8);
  const Lm = new Uint8Array(8);
  const weights = new Float32Array(32);
  const sw = new Float32Array(8);
  const mins = new Float32Array(8);
  const scales = new Float32Array(8);
  for (let i = 0; i < n / QK_K; i++) {
    const xb = xo + i * QK_K;
    const ob = oo + i * blockBytes;
    if (qw) {
      const sigma2 = f(f(2 * sumSquares(x, xb, QK_K)) / QK_K);
      for (let j = 0; j < 8; j++) {
        sw[j] = importanceWeights(x, xb + 32 * j, qw, QK_K * i + 32 * j, sigma2, weights, 32);
        scales[j] = makeQkxQuants(32, nmax, x, xb + 32 * j, weights, 0, L, 32 * j, Laux, f(-0.9), f(0.05), 36, false, mins, j);
      }
      const dBlock = makeQpQuants(8, 63, scales, Ls, sw);
      const mBlock = makeQpQuants(8, 63, mins, Lm, sw);
      if (nmax === 31) {
        for (let j = 0; j < 8; j++) {
          Ls[j] = Math.min(63, Ls[j]!);
          Lm[j] = Math.min(63, Lm[j]!);
        }
      }
      out.fill(0, ob + 4, ob + 16);
      packScaleMinK4(out, ob + 4, Ls, Lm);
      writeF16(out, ob, dBlock);
      writeF16(out, ob + 2, mBlock);
    } else {
      let maxScale = 0;
      let maxMin = 0;
      for (let j = 0; j < 8; j++) {
        const xs = xb + 32 * j;
        let sumX2 = 0;
        for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(x[xs + l]! * x[xs + l]!));
        const avX = f(Math.sqrt(f(sumX2 / 32)));
        for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(x[xs + l]!));
        scales[j] = nmax === 15
          ? makeQkxQuants(32, 15, x, xs, weights, 0, L, 32 * j, Laux, -1, f(0.1), 20, false, mins, j)
          : makeQkxQuants(32, 31, x, xs, weights, 0, L, 32 * j, Laux, -0.5, f(0.1), 15, false, mins, j);
        if (scales[j]! > maxScale) maxScale = scales[j]!;
        if (mins[j]! > maxMin) maxMin = mins[j]!;
      }
      const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
      const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
      for (let j = 0; j < 8; j++) {
        Ls[j] = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff);
        Lm[j] = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
      }
      out.fill(0, ob + 4, ob + 16);
      packScaleMinK4(out, ob + 4, Ls, Lm);
      writeF16(out, ob, f(maxScale / 63));
      writeF16(out, ob + 2, f(maxMin / 63));
    }
    const d16 = readF16(out, ob);
    const dmin16 = readF16(out, ob + 2);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(out, ob + 4, j);
      const d = f(d16 * sc);
      if (d === 0) continue;
      const dm = f(dmin16 * m);
      for (let ii = 0; ii < 32; ii++) {
        L[32 * j + ii] = Math.max(0, Math.min(nmax, nearestInt(f(f(x[xb + 32 * j + ii]! + dm) / d))));
      }
    }
    if (nmax === 15) {
      // byte l of 32-byte group g: element 64g + l (low nibble), 64g + 32 + l (high nibble)
      for (let j = 0, q = ob + 16; j < QK_K; j += 64, q += 32) {
        for (let l = 0; l < 32; l++) out[q + l] = L[j + l]! | (L[j + l + 32]! << 4);
      }
    } else {
      const qh = ob + 16;
      out.fill(0, qh, qh + 32);
      let m1 = 1;
      let m2 = 2;
      for (let j = 0, ql = ob + 48; j < QK_K; j += 64, ql += 32) {
        for (let l = 0; l < 32; l++) {
          let l1 = L[j + l]!;
          if (l1 > 15) {
            l1 -= 16;
            out[qh + l] = out[qh + l]! | m1;
          }
          let l2 = L[j + l + 32]!;
          if (l2 > 15) {
            l2 -= 16;
            out[qh + l] = out[qh + l]! | m2;
          }
          out[ql + l] = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
      }
    }
  }
}

export function quantizeRowQ4_K(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  quantizeRowQxK(x, xo, n, out, oo, qw, 15);
}

export function quantizeRowQ5_K(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  quantizeRowQxK(x, xo, n, out, oo, qw, 31);
}

/** Q6_K (210 bytes: 128 ql, 64 qh, 16 int8 scales, f16 d). */
export function quantizeRowQ6_K(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  const L = new Int8Array(QK_K);
  const scales = new Float32Array(16);
  for (let i = 0; i < n / QK_K; i++) {
    const xb = xo + i * QK_K;
    const ob = oo + i * 210;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(16, 32, x, xb + 16 * ib, L, 16 * ib, qw ?? null, QK_K * i + 16 * ib);
      scales[ib] = scale;
      if (Math.abs(scale) > maxAbsScale) {
        maxAbsScale = Math.abs(scale);
        maxScale = scale;
      }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      out.fill(0, ob, ob + 210);
      continue;
    }
    const iscale = f(-128 / maxScale);
    writeF16(out, ob + 208, f(1 / iscale));
    for (let ib = 0; ib < 16; ib++) out[ob + 192 + ib] = Math.min(127, nearestInt(f(iscale * scales[ib]!))) & 0xff;
    const d16 = readF16(out, ob + 208);
    for (let j = 0; j < 16; j++) {
      const d = f(d16 * toInt8(out[ob + 192 + j]!));
      if (d === 0) continue;
      for (let ii = 0; ii < 16; ii++) {
        L[16 * j + ii] = Math.max(-32, Math.min(31, nearestInt(f(x[xb + 16 * j + ii]! / d)))) + 32;
      }
    }
    for (let j = 0, ql = ob, qh = ob + 128; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        const l0 = L[j + l]!;
        const l1 = L[j + l + 32]!;
        const l2 = L[j + l + 64]!;
        const l3 = L[j + l + 96]!;
        out[ql + l] = (l0 & 0xf) | ((l2 & 0xf) << 4);
        out[ql + l + 32] = (l1 & 0xf) | ((l3 & 0xf) << 4);
        out[qh + l] = ((l0 >> 4) | ((l1 >> 4) << 2) | ((l2 >> 4) << 4) | ((l3 >> 4) << 6)) & 0xff;
      }
    }
  }
}
