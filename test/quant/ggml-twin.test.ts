// The GGUF quantizer kernels against their TypeScript twins, bit for bit, on inputs the golden
// vectors do not reach: NaN, ±Inf, ±0, subnormals, all-zero and all-tiny blocks, rounding ties,
// and row counts that leave SIMD lanes empty.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DTYPES } from '../../src/core/dtypes';
import { GGUF_QUANT_TYPES, quantizeRows } from '../../src/core/quant/ggml-quantize';
import { quantizeWithKernel } from '../../src/kernel/quantize';
import { instantiateKernel } from '../../src/kernel/wasm';
import { blockMismatch } from './ggml-golden-data';

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
}

const COLS = 512;

/** Rows of edge cases; each 32-value block of a row has its own theme. */
function edgeRows(rows: number, seed: number): Float32Array {
  const rand = rng(seed);
  const x = new Float32Array(rows * COLS);
  for (let b = 0; b < x.length / 32; b++) {
    const o = b * 32;
    const theme = (b * 7 + seed) % 12;
    for (let j = 0; j < 32; j++) {
      const g = gaussian(rand);
      let v: number;
      switch (theme) {
        case 0: v = 0; break; // all zero
        case 1: v = j % 2 ? -0 : 0; break; // signed zeros
        case 2: v = g * 1e-41; break; // subnormals
        case 3: v = g * 1e-30; break; // tiny normals: scales under- and overflow
        case 4: v = Math.round(g * 40) / 2; if (j === 5) v = 127; break; // halves against amax 127: ties
        case 5: v = j === 7 ? Number.NaN : g; break;
        case 6: v = j === 31 ? Number.NaN : g; break; // a NaN last in the block
        case 7: v = j === 3 ? Number.POSITIVE_INFINITY : j === 9 ? Number.NEGATIVE_INFINITY : g; break;
        case 8: v = g * 3e38; break; // near f32 max: overflows in the searches
        case 9: v = j === 0 ? 1000 : g * 0.01; break; // one outlier
        case 10: v = 0.25 * ((j % 5) - 2); break; // few distinct levels
        default: v = g;
      }
      x[o + j] = v;
    }
  }
  return x;
}

const kernel = instantiateKernel();

for (const rows of [1, 3, 6]) {
  const x = edgeRows(rows, rows * 101);
  const rand = rng(rows);
  const imatrix = Float32Array.from({ length: COLS }, (_, j) => (j % 37 === 0 ? 0 : rand() * 4));
  for (const type of GGUF_QUANT_TYPES) {
    test(`kernel equals twin: ${type}, ${rows} row(s) of edge cases, with and without imatrix`, () => {
      for (const qw of [undefined, imatrix]) {
        const twin = quantizeRows(type, x, rows, COLS, qw);
        const wasm = quantizeWithKernel(kernel, type, x, rows, COLS, qw);
        const m = blockMismatch(wasm, twin, DTYPES[type].bytesPerBlock);
        assert.equal(m, null, `${type}${qw ? ' imatrix' : ''}: ${m}`);
      }
    });
  }
}

test('kernel equals twin on random Gaussian rows (5 rows, scales 1e-3 to 1e3)', () => {
  const rand = rng(7);
  const rows = 5;
  const x = Float32Array.from({ length: rows * COLS }, (_, i) => gaussian(rand) * 10 ** (((i >> 9) % 7) - 3));
  const imatrix = Float32Array.from({ length: COLS }, () => rand() ** 2);
  for (const type of GGUF_QUANT_TYPES) {
    for (const qw of [undefined, imatrix]) {
      const m = blockMismatch(quantizeWithKernel(kernel, type, x, rows, COLS, qw), quantizeRows(type, x, rows, COLS, qw), DTYPES[type].bytesPerBlock);
      assert.equal(m, null, `${type}${qw ? ' imatrix' : ''}: ${m}`);
    }
  }
});
