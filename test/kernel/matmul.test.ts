import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { LlamaModel } from '../../src/core/model/llama';
import { matmulF32 } from '../../src/core/model/ops';
import { matmulInKernel } from '../../src/kernel/matmul-job';
import { PoolMatmul } from '../../src/kernel/matmul';
import { KernelPool } from '../../src/kernel/pool';
import { instantiateKernel, KernelArena } from '../../src/kernel/wasm';

const stories = resolve(__dirname, '../../../shared/models/stories260K');

test('kernel matmulF32 equals the TypeScript twin to f32 summation error (tails, odd sizes, output stride)', () => {
  const kernel = instantiateKernel();
  const arena = new KernelArena(kernel);
  for (const [n, rows, cols] of [[1, 1, 1], [3, 5, 7], [4, 9, 64], [2, 3, 172], [5, 17, 259]]) {
    const x = Float32Array.from({ length: n * cols }, (_, i) => Math.sin(i * 1.3) * 4);
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.cos(i * 0.7));
    const want = new Float32Array(n * rows);
    matmulF32(x, n, w, rows, cols, want);
    arena.reset();
    const px = arena.take(x.byteLength);
    const pw = arena.take(w.byteLength);
    const stride = rows + 2;
    const po = arena.take(n * stride * 4);
    new Float32Array(kernel.memory.buffer, px, x.length).set(x);
    new Float32Array(kernel.memory.buffer, pw, w.length).set(w);
    matmulInKernel(kernel, px, n, pw, rows, cols, po, stride);
    const got = new Float32Array(kernel.memory.buffer, po, n * stride);
    for (let t = 0; t < n; t++) {
      for (let r = 0; r < rows; r++) {
        let bound = 0;
        for (let c = 0; c < cols; c++) bound += Math.abs(x[t * cols + c] * w[r * cols + c]);
        const err = Math.abs(got[t * stride + r] - want[t * rows + r]);
        assert.ok(err <= bound * cols * 2 ** -23, `[${n}×${rows}×${cols}] row ${r} token ${t}: ${got[t * stride + r]} vs ${want[t * rows + r]}`);
      }
    }
  }
});

test('stories260K: the forward pass with products in the pool (2 workers) gives the TypeScript logits', { skip: !existsSync(stories) && 'no ../shared/models' }, async () => {
  const pool = new KernelPool({ size: 2 });
  try {
    for (const p of ['hf', 'stories260K-Q8_0.gguf']) {
      const model = await LlamaModel.load(resolve(stories, p));
      const tokens = model.tokenizer!.encode(readFileSync(resolve(stories, 'imatrix/calibration.txt')).subarray(0, 150));
      const want = await model.forward(tokens);
      const got = await model.forward(tokens, { backend: new PoolMatmul(pool) });
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      assert.ok(worst < 1e-4, `${p}: worst logit difference ${worst}`);
    }
  } finally {
    pool.dispose();
  }
});
