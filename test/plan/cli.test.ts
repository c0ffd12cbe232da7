import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';

const cli = resolve(__dirname, '../../dist/cli.js');
const models = resolve(__dirname, '../../../shared/models');

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('CLI sensitivity --json and plan --emit llama on a generated model', (t) => {
  if (!existsSync(cli)) return t.skip('dist/ is not built (npm run build)');
  const dir = mkdtempSync(join(tmpdir(), 'quantlens-plan-cli-'));
  writeSafetensorsModel(dir, llamaTensors(PRESETS.tiny.shape), 'F32', 5);
  const cache = join(dir, 'cache');

  const s = run(['sensitivity', dir, '--types', 'Q8_0,Q4_K,Q2_K', '--json', '--cache-dir', cache]);
  assert.equal(s.code, 0, s.stderr);
  const j = JSON.parse(s.stdout);
  assert.equal(j.mode, 'weights');
  assert.deepEqual(j.types, ['Q8_0', 'Q4_K', 'Q2_K']);
  const down = j.tensors.find((x: { name: string }) => x.name === 'model.layers.1.mlp.down_proj.weight');
  assert.deepEqual(Object.keys(down), ['name', 'params', 'layer', 'role', 'sampledRows', 'rows', 'errors']);
  assert.equal(down.layer, 1);
  assert.equal(down.role, 'ffn_down');
  assert.deepEqual(Object.keys(down.errors.Q4_K).slice(0, 3), ['relMse', 'sqnrDb', 'maxAbsErr']);
  assert.ok(j.layers.length === 2 * 7 + 2, 'per (layer, role), embed and output outside layers');

  const planPath = join(dir, 'plan.json');
  const p = run(['plan', dir, '--bpw', '5', '--types', 'Q8_0,Q4_K,Q2_K', '--pin', 'ffn_down>=Q8_0', '--emit', 'llama', '-o', planPath, '--json', '--cache-dir', cache]);
  assert.equal(p.code, 0, p.stderr);
  const plan = JSON.parse(p.stdout);
  assert.ok(plan.bitsPerWeight <= 5);
  assert.equal(plan.assignment['model.layers.0.mlp.down_proj.weight'], 'Q8_0');
  assert.deepEqual(JSON.parse(readFileSync(planPath, 'utf8')).assignment, plan.assignment);
  const typeFile = readFileSync(join(dir, 'plan.tensor-types.txt'), 'utf8');
  assert.match(typeFile, /^\^blk\\\.\(\?:0\|1\)\\\.ffn_down\\\.weight\$=Q8_0$/m);
  assert.ok(plan.recipe.args.includes('--output-tensor-type'));
  assert.ok(plan.frontier.length > 2);

  const bad = run(['plan', dir, '--bpw', '1', '--types', 'Q8_0', '--cache-dir', cache]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /below the smallest plan/);
  assert.equal(run(['plan', dir, '--cache-dir', cache]).code, 1, 'a budget is required');
});

test('CLI plan on stories260K: rows of 172 kept, recipe pins them to their type', (t) => {
  const path = join(models, 'stories260K/hf/model.safetensors');
  if (!existsSync(cli) || !existsSync(path)) return t.skip('dist/ or ../shared/models missing');
  const r = run(['plan', path, '--bpw', '12', '--no-cache', '--emit', 'llama', '--imatrix', join(models, 'stories260K/imatrix/stories260K.imatrix.dat'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  assert.equal(plan.mode, 'imatrix');
  for (let l = 0; l < 5; l++) assert.equal(plan.kept[`model.layers.${l}.mlp.down_proj.weight`], 'F32');
  assert.ok(plan.recipe.tensorTypeFile.split('\n').includes('^blk\\.(?:0|1|2|3|4)\\.ffn_down\\.weight$=F32'));
  assert.ok(Object.values(plan.assignment).every((f) => f === 'Q8_0' || f === 'Q5_0' || f === 'Q4_0'));
});
