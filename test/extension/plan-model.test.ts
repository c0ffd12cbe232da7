import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QuantLensError } from '../../src/core/errors';
import { bitMap, parseBudget, planPanelState, recipeContent, recipeDefaultPath, recipeKinds } from '../../src/extension/plan/plan-model';
import { planOf, type AnalysisState } from '../../src/extension/sensitivity/sensitivity-model';
import { sweepResult } from '../fixtures/sensitivity-result';

function analysis(over: Partial<AnalysisState> = {}): AnalysisState {
  return { fileName: 'model.safetensors', target: 'gguf', imatrixPath: undefined, budget: null, pins: [], exclude: [], tensors: [], result: undefined, sweep: undefined, plan: undefined, planError: undefined, ...over };
}

test('budget as typed: bits per weight up to 32, else a size with a unit', () => {
  assert.deepEqual(parseBudget('4.5'), { kind: 'bitsPerWeight', value: 4.5 });
  assert.deepEqual(parseBudget(' 32 '), { kind: 'bitsPerWeight', value: 32 });
  assert.deepEqual(parseBudget('120MB'), { kind: 'bytes', value: 120e6 });
  assert.deepEqual(parseBudget('3.9 GiB'), { kind: 'bytes', value: Math.round(3.9 * 2 ** 30) });
  assert.deepEqual(parseBudget('33'), { kind: 'bytes', value: 33 }, 'more than 32 bits per weight reads as bytes');
  assert.throws(() => parseBudget('four bits'), (e: unknown) => e instanceof QuantLensError && e.code === 'USAGE');
});

test('bit map: layers × roles of the matrices, each cell the widest format planned there, kept tensors marked', () => {
  // layer 1's down_proj is sensitive: a tight budget gives it more bits than the rest
  const r = sweepResult((name) => (name.includes('layers.1.mlp') ? 100 : 1));
  const { plan } = planOf(r, { kind: 'bitsPerWeight', value: 3.5 }, [], []);
  const map = bitMap(plan);
  assert.deepEqual(map.layers, [null, 0, 1], 'tensors outside layers first');
  assert.ok(map.roles.includes('attn_q') && map.roles.includes('ffn_down'));
  assert.ok(!map.roles.includes('attn_norm' as never), 'norms are 1-D: left out');
  const cell = (layer: number | null, role: string) => map.cells[map.layers.indexOf(layer)][map.roles.indexOf(role as never)];
  assert.equal(cell(1, 'ffn_down'), plan.assignment['model.layers.1.mlp.down_proj.weight']);
  assert.equal(cell(0, 'ffn_up'), undefined, 'no such role in the model: no column');
  assert.equal(cell(null, 'attn_q'), null, 'no tensor of that role outside layers');
  const excluded = planOf(r, { kind: 'bitsPerWeight', value: 16 }, [], ['layers\\.0\\.self_attn']).plan;
  const m2 = bitMap(excluded);
  assert.equal(m2.cells[m2.layers.indexOf(0)][m2.roles.indexOf('attn_q')], 'kept');
});

test('panel state: no checkpoint, no sweep, sweeping, ready with the plan view, quantize only with a plan', () => {
  assert.equal(planPanelState(undefined, true).status, 'noSweep');
  assert.equal(planPanelState(undefined, true).quantizeAvailable, false);
  const none = planPanelState(analysis(), true);
  assert.equal(none.status, 'noSweep');
  assert.equal(none.quantizeAvailable, false);
  assert.deepEqual(none.formats.map((f) => f.bitsPerWeight), [...none.formats.map((f) => f.bitsPerWeight)].sort((a, b) => b - a), 'formats widest first');
  assert.equal(planPanelState(analysis({ sweep: { progress: 0.25, controller: new AbortController() } }), true).progress, 0.25);
  const r = sweepResult();
  const { plan, budget } = planOf(r, null, [], []);
  const ready = planPanelState(analysis({ result: r, tensors: r.tensors, plan, budget }), true);
  assert.equal(ready.status, 'ready');
  assert.equal(ready.quantizeAvailable, true);
  assert.equal(ready.plan?.bitsPerWeight, plan.bitsPerWeight);
  assert.equal(Object.values(ready.plan!.counts).reduce((a, b) => a + b, 0), plan.tensors.length);
  assert.equal(planPanelState(analysis({ result: r, plan }), false).quantizeAvailable, false, 'no quantize command');
  assert.equal(planPanelState(analysis({ result: r, planError: 'budget too small' }), true).status, 'error');
  assert.equal(planPanelState(analysis({ imatrixPath: '/x/imatrix.gguf' }), true).mode, 'imatrix');
});

test('recipes: kinds per target, default paths beside the checkpoint, llama-quantize file and the command that uses it', () => {
  const { plan } = planOf(sweepResult((name) => (name.includes('layers.1.mlp') ? 100 : 1)), { kind: 'bitsPerWeight', value: 5 }, [], []);
  assert.deepEqual(recipeKinds(plan), ['plan', 'llama']);
  const checkpoint = '/models/tiny/model.safetensors.index.json';
  assert.equal(recipeDefaultPath('plan', checkpoint), '/models/tiny/model-plan.json');
  assert.equal(recipeDefaultPath('llama', checkpoint), '/models/tiny/model.tensor-types.txt');
  assert.equal(recipeDefaultPath('compressed-tensors', '/m/x.gguf'), '/m/x-quantization_config.json');

  const json = JSON.parse(recipeContent('plan', plan, checkpoint, '/tmp/p.json').text);
  assert.deepEqual(json.assignment, plan.assignment);
  const llama = recipeContent('llama', plan, checkpoint, '/tmp/types.txt', '/models/imatrix.gguf');
  for (const line of llama.text.split('\n').filter(Boolean)) assert.match(line, /^\S+=[a-z0-9_]+$/i, 'one regex=type per line');
  assert.ok(llama.command!.startsWith('llama-quantize '));
  assert.ok(llama.command!.includes('--tensor-type-file /tmp/types.txt'), llama.command);
  assert.ok(llama.command!.includes('--imatrix /models/imatrix.gguf'), llama.command);
  assert.ok(llama.command!.includes('/models/tiny/model-mixed.gguf'), llama.command);
  assert.throws(() => recipeContent('llama', { ...plan, target: 'safetensors' }, checkpoint, '/tmp/t.txt'), (e: unknown) => e instanceof QuantLensError);
});
