/**
 * Worker side of the `quantizeRtn` job: one tensor's rows quantized with an RTN scheme (the
 * safetensors writers' int/NF4/FP8 schemes) in the kernel, so the extension host's event loop only
 * moves bytes. The result is the twin's RtnTensor, bit for bit (src/kernel/rtn.ts).
 */
import type { RtnTensor } from '../core/quant/rtn';
import type { QuantScheme } from '../core/quant/scheme';
import type { RtnQuantizer } from '../core/quantize/to-safetensors';
import { Transfer } from '../shared/rpc';
import type { JobContext } from './jobs';
import type { KernelPool } from './pool';
import { quantizeRtnWithKernel } from './rtn';

export interface QuantizeRtnJob {
  values: Float32Array;
  rows: number;
  cols: number;
  scheme: QuantScheme;
}

export async function runQuantizeRtnJob(job: QuantizeRtnJob, ctx: JobContext): Promise<Transfer<RtnTensor>> {
  const t = quantizeRtnWithKernel(ctx.kernel, job.values, job.rows, job.cols, job.scheme);
  const buffers = [t.q, t.scales, t.zeroPoints].flatMap((a) => (a ? [a.buffer as ArrayBuffer] : []));
  return new Transfer(t, [...new Set(buffers)]);
}

/** An RtnQuantizer running each tensor as a job on `pool` (cancelled with `signal`). */
export function poolRtnQuantizer(pool: KernelPool, signal?: AbortSignal): RtnQuantizer {
  return async (x, rows, cols, scheme) => {
    const values = x.slice(0, rows * cols); // the writer may read x again: move a copy
    return pool.run('quantizeRtn', { values, rows, cols, scheme }, { signal, transfer: [values.buffer] });
  };
}
