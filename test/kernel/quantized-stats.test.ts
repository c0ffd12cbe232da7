import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import { quantizeToSafetensors } from '../../src/core/quantize/to-safetensors';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import { laneStats } from '../../src/core/stats/stats';
import { tensorRowsF32 } from '../../src/core/tensor-rows';
import { KernelPool } from '../../src/kernel/pool';
import { computeAbsMaxProfile, computeTensorStats } from '../../src/kernel/tensor-stats';

test('statistics of a quantized layout are those of its dequantized values', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-qstats-'));
  const pool = new KernelPool({ size: 1 });
  try {
    writeSafetensorsModel(join(dir, 'tiny'), llamaTensors(PRESETS.tiny.shape), 'F32', 4);
    await quantizeToSafetensors(join(dir, 'tiny'), join(dir, 'int4'), { scheme: 'int4-g64-asym' });
    const model = await openModel(join(dir, 'int4'));
    const t = model.tensors.find((x) => x.name === 'model.layers.0.mlp.up_proj.weight')!;
    assert.equal(t.encoding, 'quantized');
    const [stats] = await computeTensorStats(pool, model, [t], { bins: 16 });
    const parts: Float32Array[] = [];
    for await (const c of tensorRowsF32(model, t, nodeFileAccess)) parts.push(c.values);
    const values = Float32Array.from(parts.flatMap((p) => [...p]));
    const twin = laneStats(values, 16);
    assert.equal(stats.count, values.length);
    assert.equal(stats.min, twin.min);
    assert.equal(stats.max, twin.max);
    assert.deepEqual(stats.histogram?.counts, twin.histogram?.counts);
    const profile = await computeAbsMaxProfile(pool, model, t);
    assert.equal(profile.rows.length, t.shape[0]);
  } finally {
    pool.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
