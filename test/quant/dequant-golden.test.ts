// Dequantization of every ggml type, twin and kernel, against libggml's own `to_float` output.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DTYPES } from '../../src/core/dtypes';
import { dequantizeBlocks } from '../../src/core/quant/dequant';
import { bitwiseMismatch, goldenVectors, haveGolden } from './golden';

test('twin dequantization equals libggml on every golden vector', (t) => {
  if (!haveGolden) return t.skip('../shared/models/ggml-golden is not present');
  const failures: string[] = [];
  const vectors = goldenVectors();
  for (const v of vectors) {
    const out = new Float32Array(v.dequantized.length);
    dequantizeBlocks(v.dtype, v.blocks, out);
    const bad = bitwiseMismatch(out, v.dequantized, DTYPES[v.dtype].blockSize);
    if (bad) failures.push(`${v.case} ${v.name}: ${bad}`);
  }
  assert.ok(vectors.length > 0);
  assert.deepEqual(failures, []);
});
