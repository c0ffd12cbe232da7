import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { ErrorAccumulator, compareModels } from '../../src/core/compare';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import { quantizeToGguf } from '../../src/core/quantize/to-gguf';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';

const stories = resolve(__dirname, '../../../shared/models/stories260K');

test('error figures: exact, scaled and orthogonal signals', () => {
  const exact = new ErrorAccumulator();
  exact.add(Float32Array.of(1, -2, 3), Float32Array.of(1, -2, 3));
  assert.deepEqual(exact.result(), { count: 3, mse: 0, relMse: 0, sqnrDb: null, maxAbsErr: 0, cosine: 1, nonFiniteMismatch: 0 });
  const half = new ErrorAccumulator();
  half.add(Float32Array.of(2, 4), Float32Array.of(1, 2));
  const r = half.result();
  assert.equal(r.relMse, 0.25);
  assert.ok(Math.abs(r.sqnrDb! - 10 * Math.log10(4)) < 1e-12);
  assert.equal(r.maxAbsErr, 2);
  assert.equal(r.cosine, 1);
  const ortho = new ErrorAccumulator();
  ortho.add(Float32Array.of(1, 0), Float32Array.of(0, 1));
  assert.equal(ortho.result().cosine, 0);
});

test('error figures: an all-zero reference against non-zero values is not "equal"', () => {
  const acc = new ErrorAccumulator();
  acc.add(Float32Array.of(0, 0), Float32Array.of(0.5, 0));
  const r = acc.result();
  assert.equal(r.sqnrDb, -Infinity);
  assert.equal(r.mse, 0.125);
  assert.equal(r.relMse, null);
});

test('error figures: NaN/Inf positions that agree are skipped, those that differ make the error infinite', () => {
  const same = new ErrorAccumulator();
  same.add(Float32Array.of(1, NaN, Infinity, 2), Float32Array.of(1, NaN, Infinity, 2));
  assert.deepEqual(same.result(), { count: 4, mse: 0, relMse: 0, sqnrDb: null, maxAbsErr: 0, cosine: 1, nonFiniteMismatch: 0 });

  const broken = new ErrorAccumulator();
  broken.add(Float32Array.of(1, 2, 3, 4), Float32Array.of(1, NaN, 3, 4));
  broken.add(Float32Array.of(-Infinity, 5), Float32Array.of(Infinity, 5));
  const r = broken.result();
  assert.equal(r.count, 6);
  assert.equal(r.nonFiniteMismatch, 2);
  assert.equal(r.sqnrDb, -Infinity, 'a NaN where the reference has a number is not "exact"');
  assert.equal(r.maxAbsErr, Infinity);
  assert.equal(r.cosine, 1, 'cosine over the finite pairs');
});

test('HF safetensors, GGUF and llama2.c .pt of stories260K hold the same numbers (q/k rows matched through the rotary permutation)', { skip: !existsSync(stories) && 'no ../shared/models' }, async () => {
  const hf = await openModel(join(stories, 'hf/model.safetensors'));
  for (const other of ['stories260K-f32.gguf', 'stories260K.pt']) {
    const b = await openModel(join(stories, other));
    const { summary, tensors } = await compareModels(hf, b, nodeFileAccess);
    assert.equal(summary.matched, 47, other);
    assert.deepEqual(summary.onlyInB, [other.endsWith('.pt') ? 'output.weight' : 'output.weight'], other);
    for (const t of tensors) assert.equal(t.sqnrDb, null, `${other}: ${t.name} differs (SQNR ${t.sqnrDb})`);
  }
});

test('a generated model against its Q8_0 and Q4_0 quantizations: SQNR in the expected bands', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-cmp-'));
  try {
    const src = join(dir, 'tiny');
    writeSafetensorsModel(src, llamaTensors(PRESETS.tiny.shape), 'F32', 3);
    const a = await openModel(src);
    for (const [type, lo, hi] of [['Q8_0', 38, 50], ['Q4_0', 14, 24]] as const) {
      const out = join(dir, `${type}.gguf`);
      await quantizeToGguf(src, out, { type, pure: true });
      const { tensors } = await compareModels(a, await openModel(out), nodeFileAccess);
      const q = tensors.find((t) => t.name === 'model.layers.1.mlp.down_proj.weight')!;
      assert.ok(q.sqnrDb! > lo && q.sqnrDb! < hi, `${type}: SQNR ${q.sqnrDb}`);
      const norm = tensors.find((t) => t.name === 'model.norm.weight')!;
      assert.equal(norm.sqnrDb, null, 'norms stay F32');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
