/** Every checkpoint in ../shared/models opens, in core and through the CLI, and every stories260K copy holds the same numbers. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { compareModels } from '../../src/core/compare';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';

const root = resolve(__dirname, '../..');
const models = resolve(root, '../shared/models');
const skip = !existsSync(models) && 'no ../shared/models';
const CHECKPOINT = /\.(safetensors|gguf|onnx|pt|pth|jit)$|^pytorch_model\.bin$/;

function checkpoints(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...checkpoints(p));
    else if (CHECKPOINT.test(name)) out.push(p);
  }
  return out.sort();
}

test('every checkpoint in ../shared/models opens, with tensors inside their files', { skip }, async () => {
  const all = checkpoints(models);
  assert.ok(all.length >= 39, `found ${all.length}`);
  for (const path of all) {
    const m = await openModel(path);
    for (const t of m.tensors) {
      assert.ok(t.byteOffset + t.byteLength <= statSync(t.file).size, `${path}: ${t.name}`);
    }
    if (!path.includes('vocab-only')) assert.ok(m.tensors.length > 0, path);
  }
});

test('the CLI inspects every format with the documented JSON and exit codes', { skip }, () => {
  const cli = join(root, 'dist/cli.js');
  const files = [
    'stories260K/hf/model.safetensors',
    'stories260K/hf-sharded',
    'stories260K/stories260K-Q4_K_M.gguf',
    'stories260K/gguf-split/stories260K-f32-00001-of-00003.gguf',
    'onnx/ch_ppocr_mobile_v2.0_cls_infer.onnx',
    'stories260K/stories260K-legacy.pt',
    'silero-vad/silero_vad.jit',
    'gguf-vocab-only/ggml-vocab-llama-spm.gguf',
  ];
  for (const f of files) {
    const r = spawnSync(process.execPath, [cli, 'inspect', join(models, f), '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 });
    assert.equal(r.status, 0, `${f}: ${r.stderr}`);
    const j = JSON.parse(r.stdout);
    for (const key of ['format', 'files', 'metadata', 'tensors', 'totals', 'diagnostics']) assert.ok(key in j, `${f}: ${key}`);
    for (const t of j.tensors) for (const key of ['name', 'dtype', 'shape', 'file', 'byteOffset', 'byteLength', 'layer', 'role']) assert.ok(key in t, `${f}: tensor ${key}`);
    for (const key of ['tensors', 'params', 'bytes', 'bitsPerWeight', 'byDtype']) assert.ok(key in j.totals, `${f}: totals.${key}`);
  }
  const vocab = JSON.parse(spawnSync(process.execPath, [cli, 'inspect', join(models, 'gguf-vocab-only/ggml-vocab-llama-spm.gguf'), '--json'], { encoding: 'utf8' }).stdout);
  const tokens = vocab.metadata['tokenizer.ggml.tokens'];
  assert.equal(tokens.length > 64 ? 'folded' : 'full', 'folded');
  assert.equal(tokens.head.length, 16);
  const bad = spawnSync(process.execPath, [cli, 'inspect', join(models, 'README.md')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^error\[UNKNOWN_FORMAT\]/);
  assert.equal(spawnSync(process.execPath, [cli, 'inspect'], { encoding: 'utf8' }).status, 1);
});

test('all stories260K copies give the same tensors and values through the name map', { skip }, async () => {
  const s = join(models, 'stories260K');
  const reference = await openModel(join(s, 'hf/model.safetensors'));
  const exact = ['hf-sharded', 'hf/pytorch_model.bin', 'stories260K-f32.gguf', 'gguf-split/stories260K-f32-00001-of-00003.gguf', 'stories260K.pt', 'stories260K-legacy.pt', 'stories260K-ckpt-nested.pt'];
  for (const f of exact) {
    const { summary, tensors } = await compareModels(reference, await openModel(join(s, f)), nodeFileAccess);
    assert.equal(summary.matched, 47, f);
    for (const t of tensors) assert.equal(t.sqnrDb, null, `${f}: ${t.name} differs`);
  }
  // Half-precision copies: the F32 values rounded once (SQNR of an 8- or 11-bit mantissa).
  for (const [f, minDb] of [['hf-bf16', 45], ['hf-f16', 65]] as const) {
    const { tensors } = await compareModels(reference, await openModel(join(s, f)), nodeFileAccess);
    for (const t of tensors) assert.ok(t.sqnrDb === null || t.sqnrDb > minDb, `${f}: ${t.name} ${t.sqnrDb}`);
  }
});
