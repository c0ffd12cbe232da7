import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compressedTensorsConfig, anchoredPatterns, escapeRegex, llamaQuantizeRecipe, planToJson } from '../../src/core/plan/export';
import { parsePin, parseSize, planMixedPrecision, type PlanTensor } from '../../src/core/plan/plan';
import { formatBytes, quantFormat, type QuantTarget } from '../../src/core/sensitivity/formats';
import { QuantLensError } from '../../src/core/errors';

const GGUF_TYPES = ['Q8_0', 'Q6_K', 'Q5_K', 'Q4_K', 'Q3_K', 'Q2_K'];
const BITS: Record<string, number> = { Q8_0: 8.5, Q6_K: 6.5625, Q5_K: 5.5, Q4_K: 4.5, Q3_K: 3.4375, Q2_K: 2.625 };

/** A Llama-shaped model under Hugging Face names with errors ~ 2^-bits, some tensors more sensitive. */
function llamaTensors(target: QuantTarget, types: string[], layers = 3): PlanTensor[] {
  const t: PlanTensor[] = [];
  const add = (name: string, shape: number[], sensitivity: number) => {
    const params = shape.reduce((a, b) => a * b, 1);
    const candidates =
      shape.length < 2
        ? []
        : types.map((ty) => {
            const f = quantFormat(ty, target);
            const bytes = formatBytes(f, shape[0], shape[1]);
            return { format: ty, bytes, error: (params * sensitivity * 2 ** (-2 * ((bytes * 8) / params))) / 1e6 };
          });
    t.push({ name, params, shape, dtype: 'BF16', keptBytes: params * 2, candidates });
  };
  add('model.embed_tokens.weight', [1024, 256], 0.5);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [256], 0);
    add(`${p}.self_attn.q_proj.weight`, [256, 256], 1);
    add(`${p}.self_attn.k_proj.weight`, [128, 256], 1);
    add(`${p}.self_attn.v_proj.weight`, [128, 256], 4);
    add(`${p}.self_attn.o_proj.weight`, [256, 256], 1);
    add(`${p}.mlp.gate_proj.weight`, [512, 256], 1);
    add(`${p}.mlp.up_proj.weight`, [512, 256], 1);
    add(`${p}.mlp.down_proj.weight`, [256, 512], l === 0 ? 20 : 2);
  }
  add('model.norm.weight', [256], 0);
  add('lm_head.weight', [1024, 256], 3);
  return t;
}

test('plan: budget in bits per weight is met and counts kept tensors; frontier monotone; uniform points', () => {
  const tensors = llamaTensors('gguf', GGUF_TYPES);
  const params = tensors.reduce((s, t) => s + t.params, 0);
  for (const bpw of [2.7, 3.5, 4.5, 5.0, 6.0, 8.5]) {
    const plan = planMixedPrecision(tensors, 'gguf', 'weights', { budget: { kind: 'bitsPerWeight', value: bpw } });
    assert.ok(plan.bitsPerWeight <= bpw + 1e-12, `${plan.bitsPerWeight} > ${bpw}`);
    assert.equal(plan.bytes, tensors.reduce((s, t) => s + (plan.assignment[t.name] ? formatBytes(quantFormat(plan.assignment[t.name], 'gguf'), t.shape[0], t.shape[1]) : t.keptBytes), 0));
    assert.equal(plan.bitsPerWeight, (plan.bytes * 8) / params);
    // Norms are kept at their BF16 size.
    assert.equal(plan.kept['model.norm.weight'], 'BF16');
    assert.ok(plan.gap >= 0 && plan.lowerBound <= plan.estimatedError);
    // The plan is never worse than the frontier point at or below its size.
    const below = plan.frontier.filter((f) => f.bytes <= plan.budget.bytes);
    if (below.length) assert.ok(plan.estimatedError <= below[below.length - 1].error + 1e-15);
  }
  const plan = planMixedPrecision(tensors, 'gguf', 'weights', { budget: { kind: 'bitsPerWeight', value: 4.6 } });
  for (let i = 1; i < plan.frontier.length; i++) {
    assert.ok(plan.frontier[i].bitsPerWeight > plan.frontier[i - 1].bitsPerWeight);
    assert.ok(plan.frontier[i].error <= plan.frontier[i - 1].error);
  }
  assert.deepEqual(plan.uniform.map((u) => u.format), ['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_0']);
  // Mixed precision beats uniform Q4_K at no more bytes (the sensitive tensors get more bits).
  const q4 = plan.uniform.find((u) => u.format === 'Q4_K')!;
  const mixed = planMixedPrecision(tensors, 'gguf', 'weights', { budget: { kind: 'bytes', value: q4.bytes } });
  assert.ok(mixed.estimatedError < q4.error, `mixed ${mixed.estimatedError} vs uniform ${q4.error}`);
  assert.ok(mixed.bytes <= q4.bytes);
  assert.ok(BITS[mixed.assignment['model.layers.0.mlp.down_proj.weight']] > 4.5, 'the most sensitive tensor gets more than 4.5 bits');
});

test('plan: pins (exact and minimum), exclusions, output/embedding rules, infeasible budgets', () => {
  const tensors = llamaTensors('gguf', GGUF_TYPES);
  const plan = planMixedPrecision(tensors, 'gguf', 'weights', {
    budget: { kind: 'bitsPerWeight', value: 6.0 },
    pins: [parsePin('attn_v=Q8_0'), parsePin('ffn_down>=Q5_K')],
    exclude: ['^model\\.embed_tokens\\.weight$'],
    output: { format: 'Q6_K', atLeast: false },
  });
  for (let l = 0; l < 3; l++) {
    assert.equal(plan.assignment[`model.layers.${l}.self_attn.v_proj.weight`], 'Q8_0', 'pin matched through the llama.cpp name');
    assert.ok(BITS[plan.assignment[`model.layers.${l}.mlp.down_proj.weight`]] >= 5.5);
  }
  assert.equal(plan.assignment['lm_head.weight'], 'Q6_K');
  assert.equal(plan.kept['model.embed_tokens.weight'], 'BF16');
  assert.ok(plan.bitsPerWeight <= 6.0);
  assert.throws(
    () => planMixedPrecision(tensors, 'gguf', 'weights', { budget: { kind: 'bitsPerWeight', value: 1.0 } }),
    (e: unknown) => e instanceof QuantLensError && e.code === 'USAGE' && /below the smallest plan/.test(e.message),
  );
  assert.throws(() => parsePin('no-type'), QuantLensError);
  assert.deepEqual(parsePin('blk\\.0\\..*>=Q6_K'), { pattern: 'blk\\.0\\..*', format: 'Q6_K', atLeast: true });
  assert.equal(parseSize('1.5GB'), 1.5e9);
  assert.equal(parseSize('2GiB'), 2 * 2 ** 30);
  assert.equal(parseSize('800 MB'), 8e8);
  assert.throws(() => parseSize('lots'), QuantLensError);
});

test('llama-quantize recipe: anchored escaped patterns cover every planned tensor, output/embedding flags, type file', () => {
  const tensors = llamaTensors('gguf', GGUF_TYPES);
  const plan = planMixedPrecision(tensors, 'gguf', 'weights', { budget: { kind: 'bitsPerWeight', value: 4.8 }, exclude: ['layers\\.2\\.mlp\\.up_proj'] });
  const r = llamaQuantizeRecipe(plan, { input: 'in.gguf', output: 'out.gguf', imatrix: 'imatrix.gguf' });
  const lines = r.tensorTypeFile.trimEnd().split('\n');
  assert.ok(lines.every((l) => /^\^.*\$=[A-Z0-9_]+$/.test(l)), 'one anchored regex=type per line');
  assert.ok(!r.tensorTypeFile.includes('#'));
  const patterns = lines.map((l) => {
    const eq = l.lastIndexOf('=');
    return { re: new RegExp(l.slice(0, eq)), type: l.slice(eq + 1) };
  });
  // Every planned block tensor matches exactly one pattern, with its planned type.
  const ggufOf = (n: string) => n.replace(/^model\.layers\.(\d+)\./, 'blk.$1.').replace('self_attn.q_proj', 'attn_q').replace('self_attn.k_proj', 'attn_k')
    .replace('self_attn.v_proj', 'attn_v').replace('self_attn.o_proj', 'attn_output').replace('mlp.gate_proj', 'ffn_gate').replace('mlp.up_proj', 'ffn_up').replace('mlp.down_proj', 'ffn_down');
  for (const t of plan.tensors.filter((x) => x.name.startsWith('model.layers.') && x.shape.length === 2)) {
    const hits = patterns.filter((p) => p.re.test(ggufOf(t.name)));
    assert.equal(hits.length, 1, `${t.name}: ${hits.length} patterns`);
    assert.equal(hits[0].type, t.format ?? plan.kept[t.name], t.name);
  }
  assert.ok(!patterns.some((p) => p.re.test('blk.1.attn_norm.weight')), 'norms never pinned');
  assert.ok(!patterns.some((p) => p.re.test('blk.10.attn_q.weight')), 'anchored: layer 1 does not match layer 10');
  const at = (flag: string) => r.args[r.args.indexOf(flag) + 1];
  assert.equal(at('--output-tensor-type'), plan.assignment['lm_head.weight']);
  assert.equal(at('--token-embedding-type'), plan.assignment['model.embed_tokens.weight']);
  assert.equal(at('--imatrix'), 'imatrix.gguf');
  assert.equal(r.args.filter((a) => a === '--tensor-type').length, lines.length);
  assert.deepEqual(r.argsWithFile.slice(-2), ['--tensor-type-file', '<file>']);
  assert.match(r.command, /^llama-quantize .* in\.gguf out\.gguf (Q\d_K_M|Q\d_K|Q8_0|Q6_K|Q2_K)$/);
  assert.equal(escapeRegex('a.b(c)[d]+*?^$|{}\\'), 'a\\.b\\(c\\)\\[d\\]\\+\\*\\?\\^\\$\\|\\{\\}\\\\');
  assert.deepEqual(anchoredPatterns(['blk.0.ffn_down.weight', 'blk.12.ffn_down.weight', 'output.weight']), [
    '^output\\.weight$',
    '^blk\\.(?:0|12)\\.ffn_down\\.weight$',
  ]);
  const json = planToJson(plan);
  for (const k of ['budget', 'assignment', 'bitsPerWeight', 'bytes', 'estimatedError', 'gap', 'frontier']) assert.ok(k in json, k);
  assert.deepEqual(Object.keys((json.frontier as object[])[0]), ['bitsPerWeight', 'error']);
});

test('compressed-tensors config: one group per scheme, module-name re: targets, ignore', () => {
  const types = ['int8-ch-sym', 'int4-g128-sym', 'int4-g128-asym', 'fp8-e4m3-ch'];
  const tensors = llamaTensors('safetensors', types);
  const plan = planMixedPrecision(tensors, 'safetensors', 'weights', { budget: { kind: 'bitsPerWeight', value: 8 }, exclude: ['lm_head'] });
  assert.equal(plan.kept['model.embed_tokens.weight'], 'BF16', 'compressed-tensors quantizes Linear layers only');
  const cfg = compressedTensorsConfig(plan) as { config_groups: Record<string, { targets: string[]; weights: Record<string, unknown>; format: string }>; ignore: string[]; quant_method: string; format: string };
  assert.equal(cfg.quant_method, 'compressed-tensors');
  assert.deepEqual(cfg.ignore, ['lm_head']);
  const covered = new Map<string, string>();
  for (const g of Object.values(cfg.config_groups)) {
    for (const target of g.targets) {
      assert.match(target, /^re:\^.*\$$/);
      const re = new RegExp(target.slice(3));
      for (const name of Object.keys(plan.assignment)) if (re.test(name.replace(/\.weight$/, ''))) covered.set(name, JSON.stringify(g.weights));
    }
    if (g.weights.strategy === 'group') assert.equal(g.weights.group_size, 128);
    assert.equal(g.format, g.weights.type === 'float' ? 'float-quantized' : 'pack-quantized');
  }
  assert.equal(covered.size, Object.keys(plan.assignment).length, 'every quantized module is targeted');
  assert.throws(() => llamaQuantizeRecipe(plan), QuantLensError);
  const nf4 = planMixedPrecision(llamaTensors('safetensors', ['nf4-g64']), 'safetensors', 'weights', { budget: { kind: 'bitsPerWeight', value: 16 } });
  assert.throws(() => compressedTensorsConfig(nf4), (e: unknown) => e instanceof QuantLensError && e.code === 'UNSUPPORTED');
});
