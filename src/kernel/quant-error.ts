/**
 * The sensitivity sweep's measurements in the kernel: quantize-dequantize of rows for several
 * formats in one job (the rows cross to the worker once), run on the worker pool. The numbers equal
 * the twins' (src/core/sensitivity/quant-error.ts): the kernels are bit-exact with them.
 */
import { QuantLensError } from '../core/errors';
import { quantFormat, type QuantFormat, type QuantTarget } from '../core/sensitivity/formats';
import { rowErrors, type QuantErrorOracle, type RowErrors } from '../core/sensitivity/quant-error';
import { Transfer } from '../shared/rpc';
import { dequantizeWithKernel } from './dequantize';
import type { JobContext } from './jobs';
import type { KernelPool } from './pool';
import { quantizeWithKernel } from './quantize';
import { dequantizeRtnWithKernel, quantizeRtnWithKernel } from './rtn';
import type { KernelInstance } from './wasm';

/** Rows to measure against several formats. */
export interface QuantErrorJob {
  target: QuantTarget;
  formats: string[];
  rows: number;
  cols: number;
  values: Float32Array;
  /** One weight per column, or none. */
  importance?: Float32Array;
}

export interface QuantErrorReply {
  /** Per format, Σ w (x − x̂)² per row. */
  sqErr: Float64Array[];
  maxAbsErr: number[];
}

/** Quantize-dequantize in the kernel (FP8 dequantization runs the twin, as src/kernel/rtn.ts does). */
export function reconstructWithKernel(kernel: KernelInstance, values: Float32Array, rows: number, cols: number, format: QuantFormat, importance: Float32Array | undefined): Float32Array {
  if (format.target === 'gguf') {
    const blocks = quantizeWithKernel(kernel, format.name, values, rows, cols, importance);
    const out = new Float32Array(rows * cols);
    dequantizeWithKernel(kernel, format.name, blocks, out);
    return out;
  }
  return dequantizeRtnWithKernel(kernel, quantizeRtnWithKernel(kernel, values, rows, cols, format.scheme));
}

/** Worker side of the `quantError` job. */
export async function runQuantErrorJob(job: QuantErrorJob, ctx: JobContext): Promise<Transfer<QuantErrorReply>> {
  if (job.values.length !== job.rows * job.cols || (job.importance && job.importance.length !== job.cols)) {
    throw new QuantLensError('SIZE_MISMATCH', `${job.values.length} values and ${job.importance?.length ?? 0} weights for ${job.rows} × ${job.cols}`);
  }
  const sqErr: Float64Array[] = [];
  const maxAbsErr: number[] = [];
  for (const name of job.formats) {
    if (ctx.signal.aborted) throw new QuantLensError('CANCELLED', 'cancelled');
    const format = quantFormat(name, job.target);
    const e = rowErrors(job.values, reconstructWithKernel(ctx.kernel, job.values, job.rows, job.cols, format, job.importance), job.rows, job.cols, job.importance);
    sqErr.push(e.sqErr);
    maxAbsErr.push(e.maxAbsErr);
    ctx.progress(sqErr.length, job.formats.length);
  }
  return new Transfer({ sqErr, maxAbsErr }, sqErr.map((a) => a.buffer as ArrayBuffer));
}

/** An oracle over a kernel instance in this thread (a worker's own: the `sensitivity` job). */
export function kernelQuantErrorOracle(kernel: KernelInstance): QuantErrorOracle {
  return {
    parallelism: 1,
    async measure(values, rows, cols, formats, importance, signal): Promise<RowErrors[]> {
      return formats.map((f) => {
        if (signal?.aborted) throw new QuantLensError('CANCELLED', 'cancelled');
        return rowErrors(values, reconstructWithKernel(kernel, values, rows, cols, f, importance), rows, cols, importance);
      });
    },
  };
}

/** An oracle running each measurement as a job on `pool`. */
export function poolQuantErrorOracle(pool: KernelPool): QuantErrorOracle {
  return {
    parallelism: pool.size,
    async measure(values, rows, cols, formats, importance, signal): Promise<RowErrors[]> {
      if (formats.length === 0) return [];
      // The sweep hands views into its buffers: copy, then move the copies to the worker.
      const v = values.slice();
      const w = importance?.slice();
      const reply = await pool.run(
        'quantError',
        { target: formats[0].target, formats: formats.map((f) => f.name), rows, cols, values: v, importance: w },
        { signal, transfer: w ? [v.buffer, w.buffer] : [v.buffer] },
      );
      return reply.sqErr.map((sqErr, i) => ({ sqErr, maxAbsErr: reply.maxAbsErr[i] }));
    },
  };
}
