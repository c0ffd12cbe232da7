import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { test } from 'node:test';
import { QuantLensError } from '../../src/core/errors';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import { openModel } from '../../src/core/readers';
import { runSensitivity, sweepSensitivity } from '../../src/core/sensitivity';
import type { SweepOptions } from '../../src/core/sensitivity/sweep';
import { poolSweepRunner } from '../../src/kernel/pool-sensitivity';
import { KernelPool } from '../../src/kernel/pool';
import { kernelQuantErrorOracle } from '../../src/kernel/quant-error';
import { distDir, instantiateKernel } from '../../src/kernel/wasm';

const built = existsSync(join(distDir, 'worker.js')) && existsSync(join(distDir, 'kernel.wasm'));

function generated(preset: 'tiny' | 'demo', seed: number): string {
  const dir = mkdtempSync(join(tmpdir(), `quantlens-pool-sweep-${preset}-`));
  writeSafetensorsModel(dir, llamaTensors(PRESETS[preset].shape), PRESETS[preset].dtype, seed);
  return join(dir, 'model.safetensors');
}

test('sweep in workers: the same results as the twins (GGUF, imatrix, RTN), each tensor streamed once, progress complete', async (t) => {
  if (!built) return t.skip('dist/ is not built (npm run build)');
  const path = generated('tiny', 11);
  const model = await openModel(path);
  const pool = new KernelPool({ size: 2 });
  try {
    const runner = poolSweepRunner(pool, path);
    const entries = new Map(
      model.tensors
        .filter((x) => x.shape.length === 2)
        .map((x) => [x.name, { name: x.name, columns: x.shape[1], matrices: 1, weights: Float32Array.from({ length: x.shape[1] }, (_, j) => 0.5 + ((j * 7) % 13)) }]),
    );
    const imatrix = { format: 'gguf' as const, file: 'synthetic', entries, datasets: [], chunkCount: null };
    const cases: SweepOptions[] = [
      { target: 'gguf', types: ['Q8_0', 'Q6_K', 'Q4_K', 'Q2_K', 'IQ4_XS', 'Q4_0'], sampleElements: 1024 },
      { target: 'gguf', types: ['Q8_0', 'Q4_K'], sampleElements: null },
      { target: 'safetensors', types: ['int8-ch-sym', 'int4-g128-asym', 'fp8-e4m3-ch', 'nf4-g64'], sampleElements: 1024 },
      { types: ['Q4_K', 'Q5_0'], sampleElements: 1024, imatrix },
    ];
    for (const opts of cases) {
      const streamed: string[] = [];
      let last = { workDone: 0, workTotal: -1, tensorsDone: 0, tensors: -1 };
      const twin = await sweepSensitivity(model, opts);
      const inWorkers = await sweepSensitivity(model, { ...opts, runner, onTensor: (x) => streamed.push(x.name), onProgress: (p) => (last = p) });
      const label = `${opts.target ?? 'gguf'} ${opts.types?.join(',') ?? 'defaults'}${opts.imatrix ? ' imatrix' : ''}`;
      assert.deepEqual(inWorkers.tensors, twin.tensors, `${label}: workers and twins agree`);
      assert.deepEqual(inWorkers.layers, twin.layers, label);
      assert.deepEqual([...streamed].sort(), twin.tensors.filter((x) => x.quantizable).map((x) => x.name).sort(), `${label}: each tensor streamed once`);
      assert.equal(last.workDone, last.workTotal, `${label}: progress reaches the total`);
      assert.equal(last.tensorsDone, last.tensors);
    }
  } finally {
    pool.dispose();
  }
});

test('sweep in workers: cache unchanged (second run replays the stored tensors), cancel stops promptly', async (t) => {
  if (!built) return t.skip('dist/ is not built (npm run build)');
  const path = generated('tiny', 12);
  const cacheDir = mkdtempSync(join(tmpdir(), 'quantlens-pool-sweep-cache-'));
  const pool = new KernelPool({ size: 2 });
  try {
    const runner = poolSweepRunner(pool, path);
    const first = await runSensitivity(path, { types: ['Q4_0', 'Q8_0'], cacheDir, runner });
    const replayed: string[] = [];
    const second = await runSensitivity(path, { types: ['Q4_0', 'Q8_0'], cacheDir, runner, onTensor: (x) => replayed.push(x.name) });
    assert.equal(first.cached, false);
    assert.equal(second.cached, true);
    assert.deepEqual(second.tensors, first.tensors);
    assert.equal(replayed.length, first.tensors.filter((x) => x.quantizable).length);

    const abort = new AbortController();
    const run = runSensitivity(path, { types: ['Q2_K', 'Q3_K', 'IQ4_XS'], sampleElements: null, runner, signal: abort.signal, onProgress: (p) => p.workDone > 0 && abort.abort() });
    const t0 = performance.now();
    await assert.rejects(run, (e: unknown) => e instanceof QuantLensError && e.code === 'CANCELLED');
    assert.ok(performance.now() - t0 < 2000, 'stops promptly');
    assert.ok(pool.workers < 2, 'the cancelled workers were terminated');
    // the pool starts fresh workers for the next sweep
    assert.deepEqual((await sweepSensitivity(await openModel(path), { types: ['Q8_0'], runner })).tensors.length, first.tensors.length);
  } finally {
    pool.dispose();
  }
});

test('sweep in workers keeps the host event loop free (vs rows read and decoded on the host)', async (t) => {
  if (!built) return t.skip('dist/ is not built (npm run build)');
  const path = generated('demo', 13);
  const model = await openModel(path);
  const pool = new KernelPool({ size: 2 });
  const opts: SweepOptions = { types: ['Q8_0', 'Q4_K'], sampleElements: null };
  const measure = async (o: SweepOptions): Promise<{ seconds: number; maxMs: number; p99Ms: number }> => {
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    const t0 = performance.now();
    await sweepSensitivity(model, { ...opts, ...o });
    const seconds = (performance.now() - t0) / 1000;
    h.disable();
    return { seconds, maxMs: h.max / 1e6, p99Ms: h.percentile(99) / 1e6 };
  };
  try {
    const host = await measure({ oracle: kernelQuantErrorOracle(instantiateKernel()) });
    const workers = await measure({ runner: poolSweepRunner(pool, path) });
    const line = (name: string, m: { seconds: number; maxMs: number; p99Ms: number }) =>
      `${name}: ${m.seconds.toFixed(2)} s, event-loop delay max ${m.maxMs.toFixed(1)} ms, p99 ${m.p99Ms.toFixed(1)} ms`;
    t.diagnostic(line('rows and kernel on the host', host));
    t.diagnostic(line('sensitivity jobs in workers', workers));
    assert.ok(workers.maxMs < Math.max(50, host.maxMs), 'the host is blocked less than when it decodes rows');
  } finally {
    pool.dispose();
  }
});
