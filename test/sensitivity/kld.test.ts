import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { sensitivityCommand } from '../../src/cli/commands/sensitivity';
import { evaluate, scoredLogits } from '../../src/core/model/eval';
import { LlamaModel } from '../../src/core/model/llama';
import { planMixedPrecision, planTensorsFromSensitivity } from '../../src/core/plan/plan';
import { quantFormat } from '../../src/core/sensitivity/formats';
import { runKldSensitivity, sweepKld } from '../../src/core/sensitivity/kld';
import { reconstructWithTwins } from '../../src/core/sensitivity/quant-error';
import { averageRanks, compareRankings, spearman } from '../../src/core/sensitivity/rank';
import type { SensitivityResult } from '../../src/core/sensitivity/types';

const stories = resolve(__dirname, '../../../shared/models/stories260K');
const skip = !existsSync(stories) && 'no ../shared/models';
const gguf = resolve(stories, 'stories260K-f32.gguf');
const textPath = resolve(stories, 'imatrix/calibration.txt');

test('Spearman rank correlation: average ranks for ties, hand-computed values', () => {
  assert.deepEqual(averageRanks([10, 30, 20, 30]), [1, 3.5, 2, 3.5]);
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  // ranks (1,2,3,4,5) vs (2,1,4,3,5): Σd² = 4, ρ = 1 − 6·4 / (5·24) = 0.8
  assert.ok(Math.abs(spearman([1, 2, 3, 4, 5], [0.2, 0.1, 0.4, 0.3, 0.5])! - 0.8) < 1e-12);
  assert.equal(spearman([1, 2], [1, 2]), null, 'too few');
  assert.equal(spearman([1, 1, 1], [1, 2, 3]), null, 'a constant side');
});

test('compareRankings sums params × relMSE over a unit’s measured tensors only', () => {
  const tensor = (name: string, params: number, relMse: number | null, kld?: number) => ({
    name,
    params,
    errors: { Q4_0: relMse === null ? null : { relMse, sqnrDb: null, maxAbsErr: 0, relMseBound: 0, kld } },
  });
  const kld = {
    types: ['Q4_0'],
    tensors: [tensor('a', 1, 0.1, 1), tensor('b', 1, 0.1, 2), tensor('c', 1, null), tensor('d', 1, 0.1, 3)],
    kldGroups: [
      { layer: 0, role: 'all', tensors: ['a'], kld: { Q4_0: 1 }, ppl: {} },
      { layer: 1, role: 'all', tensors: ['b', 'c'], kld: { Q4_0: 2 }, ppl: {} },
      { layer: 2, role: 'all', tensors: ['d'], kld: { Q4_0: 3 }, ppl: {} },
    ],
  } as unknown as SensitivityResult;
  // c's large estimate must not count: the kld unit did not quantize it.
  const estimate = { mode: 'weights', tensors: [tensor('a', 1, 0.1), tensor('b', 1, 0.2), tensor('c', 1, 100), tensor('d', 1, 0.3)] } as unknown as SensitivityResult;
  assert.deepEqual(compareRankings(kld, estimate), [{ estimate: 'weights', format: 'Q4_0', units: 3, spearman: 1 }]);
});

test('stories260K: weight overrides with the same values and resuming from a residual stream leave the logits unchanged', { skip }, async () => {
  const model = await LlamaModel.load(gguf);
  const tokens = model.tokenizer!.encode(readFileSync(textPath), { addBos: true }).slice(0, 32);
  const residuals: Float32Array[] = [];
  const plain = await model.forward(tokens, { logitsFrom: 16, observer: (site, v) => void (site.kind === 'residual' && (residuals[site.layer] = v.slice())) });
  const same = new Map([['blk.2.ffn_up.weight', (await (await model.matrix('blk.2.ffn_up.weight')).values()).slice()]]);
  assert.deepEqual(await model.forward(tokens, { logitsFrom: 16, weightOverrides: same }), plain);
  assert.deepEqual(await model.forward(tokens, { logitsFrom: 16, resumeAt: { layer: 3, residual: residuals[2] } }), plain);
  assert.deepEqual(await model.forward(tokens, { logitsFrom: 16, resumeAt: { layer: 5, residual: residuals[4] } }), plain, 'the head alone');
  const zeroed = new Map([['token_embd.weight', new Float32Array(512 * 64)]]);
  assert.notDeepEqual(await model.forward(tokens, { logitsFrom: 16, weightOverrides: zeroed }), plain, 'the embedding override is used');
});

test('stories260K: kld by role equals evaluating the model with that role quantized; layers add up; the planner takes it', { skip }, async () => {
  const text = readFileSync(textPath);
  const model = await LlamaModel.load(gguf);
  const options = { ctx: 64, chunks: 2 };
  const r = await sweepKld(model, text, { ...options, by: 'role', types: ['Q8_0', 'Q4_0'] });
  assert.equal(r.mode, 'kld');
  assert.equal(r.kldGroups!.length, 8, 'token_embd, output and the six roles whose rows fit 32 (ffn_down rows of 172 do not)');
  // Independently: output.weight at Q4_0, every block run (no resume), against fresh base logits.
  const base = await scoredLogits(model, text, options);
  const w = await model.matrix('output.weight');
  const q = reconstructWithTwins(await w.values(), w.rows, w.cols, quantFormat('Q4_0', 'gguf'), undefined);
  const direct = await evaluate(model, text, base, { ...options, weightOverrides: new Map([['output.weight', q]]) });
  const output = r.kldGroups!.find((g) => g.role === 'output')!;
  assert.equal(output.kld.Q4_0, direct.kld!.meanKld);
  for (const g of r.kldGroups!) {
    assert.ok(g.kld.Q4_0! > g.kld.Q8_0!, `${g.role}: Q4_0 hurts more than Q8_0`);
    const shared = g.tensors.reduce((s, name) => s + r.tensors.find((t) => t.name === name)!.errors.Q4_0!.kld!, 0);
    assert.ok(Math.abs(shared / g.kld.Q4_0! - 1) < 1e-9, 'the unit’s KLD is shared among its tensors without loss');
  }
  assert.equal(r.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!.quantizable, false);
  const plan = planMixedPrecision(planTensorsFromSensitivity(r), 'gguf', 'kld', { budget: { kind: 'bitsPerWeight', value: 11 } });
  assert.ok(plan.bitsPerWeight <= 11 + 1e-9, 'rows of 172 stay F32: at least 9.7 bpw');
  const planned = Object.entries(plan.assignment).reduce((s, [name, f]) => s + r.tensors.find((t) => t.name === name)!.errors[f]!.kld!, 0);
  assert.ok(Math.abs(plan.estimatedError - planned) < 1e-12, 'the plan’s error is the sum of the chosen KLDs');
});

test('quantlens sensitivity --mode kld --by layer --compare-modes --json: KLD per layer and rank agreement; usage errors', { skip }, async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'ql-kld-'));
  try {
    const run = async (args: string[]) => {
      const stdout = new PassThrough();
      let out = '';
      stdout.on('data', (d) => (out += d));
      await sensitivityCommand({ args, stdout, stderr: new PassThrough(), signal: new AbortController().signal });
      return out;
    };
    const args = [gguf, '--mode', 'kld', '--text', textPath, '--ctx', '64', '--chunks', '2', '--by', 'layer', '--types', 'Q8_0,Q4_0', '--compare-modes', '--cache-dir', cacheDir];
    const j = JSON.parse(await run([...args, '--json']));
    assert.equal(j.mode, 'kld');
    assert.deepEqual(j.kld.by, 'layer');
    assert.equal(j.kldGroups.length, 6, 'five blocks and the tensors outside them');
    assert.ok(j.basePpl > 1);
    const estimates = new Set(j.rankCorrelation.map((a: { estimate: string }) => a.estimate));
    assert.deepEqual([...estimates], ['weights', 'imatrix']);
    for (const a of j.rankCorrelation) assert.ok(a.spearman === null || (a.spearman >= -1 && a.spearman <= 1));
    const again = await runKldSensitivity(gguf, readFileSync(textPath), { ctx: 64, chunks: 2, by: 'layer', types: ['Q8_0', 'Q4_0'], compare: true, cacheDir });
    assert.equal(again.cached, true);
    const text = await run(args);
    assert.match(text, /kld sensitivity by layer/);
    assert.match(text, /rank agreement/);
    await assert.rejects(run([gguf, '--mode', 'kld']), /needs --text/);
    await assert.rejects(run([gguf, '--mode', 'kld', '--text', textPath, '--by', 'block']), /--by block/);
    await assert.rejects(run([gguf, '--ctx', '64']), /goes with --mode kld/);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
