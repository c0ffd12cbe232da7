import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { QuantLensError } from '../../src/core/errors';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import { readImportanceMatrix } from '../../src/core/imatrix';
import { openModel } from '../../src/core/readers';
import { runSensitivity, sweepSensitivity } from '../../src/core/sensitivity';
import { sampleRows } from '../../src/core/sensitivity/sweep';

const models = resolve(__dirname, '../../../shared/models');
const tiny = (() => {
  let dir: string | undefined;
  return () => {
    if (!dir) {
      dir = mkdtempSync(join(tmpdir(), 'quantlens-sweep-'));
      writeSafetensorsModel(dir, llamaTensors(PRESETS.tiny.shape), 'F32', 7);
    }
    return join(dir, 'model.safetensors');
  };
})();

test('row sample: deterministic, sorted, one row per stratum, whole tensor when small', () => {
  const a = sampleRows('model.layers.0.mlp.up_proj.weight', 0, 5632, 2048, 1 << 17);
  assert.deepEqual(a, sampleRows('model.layers.0.mlp.up_proj.weight', 0, 5632, 2048, 1 << 17));
  assert.equal(a.length, 64);
  for (let i = 0; i < a.length; i++) {
    assert.ok(a[i] >= Math.floor((i * 5632) / 64) && a[i] < Math.floor(((i + 1) * 5632) / 64));
  }
  assert.notDeepEqual(a, sampleRows('model.layers.1.mlp.up_proj.weight', 0, 5632, 2048, 1 << 17));
  assert.notDeepEqual(a, sampleRows('model.layers.0.mlp.up_proj.weight', 1, 5632, 2048, 1 << 17));
  assert.deepEqual([...sampleRows('x', 0, 10, 64, 1 << 17)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(sampleRows('x', 0, 4096, 1 << 16, 1 << 17).length, 16, 'at least 16 rows');
});

test('sweep on the generated tiny model: errors ordered by bits; sampled estimate near the full value within its bound', async () => {
  const model = await openModel(tiny());
  const types = ['Q8_0', 'Q5_0', 'Q4_0'];
  const streamed: string[] = [];
  const full = await sweepSensitivity(model, { types, sampleElements: null, onTensor: (t) => streamed.push(t.name) });
  const sampled = await sweepSensitivity(model, { types, sampleElements: 4096 });
  assert.equal(full.mode, 'weights');
  const quantizable = full.tensors.filter((t) => t.quantizable);
  assert.equal(quantizable.length, 1 + 2 * 7 + 1, 'embed, 7 matrices per layer, lm_head');
  assert.deepEqual([...streamed].sort(), quantizable.map((t) => t.name).sort(), 'every tensor streamed once');
  assert.ok(full.tensors.find((t) => t.name.endsWith('input_layernorm.weight'))!.errors.Q8_0 === null, 'norms: not applicable');
  let inside = 0;
  let count = 0;
  let deviation = 0;
  for (const t of quantizable) {
    const f = t.errors;
    assert.ok(f.Q8_0!.relMse < f.Q5_0!.relMse && f.Q5_0!.relMse < f.Q4_0!.relMse, t.name);
    assert.equal(f.Q8_0!.relMseBound, 0);
    assert.equal(t.sampledRows, t.rows);
    assert.ok(Math.abs(f.Q4_0!.sqnrDb! + 10 * Math.log10(f.Q4_0!.relMse)) < 1e-9);
    const s = sampled.tensors.find((x) => x.name === t.name)!;
    assert.equal(s.sampledRows, Math.min(t.rows, 16));
    for (const ty of types) {
      const e = s.errors[ty]!;
      count++;
      if (Math.abs(e.relMse - f[ty]!.relMse) <= e.relMseBound) inside++;
      deviation += Math.abs(e.relMse - f[ty]!.relMse) / f[ty]!.relMse;
    }
  }
  // A 95% interval from 16 rows: most estimates fall inside it, and they are close on average.
  assert.ok(inside >= 0.8 * count, `${inside} of ${count} estimates within their bound`);
  assert.ok(deviation / count < 0.15, `mean relative deviation ${deviation / count}`);
  // Aggregation: parameters add up, per layer and per role.
  const layer0 = full.byLayer.find((g) => g.layer === 0)!;
  assert.equal(layer0.params, quantizable.filter((t) => t.layer === 0).reduce((s, t) => s + t.params, 0));
  const downs = quantizable.filter((t) => t.role === 'ffn_down');
  const down = full.byRole.find((g) => g.role === 'ffn_down')!;
  const expected = downs.reduce((s, t) => s + t.params * t.errors.Q4_0!.relMse, 0) / downs.reduce((s, t) => s + t.params, 0);
  assert.ok(Math.abs(down.errors.Q4_0!.relMse - expected) < 1e-15);
  assert.equal(full.layers.filter((g) => g.layer === 1).length, 7);
});

test('default GGUF candidates on the tiny model (rows of 256): K-quants measured, Q5_0/Q4_0 left out', async () => {
  const model = await openModel(tiny());
  const r = await sweepSensitivity(model, { sampleElements: 256 });
  const q = r.tensors.find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')!;
  assert.deepEqual(r.types, ['Q8_0', 'Q6_K', 'Q5_K', 'Q4_K', 'Q3_K', 'Q2_K', 'IQ4_XS', 'Q5_0', 'Q4_0']);
  for (const ty of ['Q8_0', 'Q6_K', 'Q5_K', 'Q4_K', 'Q3_K', 'Q2_K', 'IQ4_XS']) assert.ok(q.errors[ty], ty);
  assert.equal(q.errors.Q5_0, null);
  assert.equal(q.errors.Q4_0, null);
  assert.ok(q.errors.Q6_K!.relMse < q.errors.Q4_K!.relMse && q.errors.Q4_K!.relMse < q.errors.Q2_K!.relMse);
});

test('stories260K: rows of 64 and 172 do not fit K-quants: not applicable per tensor', async (t) => {
  const path = join(models, 'stories260K/hf/model.safetensors');
  if (!existsSync(path)) return t.skip('../shared/models is not present');
  const r = await sweepSensitivity(await openModel(path), { sampleElements: null });
  const up = r.tensors.find((x) => x.name === 'model.layers.0.mlp.up_proj.weight')!; // [172, 64]
  const down = r.tensors.find((x) => x.name === 'model.layers.0.mlp.down_proj.weight')!; // [64, 172]
  for (const ty of ['Q6_K', 'Q5_K', 'Q4_K', 'Q3_K', 'Q2_K', 'IQ4_XS']) {
    assert.equal(up.errors[ty], null, ty);
    assert.equal(down.errors[ty], null, ty);
  }
  assert.ok(up.errors.Q8_0 && up.errors.Q5_0 && up.errors.Q4_0, 'rows of 64 take the 32-blocks');
  assert.equal(down.quantizable, false, 'rows of 172 fit no candidate');
  assert.ok(Object.values(down.errors).every((e) => e === null));
  // A layer whose ffn_down fits nothing still aggregates its other tensors.
  const layer = r.layers.find((g) => g.layer === 0 && g.role === 'ffn_up')!;
  assert.ok(layer.errors.Q8_0 && layer.errors.Q4_K === null);
  assert.equal(r.layers.find((g) => g.layer === 0 && g.role === 'ffn_down'), undefined);
});

test('imatrix mode on stories260K: weighted errors, embedding measured unweighted and listed', async (t) => {
  const path = join(models, 'stories260K/hf/model.safetensors');
  if (!existsSync(path)) return t.skip('../shared/models is not present');
  const model = await openModel(path);
  const imatrix = await readImportanceMatrix(join(models, 'stories260K/imatrix/stories260K.imatrix.gguf'));
  const weighted = await sweepSensitivity(model, { imatrix, types: ['Q8_0', 'Q4_0'], sampleElements: null });
  const plain = await sweepSensitivity(model, { types: ['Q8_0', 'Q4_0'], sampleElements: null });
  assert.equal(weighted.mode, 'imatrix');
  assert.deepEqual(weighted.imatrixMissing, ['model.embed_tokens.weight'], 'tied output: the embedding is the only weight llama-imatrix does not see');
  const name = 'model.layers.2.self_attn.q_proj.weight';
  const w = weighted.tensors.find((x) => x.name === name)!.errors.Q4_0!;
  const p = plain.tensors.find((x) => x.name === name)!.errors.Q4_0!;
  assert.notEqual(w.relMse, p.relMse, 'importance changes both the quantization and the error weighting');
  assert.ok(w.relMse > 0 && w.relMse < 0.1);
  assert.equal(
    weighted.tensors.find((x) => x.name === 'model.embed_tokens.weight')!.errors.Q4_0!.relMse,
    plain.tensors.find((x) => x.name === 'model.embed_tokens.weight')!.errors.Q4_0!.relMse,
  );
});

test('cache: second run answers from the cache; changed settings miss; abort stops with CANCELLED', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'quantlens-cache-'));
  const opts = { types: ['Q8_0', 'Q4_0'], sampleElements: 512, cacheDir };
  const first = await runSensitivity(tiny(), opts);
  assert.equal(first.cached, false);
  const replayed: string[] = [];
  const second = await runSensitivity(tiny(), { ...opts, onTensor: (t) => replayed.push(t.name) });
  assert.equal(second.cached, true);
  assert.deepEqual(second.tensors, first.tensors);
  assert.equal(replayed.length, first.tensors.filter((t) => t.quantizable).length);
  const third = await runSensitivity(tiny(), { ...opts, seed: 3 });
  assert.equal(third.cached, false);
  assert.equal(readdirSync(cacheDir).filter((f) => f.endsWith('.json')).length, 2);

  const abort = new AbortController();
  let seen = 0;
  await assert.rejects(
    runSensitivity(tiny(), {
      types: ['Q8_0'],
      sampleElements: null,
      signal: abort.signal,
      onProgress: () => {
        if (++seen === 3) abort.abort();
      },
    }),
    (e: unknown) => e instanceof QuantLensError && e.code === 'CANCELLED',
  );
});
