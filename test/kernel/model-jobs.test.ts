import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { calibrateCommand } from '../../src/cli/commands/calibrate';
import { evalCommand } from '../../src/cli/commands/eval';
import { exitCodeOf, toQuantLensError } from '../../src/core/errors';
import { calibrate } from '../../src/core/model/calibrate';
import { evaluate, scoredLogits } from '../../src/core/model/eval';
import { LlamaModel } from '../../src/core/model/llama';
import { sweepKld } from '../../src/core/sensitivity/kld';
import { KernelMatmul } from '../../src/kernel/kernel-matmul';
import { imatrixOfReply, type ModelJobProgress } from '../../src/kernel/model-jobs';
import { KernelPool } from '../../src/kernel/pool';
import { instantiateKernel, KernelArena } from '../../src/kernel/wasm';

const stories = resolve(__dirname, '../../../shared/models/stories260K');
const skip = !existsSync(stories) && 'no ../shared/models';
const f32 = resolve(stories, 'stories260K-f32.gguf');
const textPath = resolve(stories, 'imatrix/calibration.txt');

/** The in-thread twin of a worker's backend: the same kernel function over a kernel in this thread. */
function inThreadKernel(budget?: number): KernelMatmul {
  const kernel = instantiateKernel();
  return new KernelMatmul(kernel, new KernelArena(kernel), budget);
}

test('KernelMatmul: resident and scratch weights give the same products, close to the TypeScript ones', { skip }, async () => {
  const model = await LlamaModel.load(f32);
  const tokens = model.tokenizer!.encode(readFileSync(textPath).subarray(0, 200), { addBos: true });
  const resident = await model.forward(tokens, { backend: inThreadKernel() });
  const scratch = await model.forward(tokens, { backend: inThreadKernel(0) });
  assert.deepEqual(scratch, resident);
  assert.deepEqual(await model.forward(tokens, { backend: inThreadKernel() }), resident, 'deterministic');
  const plain = await model.forward(tokens);
  let worst = 0;
  for (let i = 0; i < plain.length; i++) worst = Math.max(worst, Math.abs(plain[i] - resident[i]));
  assert.ok(worst < 1e-4, `kernel vs TypeScript logits differ by ${worst}`);
});

test('calibrate job: the in-thread result with the same kernel products, progress per chunk', { skip }, async () => {
  const pool = new KernelPool({ size: 1 });
  try {
    const progress: ModelJobProgress[] = [];
    const reply = await pool.run('calibrate', { model: f32, text: { path: textPath }, ctx: 64, chunks: 3 }, { onPartial: (p) => progress.push(p) });
    assert.deepEqual(progress, [1, 2, 3].map((done) => ({ done, total: 3 })));
    const model = await LlamaModel.load(f32);
    const want = await calibrate(model, readFileSync(textPath), { ctx: 64, chunks: 3, backend: inThreadKernel() });
    assert.equal(reply.ppl, want.ppl);
    assert.equal(reply.tokens, want.tokens);
    assert.deepEqual(imatrixOfReply(reply), want.imatrix);
    assert.deepEqual([...imatrixOfReply(reply).keys()], [...want.imatrix.keys()].sort());
    assert.deepEqual(reply.sites, [...want.sites.values()].map((s) => s.summary()));
    assert.equal(reply.sites.length, 5 * 7 + 1, 'per block: q/k/v input, o input, attn out, gate/up input, down input, ffn out, residual; and the head input');

    // llama.cpp mode has no backend: the worker's result is the in-thread one exactly.
    const cpp = await pool.run('calibrate', { model: f32, text: { text: readFileSync(textPath, 'utf8') }, ctx: 64, chunks: 2, mode: 'llama.cpp' });
    const cppWant = await calibrate(model, readFileSync(textPath), { ctx: 64, chunks: 2, mode: 'llama.cpp' });
    assert.equal(cpp.ppl, cppWant.ppl);
    assert.deepEqual(imatrixOfReply(cpp), cppWant.imatrix);
  } finally {
    pool.dispose();
  }
});

test('evaluate job: perplexity and KL divergence against a base, equal to the in-thread figures', { skip }, async () => {
  const pool = new KernelPool({ size: 1 });
  try {
    const progress: ModelJobProgress[] = [];
    const q8 = resolve(stories, 'stories260K-Q8_0.gguf');
    const reply = await pool.run('evaluate', { model: q8, base: f32, text: { path: textPath }, ctx: 64, chunks: 3 }, { onPartial: (p) => progress.push(p) });
    assert.deepEqual(progress.map((p) => `${p.done}/${p.total}`), ['1/6', '2/6', '3/6', '4/6', '5/6', '6/6']);
    const text = readFileSync(textPath);
    const options = { ctx: 64, chunks: 3, backend: inThreadKernel() };
    const base = await scoredLogits(await LlamaModel.load(f32), text, options);
    const want = await evaluate(await LlamaModel.load(q8), text, base, options);
    assert.deepEqual(reply, want);
    assert.ok(reply.kld!.meanKld > 0 && reply.kld!.meanKld < 0.01);
    const alone = await pool.run('evaluate', { model: f32, text: { path: textPath }, ctx: 64, chunks: 3 });
    assert.equal(alone.kld, undefined);
    assert.ok(Math.abs(alone.ppl / reply.kld!.basePpl - 1) < 1e-7, 'the base model’s own perplexity');
  } finally {
    pool.dispose();
  }
});

test('model jobs: cancelling rejects with CANCELLED at once and the pool runs the next job; bad input is a typed error', { skip }, async () => {
  const pool = new KernelPool({ size: 1 });
  try {
    const abort = new AbortController();
    const started = performance.now();
    const run = pool.run('calibrate', { model: f32, text: { path: textPath }, ctx: 64 }, { signal: abort.signal, onPartial: () => abort.abort() });
    await assert.rejects(run, (err: Error & { code?: string }) => err.code === 'CANCELLED');
    assert.ok(performance.now() - started < 20_000);
    const next = await pool.run('evaluate', { model: f32, text: { path: textPath }, ctx: 64, chunks: 2 });
    assert.ok(next.ppl > 1);
    await assert.rejects(pool.run('evaluate', { model: f32, text: { path: resolve(stories, 'no-such.txt') }, ctx: 64 }), (err: Error & { code?: string }) => err.code === 'IO');
    await assert.rejects(pool.run('calibrate', { model: f32, text: { text: 'too short' }, ctx: 64 }), (err: Error & { code?: string }) => err.code === 'USAGE');
  } finally {
    pool.dispose();
  }
});

test('quantlens calibrate/eval run as worker jobs: progress on a terminal, Ctrl-C is CANCELLED (exit 3)', { skip }, async () => {
  for (const [command, args] of [
    [calibrateCommand, [f32, '--text', textPath, '--ctx', '4']],
    [evalCommand, [f32, '--base', f32, '--text', textPath, '--ctx', '4']],
  ] as const) {
    const abort = new AbortController();
    const stderr = Object.assign(new PassThrough(), { isTTY: true });
    let shown = '';
    // Ctrl-C as soon as the progress bar shows a chunk done.
    stderr.on('data', (d) => {
      shown += d;
      if (/chunk \d+\//.test(shown)) abort.abort();
    });
    const err = await command({ args: [...args], stdout: new PassThrough(), stderr, signal: abort.signal }).then(
      () => null,
      (e: unknown) => toQuantLensError(e),
    );
    assert.ok(err, 'the run was cancelled before it finished');
    assert.equal(err.code, 'CANCELLED');
    assert.equal(exitCodeOf(err), 3);
    assert.match(shown, /\[#*\.*\] +\d+% chunk \d+\/\d+/);
  }
});

test('kldSensitivity job: the in-thread sweep with the same kernel products, progress per evaluation', { skip }, async () => {
  const pool = new KernelPool({ size: 1 });
  try {
    const progress: string[] = [];
    const options = { ctx: 64, chunks: 2, by: 'layer' as const, types: ['Q8_0', 'Q4_0'] };
    const reply = await pool.run('kldSensitivity', { model: f32, text: { path: textPath }, ...options }, { onPartial: (p) => progress.push(`${p.done}/${p.total}`) });
    assert.equal(progress.length, 13, 'six units × two formats, then done');
    assert.equal(progress.at(-1), '12/12');
    const want = await sweepKld(await LlamaModel.load(f32), readFileSync(textPath), { ...options, backend: inThreadKernel() });
    assert.deepEqual(reply.kldGroups, want.kldGroups);
    assert.deepEqual(reply.tensors, want.tensors);
  } finally {
    pool.dispose();
  }
});
