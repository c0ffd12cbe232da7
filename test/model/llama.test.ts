import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { LlamaModel } from '../../src/core/model/llama';
import { applyRope, causalAttention, rmsNorm, ropeTables } from '../../src/core/model/ops';
import { intMatmul, quantizeQ8, unpackIntWeight } from '../../src/core/model/vec-dot';
import { dequantizeBlocks } from '../../src/core/quant/dequant';
import { quantizeRows } from '../../src/core/quant/ggml-quantize';
import { safetensorsBytes } from '../fixtures/safetensors-builder';

const stories = resolve(__dirname, '../../../shared/models/stories260K');

function close(a: number, b: number, tol: number, what: string): void {
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
}

test('RMSNorm, rotary pairs and causal attention on hand-computed values', () => {
  const out = new Float32Array(2);
  rmsNorm(Float32Array.of(3, 4), 1, 2, Float32Array.of(1, 2), 0, out);
  // rms = sqrt((9 + 16) / 2) = 3.5355…
  close(out[0], 3 / Math.sqrt(12.5), 1e-6, 'x0');
  close(out[1], (2 * 4) / Math.sqrt(12.5), 1e-6, 'x1');

  const tables = ropeTables(2, 4, 10000);
  const x = Float32Array.of(1, 0, 1, 0, /* pos 1 */ 1, 0, 1, 0);
  applyRope(x, 2, 1, 4, 4, tables);
  assert.deepEqual(Array.from(x.subarray(0, 4)), [1, 0, 1, 0], 'position 0 does not rotate');
  close(x[4], Math.cos(1), 1e-6, 'pair 0 at position 1 turns by 1 rad');
  close(x[5], Math.sin(1), 1e-6, 'pair 0 sin');
  close(x[6], Math.cos(0.01), 1e-6, 'pair 1 turns by 10000^(-1/2) rad');

  // Two positions, one head of size 1: the first row sees only itself; the second mixes both by softmax.
  const q = Float32Array.of(1, 2);
  const k = Float32Array.of(1, 1);
  const v = Float32Array.of(10, 20);
  const o = new Float32Array(2);
  causalAttention(q, k, v, 2, 1, 1, 1, o);
  close(o[0], 10, 1e-6, 'row 0');
  close(o[1], 15, 1e-6, 'row 1: equal scores, mean of the values');
});

test('llama.cpp-compatible products: integer block dots equal the dequantized float product', () => {
  const rows = 3;
  const cols = 64;
  const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
  const x = Float32Array.from({ length: 2 * cols }, (_, i) => Math.cos(i * 0.11) * 3);
  for (const type of ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0'] as const) {
    const bytes = quantizeRows(type, w, rows, cols);
    const iw = unpackIntWeight(type, bytes, rows, cols);
    const deq = new Float32Array(rows * cols);
    dequantizeBlocks(type, bytes, deq);
    const out = new Float32Array(2 * rows);
    intMatmul(x, 2, iw, out);
    for (let t = 0; t < 2; t++) {
      const a = quantizeQ8(x, t * cols, cols, type === 'Q4_1' || type === 'Q5_1');
      for (let r = 0; r < rows; r++) {
        let ref = 0;
        for (let c = 0; c < cols; c++) ref += deq[r * cols + c] * a.qs[c] * a.d[c >> 5];
        // Q8_1 keeps d·Σq as f16: the minimum's term uses that rounded sum, as ggml's dot does.
        if (a.s) for (let b = 0; b < cols / 32; b++) ref += iw.m![r * (cols / 32) + b] * (a.s[b] - a.d[b] * a.qs.subarray(b * 32, b * 32 + 32).reduce((p, q) => p + q, 0));
        close(out[t * rows + r], ref, 1e-4, `${type} row ${r}`);
      }
    }
  }
  // Q8_0 activation rounding: amax 127 → d = 1, integers kept.
  const a = quantizeQ8(Float32Array.from({ length: 32 }, (_, i) => (i === 0 ? 127 : i - 16)), 0, 32, true);
  assert.equal(a.d[0], 1);
  assert.equal(a.qs[5], -11);
  assert.equal(a.s![0], 127, 'Σq = 127 + Σ(i − 16) for i = 1…31 = 127');
});

/** A one-layer Llama in Meta order, and its HF safetensors copy with q/k rows rotary-permuted. */
function tinyModel(dir: string): { meta: Record<string, Float32Array>; tokens: Int32Array } {
  const dim = 8;
  const heads = 2;
  const kvHeads = 1;
  const hd = 4;
  const ffn = 12;
  const vocab = 10;
  let seed = 7;
  const rnd = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.8);
  const meta: Record<string, Float32Array> = {
    embed: rnd(vocab * dim), wq: rnd(heads * hd * dim), wk: rnd(kvHeads * hd * dim), wv: rnd(kvHeads * hd * dim),
    wo: rnd(dim * heads * hd), w1: rnd(ffn * dim), w3: rnd(ffn * dim), w2: rnd(dim * ffn),
    an: Float32Array.from(rnd(dim), (v) => 1 + v), fn: Float32Array.from(rnd(dim), (v) => 1 + v), norm: Float32Array.from(rnd(dim), (v) => 1 + v), out: rnd(vocab * dim),
  };
  // HF permute: Meta row h·hd + 2i + j sits at HF row h·hd + j·hd/2 + i.
  const toHf = (w: Float32Array, nh: number) => {
    const out = new Float32Array(w.length);
    for (let h = 0; h < nh; h++) for (let i = 0; i < hd / 2; i++) for (let j = 0; j < 2; j++) {
      out.set(w.subarray((h * hd + 2 * i + j) * dim, (h * hd + 2 * i + j + 1) * dim), (h * hd + j * (hd / 2) + i) * dim);
    }
    return out;
  };
  const f = (name: string, shape: number[], v: Float32Array) => ({ name, dtype: 'F32', shape, data: new Uint8Array(v.buffer.slice(0)) });
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes([
    f('model.embed_tokens.weight', [vocab, dim], meta.embed),
    f('model.layers.0.self_attn.q_proj.weight', [heads * hd, dim], toHf(meta.wq, heads)),
    f('model.layers.0.self_attn.k_proj.weight', [kvHeads * hd, dim], toHf(meta.wk, kvHeads)),
    f('model.layers.0.self_attn.v_proj.weight', [kvHeads * hd, dim], meta.wv),
    f('model.layers.0.self_attn.o_proj.weight', [dim, heads * hd], meta.wo),
    f('model.layers.0.mlp.gate_proj.weight', [ffn, dim], meta.w1),
    f('model.layers.0.mlp.up_proj.weight', [ffn, dim], meta.w3),
    f('model.layers.0.mlp.down_proj.weight', [dim, ffn], meta.w2),
    f('model.layers.0.input_layernorm.weight', [dim], meta.an),
    f('model.layers.0.post_attention_layernorm.weight', [dim], meta.fn),
    f('model.norm.weight', [dim], meta.norm),
    f('lm_head.weight', [vocab, dim], meta.out),
  ]));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    hidden_size: dim, intermediate_size: ffn, num_hidden_layers: 1, num_attention_heads: heads, num_key_value_heads: kvHeads,
    rms_norm_eps: 1e-5, rope_theta: 10000, vocab_size: vocab,
  }));
  return { meta, tokens: Int32Array.of(1, 4, 7, 2, 9) };
}

/** The same network written out in f64 with Meta-order weights, independently of src/core/model. */
function referenceLogits(m: Record<string, Float32Array>, tokens: Int32Array): Float64Array {
  const dim = 8, heads = 2, hd = 4, ffn = 12, vocab = 10, n = tokens.length;
  const mv = (w: Float32Array, x: number[], rows: number, cols: number) => Array.from({ length: rows }, (_, r) => x.reduce((s, xi, c) => s + w[r * cols + c] * xi, 0));
  const norm = (x: number[], g: Float32Array) => {
    const rms = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + 1e-5);
    return x.map((v, i) => (v / rms) * g[i]);
  };
  const rope = (v: number[], pos: number) => {
    const out = v.slice();
    for (let h = 0; h < v.length / hd; h++) for (let i = 0; i < hd / 2; i++) {
      const th = pos * Math.pow(10000, (-2 * i) / hd);
      const [a, b] = [v[h * hd + 2 * i], v[h * hd + 2 * i + 1]];
      out[h * hd + 2 * i] = a * Math.cos(th) - b * Math.sin(th);
      out[h * hd + 2 * i + 1] = a * Math.sin(th) + b * Math.cos(th);
    }
    return out;
  };
  const xs = Array.from(tokens, (t) => Array.from(m.embed.subarray(t * dim, (t + 1) * dim)));
  const ks: number[][] = [];
  const vs: number[][] = [];
  const qs: number[][] = [];
  xs.forEach((x, p) => {
    const h = norm(x, m.an);
    qs.push(rope(mv(m.wq, h, heads * hd, dim), p));
    ks.push(rope(mv(m.wk, h, hd, dim), p));
    vs.push(mv(m.wv, h, hd, dim));
  });
  const out = new Float64Array(n * vocab);
  xs.forEach((x, p) => {
    const att: number[] = [];
    for (let h = 0; h < heads; h++) {
      const sc = ks.slice(0, p + 1).map((k) => k.reduce((s, kv, i) => s + kv * qs[p][h * hd + i], 0) / Math.sqrt(hd));
      const mx = Math.max(...sc);
      const e = sc.map((s) => Math.exp(s - mx));
      const z = e.reduce((a, b) => a + b, 0);
      for (let i = 0; i < hd; i++) att.push(e.reduce((s, w, j) => s + (w / z) * vs[j][i], 0));
    }
    const x1 = x.map((v, i) => v + mv(m.wo, att, dim, heads * hd)[i]);
    const h2 = norm(x1, m.fn);
    const g = mv(m.w1, h2, ffn, dim);
    const u = mv(m.w3, h2, ffn, dim);
    const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
    const x2 = x1.map((v, i) => v + mv(m.w2, a, dim, ffn)[i]);
    out.set(mv(m.out, norm(x2, m.norm), vocab, dim), p * vocab);
  });
  return out;
}

test('forward pass of a one-layer HF checkpoint equals an independent f64 reference (q/k permutation undone)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-llama-'));
  try {
    const { meta, tokens } = tinyModel(dir);
    const model = await LlamaModel.load(dir);
    assert.equal(model.config.heads, 2);
    assert.equal(model.config.kvHeads, 1);
    const logits = await model.forward(tokens);
    const ref = referenceLogits(meta, tokens);
    for (let i = 0; i < ref.length; i++) close(logits[i], ref[i], 1e-5, `logit ${i}`);
    const tail = await model.forward(tokens, { logitsFrom: 3 });
    assert.deepEqual(tail, logits.subarray(3 * 10));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stories260K: the same logits from safetensors, sharded safetensors, pytorch_model.bin, GGUF (two converters) and .pt', { skip: !existsSync(stories) && 'no ../shared/models' }, async () => {
  const ref = await LlamaModel.load(resolve(stories, 'stories260K-f32.gguf'));
  const tokens = ref.tokenizer!.encode(readFileSync(resolve(stories, 'imatrix/calibration.txt')).subarray(0, 200));
  const want = await ref.forward(tokens);
  for (const p of ['hf', 'hf-sharded', 'hf/pytorch_model.bin', 'stories260K-hfconv-f32.gguf', 'stories260K-ckpt-nested.pt']) {
    const m = await LlamaModel.load(resolve(stories, p));
    assert.deepEqual(m.config, { ...ref.config, contextLength: m.config.contextLength }, p);
    assert.deepEqual(await m.forward(tokens), want, p);
  }
  // A bare llama2.c state dict does not say its head count: a typed error, and the override works.
  await assert.rejects(LlamaModel.load(resolve(stories, 'stories260K.pt')), (e: Error & { code?: string }) => e.code === 'USAGE');
  const bare = await LlamaModel.load(resolve(stories, 'stories260K.pt'), { config: { heads: 8, kvHeads: 4 } });
  assert.deepEqual(await bare.forward(tokens), want);
});
