// `stats` through the worker pool against a float64 numpy reference on the real stories260K
// weights (F32, BF16, F16): min/max exactly, mean and std within 1e-6 · max(|reference|, std),
// histogram counts exactly (np.histogram, 256 bins, range = [min, max]). Skips without
// ../shared/models or python3 with numpy.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { openModel } from '../../src/core/readers';
import { KernelPool } from '../../src/kernel/pool';
import { computeTensorStats } from '../../src/kernel/tensor-stats';

const models = resolve(__dirname, '../../../shared/models/stories260K');

const REFERENCE = `
import json, struct, sys
import numpy as np
path = sys.argv[1]
with open(path, 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
out = {}
for name, t in header.items():
    if name == '__metadata__':
        continue
    raw = data[t['data_offsets'][0]:t['data_offsets'][1]]
    if t['dtype'] == 'F32':
        a = np.frombuffer(raw, dtype='<f4')
    elif t['dtype'] == 'F16':
        a = np.frombuffer(raw, dtype='<f2')
    elif t['dtype'] == 'BF16':
        a = (np.frombuffer(raw, dtype='<u2').astype(np.uint32) << 16).view(np.float32)
    else:
        continue
    a = a.astype(np.float64)
    a = a[np.isfinite(a)]
    mn, mx = float(a.min()), float(a.max())
    counts, _ = np.histogram(a, bins=256, range=(mn, mx))
    out[name] = {'min': mn, 'max': mx, 'mean': float(a.mean()), 'std': float(a.std()), 'counts': counts.tolist()}
print(json.dumps(out))
`;

interface Reference {
  min: number;
  max: number;
  mean: number;
  std: number;
  counts: number[];
}

function numpyReference(path: string): Record<string, Reference> | undefined {
  const r = spawnSync('python3', ['-c', REFERENCE, path], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return undefined;
  return JSON.parse(r.stdout) as Record<string, Reference>;
}

const numpyAvailable = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

for (const variant of ['hf', 'hf-bf16', 'hf-f16']) {
  const file = resolve(models, variant, 'model.safetensors');
  test(`stats match numpy on stories260K ${variant}`, async (t) => {
    if (!existsSync(file)) return t.skip('../shared/models is missing');
    if (!numpyAvailable) return t.skip('python3 with numpy is missing');
    const reference = numpyReference(file);
    assert.ok(reference, 'the numpy reference script failed');
    const model = await openModel(file);
    const pool = new KernelPool({ size: 2 });
    try {
      const stats = await computeTensorStats(pool, model, model.tensors, { bins: 256 });
      assert.equal(stats.length, Object.keys(reference).length);
      model.tensors.forEach((tensor, i) => {
        const s = stats[i]!;
        const ref = reference[tensor.name]!;
        const where = `${variant} ${tensor.name}`;
        assert.equal(s.min, ref.min, `${where}: min`);
        assert.equal(s.max, ref.max, `${where}: max`);
        const tol = (x: number): number => 1e-6 * Math.max(Math.abs(x), ref.std);
        assert.ok(Math.abs(s.mean! - ref.mean) <= tol(ref.mean), `${where}: mean ${s.mean} vs ${ref.mean}`);
        assert.ok(Math.abs(s.std! - ref.std) <= tol(ref.std), `${where}: std ${s.std} vs ${ref.std}`);
        const bad = s.histogram.counts.findIndex((c, b) => c !== ref.counts[b]);
        assert.equal(bad, -1, `${where}: histogram bin ${bad}: ${s.histogram.counts[bad]} vs numpy ${ref.counts[bad]}`);
      });
    } finally {
      pool.dispose();
    }
  });
}
