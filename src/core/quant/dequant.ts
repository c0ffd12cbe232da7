/**
 * Dequantization of every ggml block type to f32: the plain TypeScript twin of
 * src/kernel/assembly/dequant.ts and its test oracle, bit-equal to libggml's `dequantize_row_*`
 * (ggml-quants.c). Block layouts are ggml-common.h's structs.
 *
 * Operation order: each element is computed with the reference's f32 operations in the
 * reference's order, every intermediate rounded to f32 with Math.fround, and no operation fused
 * (a product and a sum are two roundings). Products of small integers and f32 values are exact in
 * f64, so the single rounding of the Float32Array store is the f32 rounding of the reference.
 */
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError } from '../errors';
import { f16ToF32, f32FromBits } from './fp16';
import {
  IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID,
  KSIGNS_IQ2XS, KVALUES_IQ4NL, KVALUES_MXFP4,
} from './ggml-tables';

/** Writes the `blockSize` values of the block at `src[at…]` into `y[yo…]`. */
type BlockDequantizer = (src: Uint8Array, at: number, y: Float32Array, yo: number) => void;

const fr = Math.fround;

let halfTable: Float32Array | undefined;
/** f16 code at src[at], little-endian, as f32 (a 65,536-entry table: the twin is called in tight loops). */
function half(src: Uint8Array, at: number): number {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = f16ToF32(h);
  }
  return halfTable[src[at]! | (src[at + 1]! << 8)]!;
}

function u16(src: Uint8Array, at: number): number {
  return src[at]! | (src[at + 1]! << 8);
}

function u32(src: Uint8Array, at: number): number {
  return (src[at]! | (src[at + 1]! << 8) | (src[at + 2]! << 16) | (src[at + 3]! << 24)) >>> 0;
}

function i8(v: number): number {
  return (v << 24) >> 24;
}

/** Whether bit j of the 8-bit sign pattern `signs` is set (ggml's kmask_iq2xs[j] is 1 << j). */
function negative(signs: number, j: number): boolean {
  return ((signs >> j) & 1) === 1;
}

// Q4_0: d (f16), 16 bytes of nibbles; element j is the low nibble of byte j, element j+16 the high one.
const q4_0: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let j = 0; j < 16; j++) {
    const q = s[at + 2 + j]!;
    y[yo + j] = ((q & 15) - 8) * d;
    y[yo + j + 16] = ((q >> 4) - 8) * d;
  }
};

// Q4_1: d, m (f16), nibbles; x = q·d + m.
const q4_1: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  const m = half(s, at + 2);
  for (let j = 0; j < 16; j++) {
    const q = s[at + 4 + j]!;
    y[yo + j] = fr((q & 15) * d) + m;
    y[yo + j + 16] = fr((q >> 4) * d) + m;
  }
};

// Q5_0: d, qh (32 fifth bits, bit j for element j), nibbles; x = (q − 16)·d.
const q5_0: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  const qh = u32(s, at + 2);
  for (let j = 0; j < 16; j++) {
    const q = s[at + 6 + j]!;
    const lo = (q & 15) | (((qh >>> j) & 1) << 4);
    const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
    y[yo + j] = (lo - 16) * d;
    y[yo + j + 16] = (hi - 16) * d;
  }
};

// Q5_1: d, m, qh, nibbles; x = q·d + m.
const q5_1: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  const m = half(s, at + 2);
  const qh = u32(s, at + 4);
  for (let j = 0; j < 16; j++) {
    const q = s[at + 8 + j]!;
    const lo = (q & 15) | (((qh >>> j) & 1) << 4);
    const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
    y[yo + j] = fr(lo * d) + m;
    y[yo + j + 16] = fr(hi * d) + m;
  }
};

// Q8_0: d, 32 int8.
const q8_0: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let j = 0; j < 32; j++) y[yo + j] = i8(s[at + 2 + j]!) * d;
};

/** E8M0 exponent byte as 2^(e − 128), i.e. half the E8M0 value (MXFP4's levels are doubled). */
function e8m0Half(e: number): number {
  return f32FromBits(e < 2 ? 0x00200000 << e : (e - 1) << 23);
}

// MXFP4: e (E8M0), nibbles indexing the doubled E2M1 levels.
const mxfp4: BlockDequantizer = (s, at, y, yo) => {
  const d = e8m0Half(s[at]!);
  for (let j = 0; j < 16; j++) {
    const q = s[at + 1 + j]!;
    y[yo + j] = KVALUES_MXFP4[q & 15]! * d;
    y[yo + j + 16] = KVALUES_MXFP4[q >> 4]! * d;
  }
};

// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64] (2 bits), d, dmin.
// Elements in groups of 16; group g reads bits 2·((g / 2) mod 4) of qs[32·⌊g/8⌋ + 16·(g mod 2) + l].
const q2_K: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at + 80);
  const dmin = half(s, at + 82);
  for (let g = 0; g < 16; g++) {
    const sc = s[at + g]!;
    const dl = fr(d * (sc & 15));
    const ml = fr(dmin * (sc >> 4));
    const qBase = at + 16 + 32 * (g >> 3) + 16 * (g & 1);
    const shift = 2 * ((g >> 1) & 3);
    for (let l = 0; l < 16; l++) {
      y[yo + 16 * g + l] = fr(dl * ((s[qBase + l]! >> shift) & 3)) - ml;
    }
  }
};

/** Q3_K's 16 signed 6-bit scales: low 4 bits from bytes 0–7 (nibbles), high 2 bits from bytes 8–11. */
function q3kScale(s: Uint8Array, at: number, g: number): number {
  const low = g < 8 ? s[at + 96 + g]! & 15 : s[at + 96 + g - 8]! >> 4;
  const high = (s[at + 96 + 8 + (g & 3)]! >> (2 * (g >> 2))) & 3;
  return (low | (high << 4)) - 32;
}

// Q3_K: hmask[32], qs[64], scales[12], d; q = low 2 bits − (high bit clear ? 4 : 0).
const q3_K: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at + 108);
  for (let g = 0; g < 16; g++) {
    const dl = fr(d * q3kScale(s, at, g));
    const half128 = g >> 3;
    const shift = 2 * ((g >> 1) & 3);
    const qBase = at + 32 + 32 * half128 + 16 * (g & 1);
    const hBase = at + 16 * (g & 1);
    const hBit = 4 * half128 + ((g >> 1) & 3);
    for (let l = 0; l < 16; l++) {
      const low = (s[qBase + l]! >> shift) & 3;
      const high = (s[hBase + l]! >> hBit) & 1;
      y[yo + 16 * g + l] = dl * (low - (high ? 0 : 4));
    }
  }
};

/** 6-bit scale and min j (0–7) of Q4_K and Q5_K, packed in 12 bytes at `p`. */
function kScale(s: Uint8Array, p: number, j: number): number {
  return j < 4 ? s[p + j]! & 63 : (s[p + j + 4]! & 15) | ((s[p + j - 4]! >> 6) << 4);
}
function kMin(s: Uint8Array, p: number, j: number): number {
  return j < 4 ? s[p + j + 4]! & 63 : (s[p + j + 4]! >> 4) | ((s[p + j]! >> 6) << 4);
}

// Q4_K: d, dmin, scales[12], qs[128]; 8 sub-blocks of 32: x = (d·sc)·q − dmin·m.
const q4_K: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  const dmin = half(s, at + 2);
  for (let j = 0; j < 8; j++) {
    const dl = fr(d * kScale(s, at + 4, j));
    const ml = fr(dmin * kMin(s, at + 4, j));
    const qBase = at + 16 + 32 * (j >> 1);
    const shift = 4 * (j & 1);
    for (let l = 0; l < 32; l++) {
      y[yo + 32 * j + l] = fr(dl * ((s[qBase + l]! >> shift) & 15)) - ml;
    }
  }
};

// Q5_K: like Q4_K, plus qh[32]: bit j of qh[l] is the fifth bit of element l of sub-block j.
const q5_K: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  const dmin = half(s, at + 2);
  for (let j = 0; j < 8; j++) {
    const dl = fr(d * kScale(s, at + 4, j));
    const ml = fr(dmin * kMin(s, at + 4, j));
    const qBase = at + 48 + 32 * (j >> 1);
    const shift = 4 * (j & 1);
    for (let l = 0; l < 32; l++) {
      const q = ((s[qBase + l]! >> shift) & 15) + (((s[at + 16 + l]! >> j) & 1) << 4);
      y[yo + 32 * j + l] = fr(dl * q) - ml;
    }
  }
};

// Q6_K: ql[128], qh[64], scales int8[16], d; x = (d·sc)·(q − 32), 16 groups of 16.
const q6_K: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at + 208);
  for (let n = 0; n < 2; n++) {
    const ql = at + 64 * n;
    const qh = at + 128 + 32 * n;
    const sc = at + 192 + 8 * n;
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const h = s[qh + l]!;
      const q1 = ((s[ql + l]! & 15) | ((h & 3) << 4)) - 32;
      const q2 = ((s[ql + l + 32]! & 15) | (((h >> 2) & 3) << 4)) - 32;
      const q3 = ((s[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const q4 = ((s[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
      const o = yo + 128 * n + l;
      y[o] = fr(d * i8(s[sc + is]!)) * q1;
      y[o + 32] = fr(d * i8(s[sc + is + 2]!)) * q2;
      y[o + 64] = fr(d * i8(s[sc + is + 4]!)) * q3;
      y[o + 96] = fr(d * i8(s[sc + is + 6]!)) * q4;
    }
  }
};

// Q8_K: d (f32), qs int8[256], bsums (unused here).
const q8_K: BlockDequantizer = (s, at, y, yo) => {
  const d = f32FromBits(u32(s, at));
  for (let j = 0; j < 256; j++) y[yo + j] = d * i8(s[at + 4 + j]!);
};

/** db · grid byte, negated when the sign bit is set (ggml multiplies by ±1.f: exact). */
function signed(v: number, neg: boolean): number {
  return neg ? -v : v;
}

// IQ2_XXS: d, then per 32 elements two u32: four grid indices (bytes), and 4×7 sign bits + 4-bit scale.
const iq2_xxs: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let ib = 0; ib < 8; ib++) {
    const p = at + 2 + 8 * ib;
    const aux1 = u32(s, p + 4);
    const db = fr(fr(d * (0.5 + (aux1 >>> 28))) * 0.25);
    for (let l = 0; l < 4; l++) {
      const grid = 8 * s[p + l]!;
      const signs = KSIGNS_IQ2XS[(aux1 >>> (7 * l)) & 127]!;
      for (let j = 0; j < 8; j++) {
        y[yo + 32 * ib + 8 * l + j] = signed(fr(db * IQ2XXS_GRID[grid + j]!), negative(signs, j));
      }
    }
  }
};

// IQ2_XS: d, qs u16[32] (9-bit grid index, 7 sign bits), scales[8] (two 4-bit scales per 32).
const iq2_xs: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let ib = 0; ib < 8; ib++) {
    const sc = s[at + 66 + ib]!;
    const db0 = fr(fr(d * (0.5 + (sc & 15))) * 0.25);
    const db1 = fr(fr(d * (0.5 + (sc >> 4))) * 0.25);
    for (let l = 0; l < 4; l++) {
      const q = u16(s, at + 2 + 2 * (4 * ib + l));
      const grid = 8 * (q & 511);
      const signs = KSIGNS_IQ2XS[q >> 9]!;
      const db = l < 2 ? db0 : db1;
      for (let j = 0; j < 8; j++) {
        y[yo + 32 * ib + 8 * l + j] = signed(fr(db * IQ2XS_GRID[grid + j]!), negative(signs, j));
      }
    }
  }
};

// IQ2_S: d, qs[32] grid low bits, signs[32], qh[8] (2 high bits per index), scales[8].
const iq2_s: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let ib = 0; ib < 8; ib++) {
    const sc = s[at + 74 + ib]!;
    const db0 = fr(fr(d * (0.5 + (sc & 15))) * 0.25);
    const db1 = fr(fr(d * (0.5 + (sc >> 4))) * 0.25);
    const qh = s[at + 66 + ib]!;
    for (let l = 0; l < 4; l++) {
      const grid = 8 * (s[at + 2 + 4 * ib + l]! | (((qh >> (2 * l)) & 3) << 8));
      const signs = s[at + 34 + 4 * ib + l]!;
      const db = l < 2 ? db0 : db1;
      for (let j = 0; j < 8; j++) {
        y[yo + 32 * ib + 8 * l + j] = signed(fr(db * IQ2S_GRID[grid + j]!), negative(signs, j));
      }
    }
  }
};

// IQ3_XXS: d, qs[64] grid indices (4 magnitudes each), then per 32 elements a u32 of 4×7 sign bits + scale.
const iq3_xxs: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let ib = 0; ib < 8; ib++) {
    const aux = u32(s, at + 66 + 4 * ib);
    const db = fr(fr(d * (0.5 + (aux >>> 28))) * 0.5);
    for (let l = 0; l < 4; l++) {
      const signs = KSIGNS_IQ2XS[(aux >>> (7 * l)) & 127]!;
      const g1 = 4 * s[at + 2 + 8 * ib + 2 * l]!;
      const g2 = 4 * s[at + 2 + 8 * ib + 2 * l + 1]!;
      const o = yo + 32 * ib + 8 * l;
      for (let j = 0; j < 4; j++) {
        y[o + j] = signed(fr(db * IQ3XXS_GRID[g1 + j]!), negative(signs, j));
        y[o + j + 4] = signed(fr(db * IQ3XXS_GRID[g2 + j]!), negative(signs, j + 4));
      }
    }
  }
};

// IQ3_S: d, qs[64] grid low bits, qh[8] ninth bits, signs[32], scales[4] (two 4-bit scales per 64).
const iq3_s: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let ib = 0; ib < 8; ib++) {
    const sc = s[at + 106 + (ib >> 1)]!;
    const db = fr(d * (1 + 2 * ((ib & 1) === 0 ? sc & 15 : sc >> 4)));
    const qh = s[at + 66 + ib]!;
    for (let l = 0; l < 4; l++) {
      const g1 = 4 * (s[at + 2 + 8 * ib + 2 * l]! | (((qh >> (2 * l)) & 1) << 8));
      const g2 = 4 * (s[at + 2 + 8 * ib + 2 * l + 1]! | (((qh >> (2 * l + 1)) & 1) << 8));
      const signs = s[at + 74 + 4 * ib + l]!;
      const o = yo + 32 * ib + 8 * l;
      for (let j = 0; j < 4; j++) {
        y[o + j] = signed(fr(db * IQ3S_GRID[g1 + j]!), negative(signs, j));
        y[o + j + 4] = signed(fr(db * IQ3S_GRID[g2 + j]!), negative(signs, j + 4));
      }
    }
  }
};

const IQ1_DELTA = 0.125;
const iq1Grid = new Int8Array(IQ1S_GRID.buffer, IQ1S_GRID.byteOffset, IQ1S_GRID.byteLength);

// IQ1_S: d, qs[32] grid low bits, qh u16[8]: 3×3 high index bits, 3-bit scale, delta sign.
const iq1_s: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let ib = 0; ib < 8; ib++) {
    const qh = u16(s, at + 34 + 2 * ib);
    const dl = fr(d * (2 * ((qh >> 12) & 7) + 1));
    const delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
    for (let l = 0; l < 4; l++) {
      const grid = 8 * (s[at + 2 + 4 * ib + l]! | (((qh >> (3 * l)) & 7) << 8));
      for (let j = 0; j < 8; j++) y[yo + 32 * ib + 8 * l + j] = dl * (iq1Grid[grid + j]! + delta);
    }
  }
};

// IQ1_M: qs[32], qh[16] (3 high index bits + delta sign per 8), scales[8]: four u16 holding
// 3-bit sub-scales in bits 0–11 and the f16 super-scale in their top nibbles.
const iq1_m: BlockDequantizer = (s, at, y, yo) => {
  const sc0 = u16(s, at + 48), sc1 = u16(s, at + 50), sc2 = u16(s, at + 52), sc3 = u16(s, at + 54);
  const code = (sc0 >> 12) | ((sc1 >> 8) & 0x00f0) | ((sc2 >> 4) & 0x0f00) | (sc3 & 0xf000);
  const d = f16ToF32(code);
  for (let ib = 0; ib < 8; ib++) {
    const sc = u16(s, at + 48 + 2 * (ib >> 1));
    const shift = 6 * (ib & 1);
    const dl1 = fr(d * (2 * ((sc >> shift) & 7) + 1));
    const dl2 = fr(d * (2 * ((sc >> (shift + 3)) & 7) + 1));
    for (let l = 0; l < 4; l++) {
      const qh = s[at + 32 + 2 * ib + (l >> 1)]!;
      const hi = (l & 1) === 0 ? qh & 7 : (qh >> 4) & 7;
      const deltaNegative = (l & 1) === 0 ? qh & 0x08 : qh & 0x80;
      const delta = deltaNegative ? -IQ1_DELTA : IQ1_DELTA;
      const grid = 8 * (s[at + 4 * ib + l]! | (hi << 8));
      const dl = l < 2 ? dl1 : dl2;
      for (let j = 0; j < 8; j++) y[yo + 32 * ib + 8 * l + j] = dl * (iq1Grid[grid + j]! + delta);
    }
  }
};

// IQ4_NL: d, nibbles indexing kvalues_iq4nl.
const iq4_nl: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  for (let j = 0; j < 16; j++) {
    const q = s[at + 2 + j]!;
    y[yo + j] = d * KVALUES_IQ4NL[q & 15]!;
    y[yo + j + 16] = d * KVALUES_IQ4NL[q >> 4]!;
  }
};

// IQ4_XS: d, scales_h (u16, 2 high bits per 32), scales_l[4] (4 low bits per 32), nibbles.
const iq4_xs: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at);
  const scalesH = u16(s, at + 2);
  for (let ib = 0; ib < 8; ib++) {
    const ls = ((s[at + 4 + (ib >> 1)]! >> (4 * (ib & 1))) & 15) | (((scalesH >> (2 * ib)) & 3) << 4);
    const dl = fr(d * (ls - 32));
    for (let j = 0; j < 16; j++) {
      const q = s[at + 8 + 16 * ib + j]!;
      y[yo + 32 * ib + j] = dl * KVALUES_IQ4NL[q & 15]!;
      y[yo + 32 * ib + j + 16] = dl * KVALUES_IQ4NL[q >> 4]!;
    }
  }
};

/** The base-3 digit n (0 = most significant) of a TQ1_0 byte holding 5 (or 4) trits scaled to 0–255. */
function trit(byte: number, n: number): number {
  const q = (byte * 3 ** n) & 255;
  return (q * 3) >> 8;
}

// TQ1_0: qs[48] (5 trits per byte), qh[4] (4 trits per byte), d. Element order: for the first 32
// bytes, digit n of byte m is element 32·n + m; for the next 16, element 160 + 16·n + m; then
// digit n of qh[m] is element 240 + 4·n + m.
const tq1_0: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at + 52);
  let o = yo;
  for (let n = 0; n < 5; n++) for (let m = 0; m < 32; m++) y[o++] = (trit(s[at + m]!, n) - 1) * d;
  for (let n = 0; n < 5; n++) for (let m = 0; m < 16; m++) y[o++] = (trit(s[at + 32 + m]!, n) - 1) * d;
  for (let n = 0; n < 4; n++) for (let m = 0; m < 4; m++) y[o++] = (trit(s[at + 48 + m]!, n) - 1) * d;
};

// TQ2_0: qs[64] (2 bits per element, values 0–2 meaning −1, 0, 1), d.
const tq2_0: BlockDequantizer = (s, at, y, yo) => {
  const d = half(s, at + 64);
  let o = yo;
  for (let j = 0; j < 64; j += 32) {
    for (let l = 0; l < 4; l++) {
      for (let m = 0; m < 32; m++) y[o++] = (((s[at + j + m]! >> (2 * l)) & 3) - 1) * d;
    }
  }
};

const DEQUANTIZERS = {
  Q4_0: q4_0, Q4_1: q4_1, Q5_0: q5_0, Q5_1: q5_1, Q8_0: q8_0,
  Q2_K: q2_K, Q3_K: q3_K, Q4_K: q4_K, Q5_K: q5_K, Q6_K: q6_K, Q8_K: q8_K,
  IQ2_XXS: iq2_xxs, IQ2_XS: iq2_xs, IQ2_S: iq2_s, IQ3_XXS: iq3_xxs, IQ3_S: iq3_s,
  IQ1_S: iq1_s, IQ1_M: iq1_m, IQ4_NL: iq4_nl, IQ4_XS: iq4_xs,
  TQ1_0: tq1_0, TQ2_0: tq2_0, MXFP4: mxfp4,
} satisfies Partial<Record<DType, BlockDequantizer>>;

/** The ggml block types that dequantize to f32. */
export type DequantizableDType = keyof typeof DEQUANTIZERS;

export const DEQUANTIZABLE_DTYPES = Object.keys(DEQUANTIZERS) as DequantizableDType[];

export function isDequantizable(dtype: DType): dtype is DequantizableDType {
  return Object.prototype.hasOwnProperty.call(DEQUANTIZERS, dtype);
}

/**
 * Dequantizes whole blocks of `dtype` from `bytes` into `out` (blockSize values per block).
 * `bytes` must hold whole blocks and `out` room for all their values.
 */
export function dequantizeBlocks(dtype: DType, bytes: Uint8Array, out: Float32Array): void {
  if (!isDequantizable(dtype)) throw new QuantLensError('UNSUPPORTED', `no dequantizer for ${dtype}`);
  const { blockSize, bytesPerBlock } = DTYPES[dtype];
  if (bytes.length % bytesPerBlock !== 0) {
    throw new QuantLensError('SIZE_MISMATCH', `${bytes.length} bytes is not a whole number of ${dtype} blocks (${bytesPerBlock} bytes)`);
  }
  const blocks = bytes.length / bytesPerBlock;
  if (out.length < blocks * blockSize) {
    throw new QuantLensError('SIZE_MISMATCH', `${blocks} ${dtype} blocks need ${blocks * blockSize} values, the output holds ${out.length}`);
  }
  const dequantize = DEQUANTIZERS[dtype];
  for (let b = 0; b < blocks; b++) dequantize(bytes, b * bytesPerBlock, out, b * blockSize);
}
