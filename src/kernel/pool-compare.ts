/** Comparison of matched pairs on the kernel worker pool, one `compareTensors` job per pair. */
import type { PairComparer } from '../core/compare';
import type { KernelPool } from './pool';

export function poolPairComparer(pool: KernelPool): PairComparer {
  return {
    parallelism: pool.size,
    async compare(ma, mb, pair, _files, signal) {
      const { histograms: _none, ...error } = await pool.run(
        'compareTensors',
        { a: { path: ma.files[0], tensor: pair.a.name }, b: { path: mb.files[0], tensor: pair.b.name }, rowMapB: pair.rowMapB?.slice() },
        { signal },
      );
      return error;
    },
  };
}
