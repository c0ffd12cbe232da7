import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { PassThrough } from 'node:stream';
import { quantizeCommand } from '../../src/cli/commands/quantize';
import { convertToGguf } from '../../src/core/model/convert';
import { LlamaModel } from '../../src/core/model/llama';
import { openModel } from '../../src/core/readers';
import { readTensorBytes } from '../../src/core/tensordata';
import { nodeFileAccess } from '../../src/core/readers/node-files';

const stories = resolve(__dirname, '../../../shared/models/stories260K');

test('stories260K hf/ → GGUF F32: the tensors, hyper-parameters and token ids of llama.cpp\'s converter, and the same logits', { skip: !existsSync(stories) && 'no ../shared/models' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-convert-'));
  try {
    const out = join(dir, 'stories.gguf');
    await convertToGguf(resolve(stories, 'hf'), out, { type: 'F32' });
    const mine = await openModel(out);
    const ref = await openModel(resolve(stories, 'stories260K-hfconv-f32.gguf'));
    const byName = new Map(mine.tensors.map((t) => [t.name, t]));
    assert.equal(mine.tensors.length, ref.tensors.length);
    for (const t of ref.tensors) {
      const m = byName.get(t.name);
      assert.ok(m, `missing ${t.name}`);
      assert.deepEqual([m.dtype, m.shape], [t.dtype, t.shape], t.name);
      assert.deepEqual(await readTensorBytes(mine, m, nodeFileAccess), await readTensorBytes(ref, t, nodeFileAccess), t.name);
    }
    for (const key of ['llama.block_count', 'llama.embedding_length', 'llama.feed_forward_length', 'llama.attention.head_count', 'llama.attention.head_count_kv',
      'llama.rope.freq_base', 'llama.attention.layer_norm_rms_epsilon', 'llama.rope.dimension_count', 'llama.context_length', 'llama.vocab_size',
      'tokenizer.ggml.model', 'tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id', 'general.file_type']) {
      assert.deepEqual(mine.metadata[key], ref.metadata[key], key);
    }
    const a = await LlamaModel.load(out);
    const b = await LlamaModel.load(resolve(stories, 'stories260K-hfconv-f32.gguf'));
    const text = readFileSync(resolve(stories, 'imatrix/calibration.txt'));
    const ids = a.tokenizer!.encode(text);
    assert.deepEqual(ids, b.tokenizer!.encode(text));
    const few = ids.subarray(0, 100);
    assert.deepEqual(await a.forward(few), await b.forward(few));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quantlens quantize <hf-folder> --type Q8_0 converts first: llama.cpp names and tokenizer, no temporary left', { skip: !existsSync(stories) && 'no ../shared/models' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-convert-cli-'));
  try {
    const out = join(dir, 'stories-Q8_0.gguf');
    await quantizeCommand({ args: [resolve(stories, 'hf'), '-o', out, '--type', 'Q8_0'], stdout: new PassThrough(), stderr: new PassThrough(), signal: new AbortController().signal });
    assert.deepEqual(readdirSync(dir), ['stories-Q8_0.gguf']);
    const m = await openModel(out);
    assert.equal(m.metadata['general.architecture']?.value, 'llama');
    assert.ok(m.tensors.some((t) => t.name === 'blk.0.attn_q.weight' && t.dtype === 'Q8_0'));
    const model = await LlamaModel.load(out);
    assert.equal(model.tokenizer!.encode('Once upon a time').length, 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
