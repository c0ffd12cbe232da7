import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { openModel } from '../src/core/readers';
import { KernelPool } from '../src/kernel/pool';
import { computeTensorStats } from '../src/kernel/tensor-stats';
import { cliPath, generatedModel, medianMs, printTable, runMeasured } from './common';

// numpy doing the same work per tensor: BF16 → f32 (uint16 << 16), min/max, mean/std in f64,
// 256-bin np.histogram over [min, max]. Prints the seconds spent after imports.
const NUMPY_STATS = `
import json, os, struct, sys, time
import numpy as np
folder = sys.argv[1]
t0 = time.perf_counter()
for name in sorted(os.listdir(folder)):
    if not name.endswith('.safetensors'):
        continue
    path = os.path.join(folder, name)
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
    for key, t in header.items():
        if key == '__metadata__':
            continue
        start, end = t['data_offsets']
        u = np.fromfile(path, dtype='<u2', count=(end - start) // 2, offset=8 + n + start)
        a = (u.astype(np.uint32) << 16).view(np.float32)
        mn, mx = float(a.min()), float(a.max())
        a.mean(dtype=np.float64)
        a.std(dtype=np.float64)
        np.histogram(a, bins=256, range=(mn, mx))
print(time.perf_counter() - t0)
`;

/** Stats + 256-bin histogram of every tensor of the generated 1 GB BF16 model: kernel pool vs numpy, and the CLI's peak RSS. */
export async function benchStats(): Promise<void> {
  const path = generatedModel('llama-1gb');
  const model = await openModel(path);
  const bytes = model.tensors.reduce((sum, t) => sum + t.byteLength, 0);
  const rows: Array<Array<string | number>> = [];
  let twoWorkersGBs = 0;
  for (const size of [2, 1]) {
    const pool = new KernelPool({ size });
    try {
      await computeTensorStats(pool, model, model.tensors); // warms the page cache and the workers
      const ms = await medianMs(3, () => computeTensorStats(pool, model, model.tensors));
      const gbs = bytes / ms / 1e6;
      if (size === 2) twoWorkersGBs = gbs;
      rows.push([`QuantLens kernel, ${size} worker${size > 1 ? 's' : ''}`, ms, gbs, size === 2 ? 2 : '']);
    } finally {
      pool.dispose();
    }
  }
  const numpy = spawnSync('python3', ['-c', NUMPY_STATS, path], { encoding: 'utf8' });
  if (numpy.status === 0) {
    const seconds = Number(numpy.stdout.trim());
    const gbs = bytes / seconds / 1e9;
    rows.push(['numpy (1 thread)', seconds * 1000, gbs, '']);
    rows.push(['ratio kernel (2 workers) / numpy', '', twoWorkersGBs / gbs, 10]);
  } else {
    rows.push(['numpy: not available', '', '', '']);
  }
  const child = runMeasured(process.execPath, [cliPath, 'stats', path, '--json']);
  rows.push(['`quantlens stats --json` (CLI, 2 cores) wall ms / peak RSS MB', child.seconds * 1000, `${child.peakRssMB.toFixed(0)} MB`, '< 512 MB']);
  printTable(
    `stats + 256-bin histogram, ${model.tensors.length} BF16 tensors, ${(bytes / 1e9).toFixed(2)} GB (load average ${loadavg()[0]!.toFixed(1)})`,
    ['what', 'ms (median of 3)', 'GB/s', 'goal'],
    rows,
  );
}
