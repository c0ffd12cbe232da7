/**
 * TypeScript twins of libggml's legacy quantizers Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (ggml-quants.c
 * `quantize_row_*_ref` and, with importance weights, `quantize_row_*_impl`), byte-exact.
 * Each function quantizes one row of `n` values (a multiple of 32) at `x[xo]` into `out[oo]`.
 * Every float step is rounded to f32 in the order the reference evaluates it.
 */
import { fround as f, roundHalfAway, toInt8, truncToInt32, writeF16 } from './ggml-float';
import { makeQkxQuants, makeQxQuants } from './ggml-kquants';

const QK = 32;

/** Q8_0 (34-byte blocks: f16 d, 32 × int8). Importance weights are ignored by libggml. */
export function quantizeRowQ8_0(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number): void {
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + b * QK;
    const ob = oo + b * 34;
    // amax = MAX(amax, |v|): a NaN is kept only until the next element
    let amax = 0;
    for (let j = 0; j < QK; j++) {
      const a = Math.abs(x[xb + j]!);
      amax = amax > a ? amax : a;
    }
    const d = f(amax / 127);
    const id = d !== 0 ? f(1 / d) : 0;
    writeF16(out, ob, d);
    // qs[j] = roundf(x·id), ties away from zero, stored as int8 through a 32-bit conversion
    for (let j = 0; j < QK; j++) out[ob + 2 + j] = truncToInt32(roundHalfAway(f(x[xb + j]! * id))) & 0xff;
  }
}

/** Largest-magnitude value of a block, the first one on ties (`if (amax < |v|)`); its sign matters. */
function signedAbsMax(x: Float32Array, xb: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[xb + j]!;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

/** Σ x² over the row in f32, in order, then σ² = Σ/n: the row statistic of the imatrix paths. */
function rowSigma2(x: Float32Array, xo: number, n: number): number {
  let sumX2 = 0;
  for (let j = 0; j < n; j++) sumX2 = f(sumX2 + f(x[xo + j]! * x[xo + j]!));
  return f(sumX2 / n);
}

/** weight[j] = qw[j] · sqrtf(σ² + x[j]²) */
function importance(x: Float32Array, xb: number, qw: Float32Array, qo: number, sigma2: number, weight: Float32Array): void {
  for (let j = 0; j < weight.length; j++) {
    weight[j] = f(qw[qo + j]! * f(Math.sqrt(f(sigma2 + f(x[xb + j]! * x[xb + j]!)))));
  }
}

/** Q4_0 (18-byte blocks: f16 d, 16 bytes of nibbles; element j low, j+16 high). */
export function quantizeRowQ4_0(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  if (qw) return quantizeRowQ4_0Weighted(x, xo, n, out, oo, qw);
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + b * QK;
    const ob = oo + b * 18;
    const d = f(signedAbsMax(x, xb) / -8);
    const id = d !== 0 ? f(1 / d) : 0;
    writeF16(out, ob, d);
    for (let j = 0; j < 16; j++) {
      // (int8_t)(x·id + 8.5f) truncates; MIN(15, ·) then the uint8 store
      const q0 = Math.min(15, toInt8(truncToInt32(f(f(x[xb + j]! * id) + 8.5)))) & 0xff;
      const q1 = Math.min(15, toInt8(truncToInt32(f(f(x[xb + j + 16]! * id) + 8.5)))) & 0xff;
      out[ob + 2 + j] = (q0 | (q1 << 4)) & 0xff;
    }
  }
}

function quantizeRowQ4_0Weighted(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw: Float32Array): void {
  const sigma2 = rowSigma2(x, xo, n);
  const weight = new Float32Array(QK);
  const L = new Int8Array(QK);
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + b * QK;
    const ob = oo + b * 18;
    importance(x, xb, qw, b * QK, sigma2, weight);
    const d = makeQxQuants(QK, 8, x, xb, L, 0, weight, 0);
    writeF16(out, ob, d);
    for (let j = 0; j < 16; j++) out[ob + 2 + j] = (L[j]! | (L[j + 16]! << 4)) & 0xff;
  }
}

/** Q4_1 (20-byte blocks: f16 d, f16 m, 16 bytes of nibbles). */
export function quantizeRowQ4_1(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  if (qw) return quantizeRowQx1Weighted(x, xo, n, out, oo, qw, 15);
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + b * QK;
    const ob = oo + b * 20;
    const [min, d] = minAndStep(x, xb, 15);
    const id = d !== 0 ? f(1 / d) : 0;
    writeF16(out, ob, d);
    writeF16(out, ob + 2, min);
    for (let j = 0; j < 16; j++) {
      // (int8_t)((x − min)·id + 0.5f) truncates; MIN(15, ·)
      const q0 = Math.min(15, toInt8(truncToInt32(f(f(f(x[xb + j]! - min) * id) + 0.5)))) & 0xff;
      const q1 = Math.min(15, toInt8(truncToInt32(f(f(f(x[xb + j + 16]! - min) * id) + 0.5)))) & 0xff;
      out[ob + 4 + j] = (q0 | (q1 << 4)) & 0xff;
    }
  }
}

/** min and max from ±FLT_MAX by `v < min` / `v > max`; d = (max − min) / nmax. */
function minAndStep(x: Float32Array, xb: number, nmax: number): [number, number] {
  let min = 3.4028234663852886e38;
  let max = -3.4028234663852886e38;
  for (let j = 0; j < QK; j++) {
    const v = x[xb + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, f(f(max - min) / nmax)];
}

/** Q4_1 / Q5_1 with importance weights: make_qkx3_quants per block (rmin −0.9, rdelta 0.05, 36 steps). */
function quantizeRowQx1Weighted(
  x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw: Float32Array, nmax: 15 | 31,
): void {
  const sigma2 = rowSigma2(x, xo, n);
  const weight = new Float32Array(QK);
  const L = new Uint8Array(QK);
  const Laux = new Uint8Array(QK);
  const theMin = new Float32Array(1);
  const blockBytes = nmax === 15 ? 20 : 24;
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + b * QK;
    const ob = oo + b * blockBytes;
    importance(x, xb, qw, b * QK, sigma2, weight);
    const d = makeQkxQuants(QK, nmax, x, xb, weight, 0, L, 0, Laux, f(-0.9), f(0.05), 36, false, theMin, 0);
    writeF16(out, ob, d);
    writeF16(out, ob + 2, -theMin[0]!);
    if (nmax === 15) {
      for (let j = 0; j < 16; j++) out[ob + 4 + j] = (L[j]! | (L[j + 16]! << 4)) & 0xff;
    } else {
      writeQ5Quants(out, ob + 4, L);
    }
  }
}

/** qh (4 bytes, bit j = 5th bit of element j) then 16 bytes of low nibbles. */
function writeQ5Quants(out: Uint8Array, o: number, L: Uint8Array | Int8Array): void {
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const q0 = L[j]! & 0xff;
    const q1 = L[j + 16]! & 0xff;
    out[o + 4 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
    qh |= ((q0 & 0x10) >>> 4) << j;
    qh |= ((q1 & 0x10) >>> 4) << (j + 16);
  }
  out[o] = qh & 0xff;
  out[o + 1] = (qh >>> 8) & 0xff;
  out[o + 2] = (qh >>> 16) & 0xff;
  out[o + 3] = (qh >>> 24) & 0xff;
}

/** Q5_0 (22-byte blocks: f16 d, 4 bytes qh, 16 bytes of nibbles). */
export function quantizeRowQ5_0(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  const L = new Int8Array(QK);
  if (qw) {
    const sigma2 = rowSigma2(x, xo, n);
    const weight = new Float32Array(QK);
    for (let b = 0; b < n / QK; b++) {
      const xb = xo + b * QK;
      const ob = oo + b * 22;
      importance(x, xb, qw, b * QK, sigma2, weight);
      writeF16(out, ob, makeQxQuants(QK, 16, x, xb, L, 0, weight, 0));
      writeQ5Quants(out, ob + 2, L);
    }
    return;
  }
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + b * QK;
    const ob = oo + b * 22;
    const d = f(signedAbsMax(x, xb) / -16);
    const id = d !== 0 ? f(1 / d) : 0;
    writeF16(out, ob, d);
    // (int8_t)(x·id + 16.5f) truncates; MIN(31, ·) then the uint8 store
    for (let j = 0; j < QK; j++) L[j] = Math.min(31, toInt8(truncToInt32(f(f(x[xb + j]! * id) + 16.5))));
    writeQ5Quants(out, ob + 2, L);
  }
}

/** Q5_1 (24-byte blocks: f16 d, f16 m, 4 bytes qh, 16 bytes of nibbles). */
export function quantizeRowQ5_1(x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array): void {
  if (qw) return quantizeRowQx1Weighted(x, xo, n, out, oo, qw, 31);
  const L = new Uint8Array(QK);
  for (let b = 0; b < n / QK; b++) {
    const xb = xo + b * QK;
    const ob = oo + b * 24;
    const [min, d] = minAndStep(x, xb, 31);
    const id = d !== 0 ? f(1 / d) : 0;
    writeF16(out, ob, d);
    writeF16(out, ob + 2, min);
    // (uint8_t)((x − min)·id + 0.5f) truncates, no clamp
    for (let j = 0; j < QK; j++) L[j] = truncToInt32(f(f(f(x[xb + j]! - min) * id) + 0.5)) & 0xff;
    writeQ5Quants(out, ob + 4, L);
  }
}
