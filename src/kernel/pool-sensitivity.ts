/**
 * The sensitivity sweep in the kernel pool: the tensors are split into groups of about equal work,
 * one `sensitivity` job per group (src/kernel/sensitivity-job.ts), so reading, decoding and measuring
 * all happen in workers; the host only plans, merges the streamed results and aggregates them.
 */
import type { SweepRunner, SweepTensor } from '../core/sensitivity/sweep';
import type { TensorSensitivity } from '../core/sensitivity/types';
import type { KernelPool } from './pool';
import type { SensitivityJobTensor } from './sensitivity-job';

/** Groups per worker: more than one, so a worker that finishes early takes the next group. */
const GROUPS_PER_WORKER = 4;

/**
 * A sweep runner measuring in `pool`'s workers; `path` is the checkpoint (file, index or folder) the
 * sweep's model was opened from, which each worker opens itself.
 */
export function poolSweepRunner(pool: KernelPool, path: string): SweepRunner {
  return async (_model, tensors, hooks) => {
    if (tensors.length === 0) return;
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    hooks.signal?.addEventListener('abort', stop, { once: true });
    const target = tensors[0].formats[0].target;
    try {
      await Promise.all(
        groupsByWork(tensors, pool.size * GROUPS_PER_WORKER).map(async (group) => {
          const byName = new Map(group.map((t) => [t.tensor.name, t]));
          const measured = (r: TensorSensitivity): void => {
            const t = byName.get(r.name);
            if (!t) return;
            byName.delete(r.name); // streamed once, then again in the reply
            t.result.errors = r.errors;
            t.result.sampledRows = r.sampledRows;
            hooks.onTensor(t);
          };
          let reported = 0;
          try {
            const reply = await pool.run('sensitivity', { path, target, tensors: group.map(jobTensor) }, {
              signal: controller.signal,
              onProgress: (done) => {
                hooks.onWork(done - reported);
                reported = done;
              },
              onPartial: measured,
            });
            for (const r of reply) measured(r);
          } catch (err) {
            controller.abort(); // one failing group stops the others
            throw err;
          }
        }),
      );
    } finally {
      hooks.signal?.removeEventListener('abort', stop);
    }
  };
}

function jobTensor(t: SweepTensor): SensitivityJobTensor {
  return { result: t.result, formats: t.formats.map((f) => f.name), sample: t.sample, importance: t.importance };
}

/** `tensors` (largest first) dealt into at most `count` groups, each to the lightest so far; heaviest group first. */
export function groupsByWork(tensors: readonly SweepTensor[], count: number): SweepTensor[][] {
  const n = Math.max(1, Math.min(count, tensors.length));
  const groups = Array.from({ length: n }, () => ({ work: 0, tensors: [] as SweepTensor[] }));
  for (const t of tensors) {
    let lightest = groups[0];
    for (const g of groups) if (g.work < lightest.work) lightest = g;
    lightest.tensors.push(t);
    lightest.work += t.work;
  }
  return groups.sort((a, b) => b.work - a.work).map((g) => g.tensors);
}
