/**
 * The OnnxRunner of core/onnx on the kernel pool: samples split into contiguous runs, one job per
 * worker, results merged in sample order (so lane sums add up in the order one worker would use);
 * and the host side of the quantizeOnnx and calibration-set jobs (onnx-quantize-job.ts).
 */
import { stat } from 'node:fs/promises';
import { AtomicOutput } from '../core/atomic-output';
import { QuantLensError } from '../core/errors';
import type { InputSpec } from '../core/onnx/feeds';
import type { OnnxQuantizeOptions, OnnxQuantizeResult } from '../core/onnx/quantize';
import type { CalibrationSet, SampleOptions } from '../core/onnx/samples';
import { mergeMoments, mergeScans, type MomentAccumulator, type MomentParams } from '../core/onnx/activation-stats';
import type { OnnxFeed, Sample } from '../core/onnx/feeds';
import type { ModelBytes, OnnxRunner, RunnerOptions, ScanResult } from '../core/onnx/runner';
import type { KernelPool } from './pool';

/** Contiguous runs of samples, at most one per worker. */
function splitSamples(samples: readonly Sample[], parts: number): Array<{ first: number; samples: Sample[] }> {
  const n = Math.max(1, Math.min(parts, samples.length));
  const runs: Array<{ first: number; samples: Sample[] }> = [];
  for (let k = 0; k < n; k++) {
    const first = Math.floor((k * samples.length) / n);
    const end = Math.floor(((k + 1) * samples.length) / n);
    if (end > first) runs.push({ first, samples: samples.slice(first, end) });
  }
  return runs;
}

/** Progress across parallel jobs as one count of samples. */
function progressOf(total: number, options: RunnerOptions): (k: number) => (done: number) => void {
  const done: number[] = [];
  return (k) => (d) => {
    done[k] = d;
    options.onProgress?.(done.reduce((a, b) => a + (b ?? 0), 0), total);
  };
}

export function poolOnnxRunner(pool: KernelPool): OnnxRunner {
  return {
    async scan(model: ModelBytes, samples: readonly Sample[], outputs: readonly string[], channelAxes: Record<string, number>, options: RunnerOptions = {}): Promise<ScanResult> {
      const runs = splitSamples(samples, pool.size);
      const report = progressOf(samples.length, options);
      const replies = await Promise.all(
        runs.map((r, k) =>
          pool.run(
            'onnxActivations',
            { model, samples: r.samples, outputs: [...outputs], pass: { kind: 'scan', channelAxes } },
            { signal: options.signal, onProgress: report(k) },
          ),
        ),
      );
      const result: ScanResult = { scans: {}, skipped: {} };
      for (const reply of replies) {
        if (reply.kind !== 'scan') continue;
        Object.assign(result.skipped, reply.skipped);
        for (const [name, acc] of Object.entries(reply.scans)) result.scans[name] = result.scans[name] ? mergeScans(result.scans[name]!, acc) : acc;
      }
      for (const name of Object.keys(result.skipped)) delete result.scans[name];
      return result;
    },

    async moments(
      model: ModelBytes,
      samples: readonly Sample[],
      params: Record<string, MomentParams>,
      elementsPerSample: Record<string, number>,
      options: RunnerOptions = {},
    ): Promise<Record<string, MomentAccumulator>> {
      const runs = splitSamples(samples, pool.size);
      const report = progressOf(samples.length, options);
      const outputs = Object.keys(params);
      const replies = await Promise.all(
        runs.map((r, k) => {
          const elementsBefore: Record<string, number> = {};
          for (const name of outputs) elementsBefore[name] = r.first * (elementsPerSample[name] ?? 0);
          return pool.run(
            'onnxActivations',
            { model, samples: r.samples, outputs, pass: { kind: 'moments', params, elementsBefore } },
            { signal: options.signal, onProgress: report(k) },
          );
        }),
      );
      const merged: Record<string, MomentAccumulator> = {};
      for (const reply of replies) {
        if (reply.kind !== 'moments') continue;
        for (const [name, acc] of Object.entries(reply.moments)) merged[name] = merged[name] ? mergeMoments(merged[name]!, acc) : acc;
      }
      return merged;
    },

    async run(model: ModelBytes, samples: readonly Sample[], outputs?: readonly string[], options: RunnerOptions = {}): Promise<OnnxFeed[][]> {
      const runs = splitSamples(samples, pool.size);
      const report = progressOf(samples.length, options);
      const replies = await Promise.all(
        runs.map((r, k) =>
          pool.run('onnxRun', { model, samples: r.samples, ...(outputs ? { outputs: [...outputs] } : {}) }, { signal: options.signal, onProgress: report(k) }),
        ),
      );
      return replies.flatMap((r) => r.outputs);
    },
  };
}

/**
 * quantizeOnnx in a kernel worker: the output's temporary file is created here and committed when
 * the job replies, removed when it fails or is cancelled (the pool then stops the worker).
 * `onProgress` counts steps: one per weight, one for writing.
 */
export async function quantizeOnnxInPool(pool: KernelPool, input: string, output: string, options: OnnxQuantizeOptions): Promise<OnnxQuantizeResult> {
  const { signal, onProgress, ...rest } = options;
  let size: number;
  try {
    size = (await stat(input)).size;
  } catch (err) {
    throw new QuantLensError('IO', `cannot read ${input}: ${(err as Error).message}`, { file: input, cause: err });
  }
  const out = await AtomicOutput.create(output, size);
  try {
    const result = await pool.run('quantizeOnnx', { input, tempPath: out.tempPath, options: rest }, { signal, onProgress });
    await out.commit();
    return { ...result, output };
  } catch (err) {
    await out.discard();
    throw err;
  }
}

/** loadCalibrationSet in a kernel worker (files read and decoded there); `onProgress` counts files. */
export function loadCalibrationSetInPool(pool: KernelPool, signature: readonly InputSpec[], paths: readonly string[], options: SampleOptions = {}): Promise<CalibrationSet> {
  const { signal, onProgress, ...rest } = options;
  return pool.run('onnxCalibrationSet', { signature: [...signature], paths: [...paths], options: rest }, { signal, onProgress });
}
