import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import { openModel } from '../../src/core/readers';
import { sweepSensitivity } from '../../src/core/sensitivity';
import { kernelQuantErrorOracle } from '../../src/kernel/quant-error';
import { distDir, instantiateKernel } from '../../src/kernel/wasm';

const built = existsSync(join(distDir, 'kernel.wasm'));

test('kernel oracle: same numbers as the twins (GGUF with and without imatrix, RTN)', async (t) => {
  if (!built) return t.skip('dist/ is not built (npm run build)');
  const dir = mkdtempSync(join(tmpdir(), 'quantlens-oracle-'));
  writeSafetensorsModel(dir, llamaTensors(PRESETS.tiny.shape), 'F32', 11);
  const model = await openModel(join(dir, 'model.safetensors'));
  const oracle = kernelQuantErrorOracle(instantiateKernel());
  for (const [target, types] of [
    ['gguf', ['Q8_0', 'Q6_K', 'Q4_K', 'Q2_K', 'IQ4_XS', 'Q4_0']],
    ['safetensors', ['int8-ch-sym', 'int4-g128-asym', 'fp8-e4m3-ch', 'nf4-g64']],
  ] as const) {
    const opts = { target, types: [...types], sampleElements: 1024 };
    const twin = await sweepSensitivity(model, opts);
    const kernel = await sweepSensitivity(model, { ...opts, oracle });
    assert.deepEqual(kernel.tensors, twin.tensors, `${target}: kernel and twins agree`);
  }
  // With importance weights (a synthetic imatrix covering every matrix).
  const entries = new Map(
    model.tensors
      .filter((x) => x.shape.length === 2)
      .map((x) => [x.name, { name: x.name, columns: x.shape[1], matrices: 1, weights: Float32Array.from({ length: x.shape[1] }, (_, j) => 0.5 + ((j * 7) % 13)) }]),
  );
  const imatrix = { format: 'gguf' as const, file: 'synthetic', entries, datasets: [], chunkCount: null };
  const opts = { types: ['Q4_K', 'Q5_0'], sampleElements: 1024, imatrix };
  assert.deepEqual((await sweepSensitivity(model, { ...opts, oracle })).tensors, (await sweepSensitivity(model, opts)).tensors);
});
