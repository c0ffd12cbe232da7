/**
 * Worker side of the `sensitivity` job: a group of tensors of one checkpoint measured by the core
 * sweep (src/core/sensitivity/sweep.ts `measureTensor`) inside the worker. The worker opens the
 * checkpoint and reads the rows itself, and quantizes and dequantizes them in its own kernel; each
 * tensor's result is streamed as a partial result as soon as it is complete.
 */
import { QuantLensError } from '../core/errors';
import type { ImportanceEntry } from '../core/imatrix';
import type { ModelInfo } from '../core/model';
import { nodeFileAccess } from '../core/readers/node-files';
import { quantFormat, type QuantTarget } from '../core/sensitivity/formats';
import { measureTensor, type SweepTensor } from '../core/sensitivity/sweep';
import type { TensorSensitivity } from '../core/sensitivity/types';
import { matrixShape } from '../core/tensor-rows';
import type { StreamingJobContext } from './jobs';
import { kernelQuantErrorOracle } from './quant-error';
import { workerTensor } from './worker-models';

/** One tensor to measure, as the host's sweep planned it. */
export interface SensitivityJobTensor {
  /** The result to fill: the tensor's name, shape and the formats (keys of `errors`) come from the host. */
  result: TensorSensitivity;
  /** Formats measured on this tensor (the applicable candidates). */
  formats: string[];
  /** Sorted rows to measure; null = every row. */
  sample: Int32Array | null;
  importance?: ImportanceEntry;
}

export interface SensitivityJob {
  /** The checkpoint (file, index or folder) as the host opened it. */
  path: string;
  target: QuantTarget;
  tensors: SensitivityJobTensor[];
}

/** The group's results, in the request's order (each was also streamed as a partial). */
export type SensitivityJobReply = TensorSensitivity[];
/** One tensor's complete result. */
export type SensitivityPartial = TensorSensitivity;

export async function runSensitivityJob(job: SensitivityJob, ctx: StreamingJobContext<SensitivityPartial>): Promise<SensitivityJobReply> {
  const oracle = kernelQuantErrorOracle(ctx.kernel);
  const planned: Array<{ model: ModelInfo; sweep: SweepTensor }> = [];
  let workTotal = 0;
  for (const t of job.tensors) {
    const { model, tensor } = await workerTensor(job.path, t.result.name, ctx.signal);
    if (tensor.shape.join() !== t.result.shape.join()) {
      throw new QuantLensError('SIZE_MISMATCH', `${tensor.name} is [${tensor.shape}] here, [${t.result.shape}] when the sweep was planned`, { tensor: tensor.name, file: job.path });
    }
    const { rows, cols } = matrixShape(tensor.shape);
    const formats = t.formats.map((f) => quantFormat(f, job.target));
    const work = (t.sample ? t.sample.length : rows) * cols * formats.length;
    workTotal += work;
    planned.push({ model, sweep: { tensor, rows, cols, formats, sample: t.sample, importance: t.importance, work, result: t.result } });
  }
  let workDone = 0;
  for (const { model, sweep } of planned) {
    await measureTensor(model, sweep, oracle, nodeFileAccess, ctx.signal, (work) => {
      workDone += work;
      ctx.progress(workDone, workTotal);
    });
    ctx.partial(sweep.result);
  }
  return planned.map((p) => p.sweep.result);
}
