// Dequantization of every ggml type, twin and kernel, against libggml's own `to_float` output,
// and kernel against twin on random blocks whose scales include NaN, ±Inf, ±0 and subnormals.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DTYPES } from '../../src/core/dtypes';
import { QuantLensError } from '../../src/core/errors';
import { DEQUANTIZABLE_DTYPES, dequantizeBlocks, type DequantizableDType } from '../../src/core/quant/dequant';
import { dequantizeWithKernel } from '../../src/kernel/dequantize';
import { instantiateKernel } from '../../src/kernel/wasm';
import { bitwiseMismatch, goldenVectors, haveGolden } from './golden';

const kernel = instantiateKernel();

test('twin and kernel dequantization equal libggml on every golden vector', (t) => {
  if (!haveGolden) return t.skip('../shared/models/ggml-golden is not present');
  const failures: string[] = [];
  const vectors = goldenVectors();
  for (const v of vectors) {
    const blockSize = DTYPES[v.dtype].blockSize;
    const twin = new Float32Array(v.dequantized.length);
    dequantizeBlocks(v.dtype, v.blocks, twin);
    const badTwin = bitwiseMismatch(twin, v.dequantized, blockSize);
    if (badTwin) failures.push(`twin ${v.case} ${v.name}: ${badTwin}`);
    const wasm = new Float32Array(v.dequantized.length);
    dequantizeWithKernel(kernel, v.dtype, v.blocks, wasm);
    const badKernel = bitwiseMismatch(wasm, v.dequantized, blockSize);
    if (badKernel) failures.push(`kernel ${v.case} ${v.name}: ${badKernel}`);
  }
  assert.ok(vectors.length > 0);
  assert.deepEqual(failures, []);
});

/** Byte offsets of each type's f16 scale fields (ggml-common.h), set to special codes in some blocks. */
const HALF_SCALES: Partial<Record<DequantizableDType, number[]>> = {
  Q4_0: [0], Q4_1: [0, 2], Q5_0: [0], Q5_1: [0, 2], Q8_0: [0],
  Q2_K: [80, 82], Q3_K: [108], Q4_K: [0, 2], Q5_K: [0, 2], Q6_K: [208],
  IQ2_XXS: [0], IQ2_XS: [0], IQ2_S: [0], IQ3_XXS: [0], IQ3_S: [0], IQ1_S: [0],
  IQ4_NL: [0], IQ4_XS: [0], TQ1_0: [52], TQ2_0: [64],
};
const SPECIAL_HALVES = [0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe00, 0x0000, 0x8000, 0x0001, 0x83ff, 0x7bff, 0x0400];

/** A deterministic xorshift32 byte stream. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 255;
  }
  return out;
}

test('kernel equals twin bit for bit on random blocks of every type, special scales included', () => {
  const failures: string[] = [];
  for (const [k, dtype] of DEQUANTIZABLE_DTYPES.entries()) {
    const { blockSize, bytesPerBlock } = DTYPES[dtype];
    const blocks = blockSize === 32 ? 2048 : 384;
    const bytes = randomBytes(blocks * bytesPerBlock, 0x9e3779b9 + k);
    const view = new DataView(bytes.buffer);
    SPECIAL_HALVES.forEach((code, b) => {
      for (const off of HALF_SCALES[dtype] ?? []) view.setUint16(b * bytesPerBlock + off, code, true);
    });
    if (dtype === 'Q8_K') [NaN, Infinity, -Infinity, 0, -0, 1e-45, 3.4e38].forEach((v, b) => view.setFloat32(b * bytesPerBlock, v, true));
    if (dtype === 'MXFP4') [0, 1, 2, 127, 128, 254, 255].forEach((e, b) => view.setUint8(b * bytesPerBlock, e));
    const twin = new Float32Array(blocks * blockSize);
    const wasm = new Float32Array(blocks * blockSize);
    dequantizeBlocks(dtype, bytes, twin);
    dequantizeWithKernel(kernel, dtype, bytes, wasm);
    const bad = bitwiseMismatch(wasm, twin, blockSize);
    if (bad) failures.push(`${dtype}: ${bad}`);
  }
  assert.deepEqual(failures, []);
});

test('Q8_K (no golden vector: libggml only writes it for dot products) dequantizes as d · q', () => {
  const bytes = new Uint8Array(DTYPES.Q8_K.bytesPerBlock);
  const view = new DataView(bytes.buffer);
  view.setFloat32(0, 0.1, true);
  for (let j = 0; j < 256; j++) view.setInt8(4 + j, j - 128);
  const want = Float32Array.from({ length: 256 }, (_, j) => Math.fround(0.1) * (j - 128));
  for (const run of [dequantizeBlocks, (d: 'Q8_K', b: Uint8Array, o: Float32Array) => dequantizeWithKernel(kernel, d, b, o)]) {
    const out = new Float32Array(256);
    run('Q8_K', bytes, out);
    assert.equal(bitwiseMismatch(out, want, 256), null);
  }
});

test('dequantization rejects partial blocks, short outputs and types without blocks', () => {
  const code = (fn: () => void) => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof QuantLensError);
      return e.code;
    }
    return 'no error';
  };
  assert.equal(code(() => dequantizeBlocks('Q4_0', new Uint8Array(17), new Float32Array(32))), 'SIZE_MISMATCH');
  assert.equal(code(() => dequantizeBlocks('Q4_0', new Uint8Array(18), new Float32Array(31))), 'SIZE_MISMATCH');
  assert.equal(code(() => dequantizeBlocks('F32', new Uint8Array(4), new Float32Array(1))), 'UNSUPPORTED');
  assert.equal(code(() => dequantizeWithKernel(kernel, 'Q6_K', new Uint8Array(209), new Float32Array(256))), 'SIZE_MISMATCH');
  assert.equal(code(() => dequantizeWithKernel(kernel, 'Q8_1', new Uint8Array(36), new Float32Array(32))), 'UNSUPPORTED');
});
