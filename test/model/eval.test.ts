import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { evalCommand } from '../../src/cli/commands/eval';
import { chunkInput, chunkPlan, evaluate, scoredLogits } from '../../src/core/model/eval';
import { LlamaModel } from '../../src/core/model/llama';

const stories = resolve(__dirname, '../../../shared/models/stories260K');
const skip = !existsSync(stories) && 'no ../shared/models';

test('chunking follows llama-perplexity: whole chunks, at least two, first token replaced by BOS', () => {
  assert.equal(chunkPlan(1934, 64), 30);
  assert.equal(chunkPlan(1934, 64, 20), 20);
  assert.throws(() => chunkPlan(100, 64), /at least 128/);
  assert.deepEqual(Array.from(chunkInput(Int32Array.of(1, 5, 6, 7, 8, 9, 10, 11), 1, 4, 1)), [1, 9, 10, 11]);
});

/** llama-reference.txt: llama-perplexity -c 64 and --kl-divergence against stories260K-f32.gguf. */
const REFERENCE = {
  'stories260K-Q8_0.gguf': { meanKld: 0.000696, sameTopP: 98.602 },
  'stories260K-Q4_K_M.gguf': { meanKld: 0.014067, sameTopP: 93.871 },
  'quant-ref/stories260K-Q4_0.gguf': { meanKld: 0.077117, sameTopP: 85.914 },
  'quant-ref/stories260K-Q5_1.gguf': { meanKld: 0.0145, sameTopP: 94.086 },
};

test('stories260K, llama.cpp-compatible mode: PPL at -c 64 and KL divergence of four quantizations match llama.cpp', { skip }, async () => {
  const text = readFileSync(resolve(stories, 'imatrix/calibration.txt'));
  const f32 = await LlamaModel.load(resolve(stories, 'stories260K-f32.gguf'));
  const options = { ctx: 64, mode: 'llama.cpp' as const };
  const base = await scoredLogits(f32, text, options);
  const own = await evaluate(f32, text, base, options);
  assert.equal(own.chunks, 30);
  assert.ok(Math.abs(own.ppl / 4.3277 - 1) < 1e-3, `PPL ${own.ppl} vs llama.cpp 4.3277`);
  assert.ok(own.kld!.meanKld < 1e-12, 'a model against its own logits');
  for (const [file, want] of Object.entries(REFERENCE)) {
    const r = await evaluate(await LlamaModel.load(resolve(stories, file)), text, base, options);
    const k = r.kld!;
    const tolerance = file.includes('Q8_0') ? Math.max(0.1 * want.meanKld, 5e-5) : 0.05 * want.meanKld;
    assert.ok(Math.abs(k.meanKld - want.meanKld) <= tolerance, `${file}: mean KLD ${k.meanKld} vs llama.cpp ${want.meanKld}`);
    assert.ok(Math.abs(k.sameTopP - want.sameTopP) <= 1, `${file}: same top p ${k.sameTopP} vs ${want.sameTopP}`);
    assert.ok(k.medianKld <= k.p999Kld && k.p999Kld <= k.maxKld);
  }
});

test('quantlens eval --json prints ppl and the KLD keys', { skip }, async () => {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  await evalCommand({
    args: [resolve(stories, 'stories260K-Q8_0.gguf'), '--text', resolve(stories, 'imatrix/calibration.txt'), '--ctx', '64', '--chunks', '4', '--base', resolve(stories, 'stories260K-f32.gguf'), '--json'],
    stdout,
    stderr: new PassThrough(),
    signal: new AbortController().signal,
  });
  const json = JSON.parse(out) as Record<string, number>;
  for (const key of ['ppl', 'meanKld', 'medianKld', 'p999Kld', 'maxKld', 'rmsDeltaP', 'sameTopP']) assert.equal(typeof json[key], 'number', key);
  assert.equal(json.chunks, 4);
  assert.ok(json.sameTopP > 90 && json.sameTopP <= 100);
});
