import { elementCount, type ModelInfo } from '../src/core/model';
import { openModel } from '../src/core/readers';
import { sweepSensitivity } from '../src/core/sensitivity';
import type { SensitivityResult } from '../src/core/sensitivity/types';
import { KernelPool } from '../src/kernel/pool';
import { poolSweepRunner } from '../src/kernel/pool-sensitivity';
import { generatedModel, printTable } from './common';

/** A full sweep longer than this is extrapolated from a measured subset rather than run. */
const FULL_SWEEP_RUN_LIMIT_S = 600;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
}

function measuredValues(r: SensitivityResult): number {
  return r.tensors.reduce((s, t) => s + (t.quantizable ? t.sampledRows * t.shape[t.shape.length - 1] : 0), 0);
}

/**
 * Sensitivity sweep of the generated ~1.1 B-parameter Llama (BF16) over the default GGUF candidates
 * in the kernel pool: the sampled sweep (goal < 60 s), and the full sweep's time, run when it fits in
 * ten minutes, else extrapolated from a full sweep of layer 0 plus the embedding and the output.
 */
export async function benchSensitivity(): Promise<void> {
  const path = generatedModel('llama-1b');
  const model = await openModel(path);
  const pool = new KernelPool();
  const runner = poolSweepRunner(pool, path);
  const rows: Array<Array<string | number>> = [];
  try {
    const t0 = performance.now();
    const sampled = await sweepSensitivity(model, { runner });
    const sampledS = (performance.now() - t0) / 1000;
    const quantizable = sampled.tensors.filter((t) => t.quantizable);
    const params = quantizable.reduce((s, t) => s + t.params, 0);
    const bounds = quantizable.flatMap((t) => Object.values(t.errors).flatMap((e) => (e && e.relMse > 0 ? [e.relMseBound / e.relMse] : [])));
    rows.push([
      `sampled (${quantizable.length} tensors, ${(measuredValues(sampled) / 1e6).toFixed(1)} M of ${(params / 1e9).toFixed(2)} G values)`,
      sampledS,
      `${sampledS < 60 ? 'meets' : 'misses'} < 60 s`,
    ]);
    rows.push([`  median 95% bound, relative to relMSE`, '', `±${(median(bounds) * 100).toFixed(1)}%`]);

    // The subset: layer 0's matrices, the embedding and the output (every shape of the model).
    const subsetTensors = model.tensors.filter((t) => t.shape.length === 2 && (/layers\.0\./.test(t.name) || /embed_tokens|lm_head/.test(t.name)));
    const subset: ModelInfo = { ...model, tensors: subsetTensors };
    const subsetValues = subsetTensors.reduce((s, t) => s + elementCount(t.shape), 0);
    const t1 = performance.now();
    const subsetFull = await sweepSensitivity(subset, { runner, sampleElements: null });
    const subsetS = (performance.now() - t1) / 1000;
    const perValue = subsetS / subsetValues;
    const extrapolated = perValue * params;
    rows.push([`full, measured subset (${subsetTensors.length} tensors, ${(subsetValues / 1e6).toFixed(0)} M values)`, subsetS, `${((perValue * 1e9) / sampled.types.length).toFixed(1)} ns/value/format`]);
    // How far the sampled estimates are from the full values on the subset.
    const deviations = subsetFull.tensors.flatMap((t) => {
      const s = sampled.tensors.find((x) => x.name === t.name)!;
      return Object.entries(t.errors).flatMap(([ty, e]) => (e && s.errors[ty] && e.relMse > 0 ? [Math.abs(s.errors[ty]!.relMse - e.relMse) / e.relMse] : []));
    });
    rows.push([`  sampled vs full on the subset, median |relative difference|`, '', `${(median(deviations) * 100).toFixed(2)}%`]);
    if (extrapolated <= FULL_SWEEP_RUN_LIMIT_S) {
      const t2 = performance.now();
      await sweepSensitivity(model, { runner, sampleElements: null });
      rows.push(['full sweep (every row of every tensor)', (performance.now() - t2) / 1000, 'measured']);
    } else {
      rows.push(['full sweep (every row of every tensor)', extrapolated, `extrapolated from the subset (> ${FULL_SWEEP_RUN_LIMIT_S / 60} min, not run)`]);
    }
  } finally {
    pool.dispose();
  }
  printTable(`Sensitivity sweep, generated llama-1b (BF16), ${pool.size} workers, default GGUF candidates`, ['sweep', 'seconds', 'note'], rows);
}
