import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { QuantLensError } from '../../src/core/errors';
import { importanceFor, readImportanceMatrix } from '../../src/core/imatrix';
import { openModel } from '../../src/core/readers';

const models = resolve(__dirname, '../../../shared/models');
const dir = join(models, 'stories260K/imatrix');

test('imatrix: GGUF and legacy .dat of the same run give the same weights, mapped to HF names', async (t) => {
  if (!existsSync(dir)) return t.skip('../shared/models is not present');
  const gguf = await readImportanceMatrix(join(dir, 'stories260K.imatrix.gguf'));
  const dat = await readImportanceMatrix(join(dir, 'stories260K.imatrix.dat'));
  assert.equal(gguf.format, 'gguf');
  assert.equal(dat.format, 'dat');
  assert.equal(gguf.entries.size, 35, '5 layers × 7 matmuls');
  assert.deepEqual([...dat.entries.keys()].sort(), [...gguf.entries.keys()].sort());
  assert.equal(gguf.chunkCount, 20);
  assert.equal(dat.chunkCount, 20);
  assert.deepEqual(dat.datasets, ['text/story3.txt']);
  let worst = 0;
  for (const [name, e] of gguf.entries) {
    const d = dat.entries.get(name)!;
    assert.equal(d.columns, e.columns, name);
    assert.equal(e.matrices, 1);
    for (let j = 0; j < e.columns; j++) {
      assert.ok(e.weights[j] > 0, `${name}[${j}] positive`);
      worst = Math.max(worst, Math.abs(e.weights[j] - d.weights[j]) / e.weights[j]);
    }
  }
  // .dat stores (Σx²/count)·ncall in f32 and we divide by ncall again: a rounding or two apart.
  assert.ok(worst < 1e-6, `largest relative difference ${worst}`);

  const hf = join(models, 'stories260K/hf/model.safetensors');
  const model = await openModel(hf);
  let mapped = 0;
  for (const tensor of model.tensors) {
    if (tensor.shape.length !== 2 || /embed|lm_head/.test(tensor.name)) continue;
    const e = importanceFor(gguf, tensor.name);
    assert.ok(e, `${tensor.name} has an entry`);
    assert.equal(e.columns, tensor.shape[1], `${tensor.name}: one weight per input column`);
    assert.equal(importanceFor(dat, tensor.name)?.name, e.name);
    mapped++;
  }
  assert.equal(mapped, 35);
  assert.equal(importanceFor(gguf, 'model.layers.3.mlp.down_proj.weight')?.name, 'blk.3.ffn_down.weight');
});

function dat(parts: Array<number | string | Float32Array>): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    if (typeof p === 'number') chunks.push(new Uint8Array(new Int32Array([p]).buffer));
    else if (typeof p === 'string') chunks.push(new TextEncoder().encode(p));
    else chunks.push(new Uint8Array(p.buffer));
  }
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

test('imatrix .dat: built files read; malformed ones refused with typed errors', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'quantlens-imatrix-'));
  const write = (name: string, bytes: Uint8Array) => {
    const p = join(tmp, name);
    writeFileSync(p, bytes);
    return p;
  };
  const ok = await readImportanceMatrix(write('ok.dat', dat([1, 3, 'a.w', 4, 2, new Float32Array([8, 2])])));
  assert.deepEqual([...ok.entries.get('a.w')!.weights], [2, 0.5]);
  assert.equal(ok.chunkCount, null, 'no trailer');
  const cases: Array<[string, Uint8Array, string]> = [
    ['empty', dat([0]), 'INVALID_HEADER'],
    ['too many', dat([1 << 30]), 'LIMIT_EXCEEDED'],
    ['name too long', dat([1, 1 << 30]), 'INVALID_HEADER'],
    ['name past end', dat([1, 50, 'abc']), 'TRUNCATED'],
    ['values past end', dat([1, 3, 'a.w', 1, 1000, new Float32Array([1])]), 'TRUNCATED'],
    ['negative count', dat([1, 3, 'a.w', 1, -5]), 'INVALID_HEADER'],
    ['duplicate', dat([2, 1, 'a', 1, 1, new Float32Array([1]), 1, 'a', 1, 1, new Float32Array([1])]), 'DUPLICATE_NAME'],
    ['truncated count', new Uint8Array([1, 0]), 'TRUNCATED'],
  ];
  for (const [label, bytes, code] of cases) {
    await assert.rejects(readImportanceMatrix(write(`${label}.dat`, bytes)), (e: unknown) => e instanceof QuantLensError && e.code === code, label);
  }
});
