import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_BUDGET_BPW, planOf, rankLayers, referenceFormat } from '../../src/extension/sensitivity/sensitivity-model';
import { TYPES, sweepResult } from '../fixtures/sensitivity-result';

test('reference format: the one nearest 4.5 bits among formats measured on at least half of the parameters', () => {
  const r = sweepResult();
  assert.equal(referenceFormat(r.tensors, r.types, 'gguf'), 'Q4_K');
  // Q4_K measured on too few parameters: the next nearest (Q2_K: 1.9 bits away, Q6_K: 2.1)
  const sparse = r.tensors.map((t) => (t.name.includes('layers') ? { ...t, errors: { ...t.errors, Q4_K: null } } : t));
  assert.equal(referenceFormat(sparse, r.types, 'gguf'), 'Q2_K');
  assert.equal(referenceFormat([], r.types, 'gguf'), undefined, 'nothing measured');
  assert.equal(referenceFormat(r.tensors.filter((t) => !t.quantizable), r.types, 'gguf'), undefined, 'nothing quantizable');
});

test('layer ranking: most sensitive layer first, tensors by sensitivity then name, 1-D tensors left out; outputs mode ranks by output error', () => {
  const r = sweepResult((name) => (name.includes('layers.1.mlp') ? 10 : 1));
  const { reference, layers } = rankLayers(r.tensors, r.types, 'gguf');
  assert.equal(reference, 'Q4_K');
  assert.equal(layers[0].layer, 1, 'layer 1 holds the sensitive down_proj');
  assert.deepEqual(layers[0].tensors.map((t) => t.name), ['model.layers.1.mlp.down_proj.weight', 'model.layers.1.self_attn.q_proj.weight']);
  assert.ok(layers.every((l) => l.tensors.every((t) => t.shape.length >= 2)));
  assert.deepEqual(layers.map((l) => l.layer).sort(), [0, 1, null].sort());

  // an outputs sweep whose output errors say the opposite of the weights' own: layer 0 hurts the outputs most
  const outputs = sweepResult((name) => (name.includes('layers.1.mlp') ? 10 : 1), 'outputs');
  for (const t of outputs.tensors) for (const e of Object.values(t.errors)) if (e) e.outputRelMse = t.name.includes('layers.0.mlp') ? 1 : 1e-6;
  assert.equal(rankLayers(outputs.tensors, outputs.types, 'gguf', 'outputs').layers[0].layer, 0);
  assert.equal(rankLayers(outputs.tensors, outputs.types, 'gguf', 'weights').layers[0].layer, 1);
});

test('plan of a sweep: the default budget is 4.5 bpw clamped into the curve; a set budget is kept; a too-small one throws', () => {
  const r = sweepResult();
  const { plan, budget } = planOf(r, null, [], []);
  assert.deepEqual(budget, { kind: 'bitsPerWeight', value: DEFAULT_BUDGET_BPW });
  assert.ok(plan.bitsPerWeight <= DEFAULT_BUDGET_BPW + 1e-9);
  const set = planOf(r, { kind: 'bitsPerWeight', value: 6 }, [], []);
  assert.deepEqual(set.budget, { kind: 'bitsPerWeight', value: 6 });
  assert.ok(set.plan.estimatedError <= plan.estimatedError);
  assert.throws(() => planOf(r, { kind: 'bitsPerWeight', value: 0.5 }, [], []));
  // only Q8_0 measured: the curve starts above 4.5, so the default budget is clamped up into it
  const q8 = sweepResult();
  for (const t of q8.tensors) for (const ty of TYPES) if (ty !== 'Q8_0' && t.errors[ty]) t.errors[ty] = null;
  const clamped = planOf(q8, null, [], []);
  assert.ok(clamped.budget.kind === 'bitsPerWeight' && clamped.budget.value > DEFAULT_BUDGET_BPW, `clamped to ${clamped.budget.value}`);
});
