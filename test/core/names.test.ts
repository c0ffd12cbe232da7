import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeTensor, detectScheme, hfRowToMetaRow, invertRowMap, isQuantCompanion, permuteRows, renameTensor } from '../../src/core/names';

test('the three Llama naming schemes map to the same layer, role and llama.cpp name', () => {
  const same = [
    ['model.layers.2.mlp.down_proj.weight', 'blk.2.ffn_down.weight', 'layers.2.feed_forward.w2.weight'],
    ['model.layers.0.self_attn.q_proj.weight', 'blk.0.attn_q.weight', 'layers.0.attention.wq.weight'],
    ['model.layers.4.self_attn.o_proj.weight', 'blk.4.attn_output.weight', 'layers.4.attention.wo.weight'],
    ['model.layers.1.mlp.gate_proj.weight', 'blk.1.ffn_gate.weight', 'layers.1.feed_forward.w1.weight'],
    ['model.layers.1.mlp.up_proj.weight', 'blk.1.ffn_up.weight', 'layers.1.feed_forward.w3.weight'],
    ['model.layers.3.input_layernorm.weight', 'blk.3.attn_norm.weight', 'layers.3.attention_norm.weight'],
    ['model.layers.3.post_attention_layernorm.weight', 'blk.3.ffn_norm.weight', 'layers.3.ffn_norm.weight'],
    ['model.embed_tokens.weight', 'token_embd.weight', 'tok_embeddings.weight'],
    ['model.norm.weight', 'output_norm.weight', 'norm.weight'],
    ['lm_head.weight', 'output.weight', 'output.weight'],
  ];
  for (const [hf, gguf, meta] of same) {
    const a = describeTensor(hf);
    const b = describeTensor(gguf);
    const c = describeTensor(meta);
    assert.equal(a.canonical, gguf, hf);
    assert.equal(b.canonical, gguf, gguf);
    assert.equal(c.canonical, gguf, meta);
    assert.equal(a.role, b.role);
    assert.equal(a.role, c.role);
    assert.equal(a.layer, c.layer);
    assert.equal(renameTensor(gguf, 'hf'), hf);
    assert.equal(renameTensor(hf, 'meta'), meta);
    assert.equal(renameTensor(meta, 'gguf'), gguf);
  }
  assert.deepEqual(
    { layer: describeTensor('blk.2.ffn_down.weight').layer, role: describeTensor('blk.2.ffn_down.weight').role },
    { layer: 2, role: 'ffn_down' },
  );
});

test('ffn_norm is not mistaken for the final norm, and prefixes are kept apart', () => {
  assert.equal(describeTensor('layers.0.ffn_norm.weight').canonical, 'blk.0.ffn_norm.weight');
  assert.equal(describeTensor('output_norm.weight').canonical, 'output_norm.weight');
  const nested = describeTensor('model.layers.1.attention.wk.weight');
  assert.equal(nested.scheme, 'meta');
  assert.equal(nested.prefix, 'model.');
  assert.equal(nested.canonical, 'blk.1.attn_k.weight');
});

test('quantized companions keep their weight\'s layer and role', () => {
  for (const n of ['model.layers.5.mlp.down_proj.weight_scale', 'model.layers.5.mlp.down_proj.qweight', 'model.layers.5.mlp.down_proj.weight.absmax']) {
    assert.equal(describeTensor(n).layer, 5, n);
    assert.equal(describeTensor(n).role, 'ffn_down', n);
  }
  assert.equal(isQuantCompanion('model.layers.5.mlp.down_proj.weight_scale'), true);
  assert.equal(isQuantCompanion('model.layers.5.mlp.down_proj.weight'), false);
});

test('models outside the map get a layer from their structure and a role by heuristics', () => {
  assert.deepEqual(
    [describeTensor('transformer.h.7.attn.c_proj.weight').layer, describeTensor('transformer.h.7.attn.c_proj.weight').role],
    [7, 'attn_o'],
  );
  assert.equal(describeTensor('bert.encoder.layer.3.attention.self.query.weight').role, 'attn_q');
  assert.equal(describeTensor('bert.encoder.layer.3.attention.self.query.weight').layer, 3);
  assert.equal(describeTensor('conv1.weight').role, 'other');
  assert.equal(describeTensor('conv1.weight').layer, null);
});

test('scheme detection votes over layered tensors', () => {
  assert.equal(detectScheme(['model.embed_tokens.weight', 'model.layers.0.self_attn.q_proj.weight']), 'hf');
  assert.equal(detectScheme(['token_embd.weight', 'blk.0.attn_q.weight']), 'gguf');
  assert.equal(detectScheme(['tok_embeddings.weight', 'layers.0.attention.wq.weight']), 'meta');
  assert.equal(detectScheme(['conv.weight']), null);
});

test('rotary row permutation: HF groups pair halves, Meta interleaves them', () => {
  // 2 heads of dim 4: Meta rows per head (a0 b0 a1 b1) become HF (a0 a1 b0 b1).
  assert.deepEqual([...hfRowToMetaRow(8, 2)], [0, 2, 1, 3, 4, 6, 5, 7]);
  const map = hfRowToMetaRow(64, 8);
  const inv = invertRowMap(map);
  for (let r = 0; r < 64; r++) assert.equal(inv[map[r]], r);
  const meta = Float32Array.from({ length: 8 * 3 }, (_, i) => i);
  const hf = permuteRows(meta, 8, 3, hfRowToMetaRow(8, 2));
  assert.deepEqual([...hf.subarray(3, 6)], [6, 7, 8]);
  assert.deepEqual([...permuteRows(hf, 8, 3, invertRowMap(hfRowToMetaRow(8, 2)))], [...meta]);
  assert.throws(() => hfRowToMetaRow(6, 2));
});
