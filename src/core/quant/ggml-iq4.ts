/**
 * TypeScript twins of libggml's IQ4_NL and IQ4_XS quantizers (ggml-quants.c
 * `quantize_iq4_nl`, `quantize_iq4_xs`, both through `quantize_row_iq4_nl_impl` with ntry = 7,
 * with or without importance weights), byte-exact. Sub-blocks of 32 values map to the 16
 * non-linear levels below; IQ4_XS groups eight sub-blocks under one f16 scale with 6-bit
 * sub-block scales.
 */
import { fround as f, nearestInt, writeF16 } from './ggml-float';

/** The 16 IQ4 levels (ggml-common.h `kvalues_iq4nl`). */
export const IQ4_LEVELS = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113] as const;

const NTRY = 7;
const GROUP_MAX_EPS = f(1e-15);

/** best_index_int8: index of the level nearest to `x` by bisection; the upper one unless the lower is strictly nearer. */
function nearestLevel(x: number): number {
  if (x <= IQ4_LEVELS[0]) return 0;
  if (x >= IQ4_LEVELS[15]) return 15;
  let ml = 0;
  let mu = 15;
  while (mu - ml > 1) {
    const mav = (ml + mu) >> 1;
    if (x < IQ4_LEVELS[mav]!) mu = mav;
    else ml = mav;
  }
  return f(x - IQ4_LEVELS[mu - 1]!) < f(IQ4_LEVELS[mu]! - x) ? mu - 1 : mu;
}

/** Scratch of one super-block: levels, per-sub-block weights and scales. */
interface Iq4Scratch {
  L: Uint8Array;
  weight: Float32Array;
  scales: Float32Array;
}

/**
 * One super-block of `sbs` values (32 for IQ4_NL, 256 for IQ4_XS) at x[xb]: for each sub-block
 * of 32, the scale max/−127 refined by weighted least squares over 15 trial inverse scales
 * (itry − 127)/max; writes the sub-block scales and levels to `s`, returns the largest-magnitude scale.
 */
function searchScales(
  x: Float32Array, xb: number, sbs: number, qw: Float32Array | undefined, qo: number, s: Iq4Scratch,
): number {
  let sigma2 = 0;
  for (let j = 0; j < sbs; j++) sigma2 = f(sigma2 + f(x[xb + j]! * x[xb + j]!));
  sigma2 = f(sigma2 * f(2 / sbs));
  let maxScale = 0;
  let amaxScale = 0;
  const { L, weight, scales } = s;
  for (let ib = 0; ib < sbs / 32; ib++) {
    const xs = xb + 32 * ib;
    for (let j = 0; j < 32; j++) {
      const v = x[xs + j]!;
      weight[j] = qw ? f(qw[qo + 32 * ib + j]! * f(Math.sqrt(f(sigma2 + f(v * v))))) : f(v * v);
    }
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const ax = Math.abs(x[xs + j]!);
      if (ax > amax) {
        amax = ax;
        max = x[xs + j]!;
      }
    }
    if (amax < GROUP_MAX_EPS) {
      scales[ib] = 0;
      continue;
    }
    let d = f(-max / IQ4_LEVELS[0]);
    let id = f(1 / d);
    let sumqx = 0;
    let sumq2 = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[xs + j]!;
      const l = nearestLevel(f(id * v));
      L[32 * ib + j] = l;
      const q = IQ4_LEVELS[l]!;
      const w = weight[j]!;
      sumqx = f(sumqx + f(f(w * q) * v));
      sumq2 = f(sumq2 + f(f(w * q) * q));
    }
    d = sumq2 > 0 ? f(sumqx / sumq2) : 0;
    let best = f(d * sumqx);
    for (let itry = -NTRY; itry <= NTRY; itry++) {
      id = f((itry + IQ4_LEVELS[0]) / max);
      sumqx = 0;
      sumq2 = 0;
      for (let j = 0; j < 32; j++) {
        const v = x[xs + j]!;
        const q = IQ4_LEVELS[nearestLevel(f(id * v))]!;
        const w = weight[j]!;
        sumqx = f(sumqx + f(f(w * q) * v));
        sumq2 = f(sumq2 + f(f(w * q) * q));
      }
      if (sumq2 > 0 && f(sumqx * sumqx) > f(best * sumq2)) {
        d = f(sumqx / sumq2);
        best = f(d * sumqx);
      }
    }
    scales[ib] = d;
    if (Math.abs(d) > amaxScale) {
      amaxScale = Math.abs(d);
      maxScale = d;
    }
  }
  return maxScale;
}

/** 16 bytes per 32 levels: level j low nibble, level j + 16 high nibble. */
function packLevels(L: Uint8Array, n: number, out: Uint8Array, o: number): void {
  for (let i = 0; i < n / 32; i++) {
    for (let j = 0; j < 16; j++) out[o + 16 * i + j] = L[32 * i + j]! | (L[32 * i + 16 + j]! << 4);
  }
}

function scratch(n: number): Iq4Scratch {
  return { L: new Uint8Array(n), weight: new Float32Array(32), scales: new Float32Array(n / 32) };
}

/** IQ4_NL (18 bytes: f16 d, 16 bytes of level nibbles). */
export function quantizeRowIQ4_NL(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  const s = scratch(32);
  for (let b = 0; b < n / 32; b++) {
    const xb = xo + 32 * b;
    const ob = oo + 18 * b;
    searchScales(x, xb, 32, qw, 32 * b, s);
    const d = s.scales[0]!;
    writeF16(out, ob, d);
    // requantize with the unrounded scale (the f16 rounding is not fed back)
    const id = d !== 0 ? f(1 / d) : 0;
    for (let j = 0; j < 32; j++) s.L[j] = nearestLevel(f(id * x[xb + j]!));
    packLevels(s.L, 32, out, ob + 2);
  }
}

/** IQ4_XS (136 bytes: f16 d, u16 scales_h (2 high bits per sub-block), 4 bytes scales_l (nibbles), 128 level bytes). */
export function quantizeRowIQ4_XS(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  const s = scratch(256);
  for (let b = 0; b < n / 256; b++) {
    const xb = xo + 256 * b;
    const ob = oo + 136 * b;
    const maxScale = searchScales(x, xb, 256, qw, 256 * b, s);
    const d = f(-maxScale / 32);
    writeF16(out, ob, d);
    const id = d !== 0 ? f(1 / d) : 0;
    let scalesH = 0;
    out.fill(0, ob + 4, ob + 8);
    for (let ib = 0; ib < 8; ib++) {
      const l = Math.max(-32, Math.min(31, nearestInt(f(id * s.scales[ib]!))));
      const dl = f(d * l);
      const idl = dl !== 0 ? f(1 / dl) : 0;
      for (let j = 0; j < 32; j++) s.L[32 * ib + j] = nearestLevel(f(idl * x[xb + 32 * ib + j]!));
      const biased = l + 32;
      out[ob + 4 + (ib >> 1)] |= (biased & 0xf) << (4 * (ib & 1));
      scalesH |= (biased >> 4) << (2 * ib);
    }
    out[ob + 2] = scalesH & 0xff;
    out[ob + 3] = scalesH >>> 8;
    packLevels(s.L, 256, out, ob + 8);
  }
}
