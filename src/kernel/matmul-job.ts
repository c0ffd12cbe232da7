/**
 * Worker side of the `matmul` job: a range of a weight's rows read straight into kernel memory,
 * decoded or dequantized to f32 there chunk by chunk, and multiplied with the activation rows
 * (y = x · wᵀ) by the SIMD kernel (assembly/matmul.ts; twin: matmulF32 in src/core/model/ops.ts).
 */
import type { DType } from '../core/dtypes';
import { throwIfAborted } from '../core/errors';
import { Transfer } from '../shared/rpc';
import type { ByteInput, JobContext } from './jobs';
import { InputReader, ValueChunks } from './stats-job';
import type { KernelInstance } from './wasm';

export interface MatmulJob {
  /** For messages: the weight's name. */
  name: string;
  /** The stored type of the weight rows. */
  dtype: DType;
  /** Rows of the weight in `input` (outputs), and their length (inputs). */
  rows: number;
  cols: number;
  input: ByteInput;
  /** Activations [n, cols]. */
  x: Float32Array;
  n: number;
}

/** Weight bytes decoded per kernel call. */
const CHUNK_VALUE_BYTES = 8 << 20;

/** y[t, r] for rows of `w` at kernel address `w`, written with row stride `outStride` at `out`. */
export function matmulInKernel(kernel: KernelInstance, x: number, n: number, w: number, rows: number, cols: number, out: number, outStride: number): void {
  kernel.exports.matmulF32!(x, n, w, rows, cols, out, outStride);
}

export async function runMatmulJob(job: MatmulJob, ctx: JobContext): Promise<Transfer<Float32Array>> {
  const { rows, cols, n } = job;
  const reader = await InputReader.open(ctx.kernel, job.input);
  try {
    const chunks = new ValueChunks(ctx, reader, job.name, job.dtype, rows * cols, 'f32', CHUNK_VALUE_BYTES, cols);
    const x = ctx.arena.take(n * cols * 4);
    const out = ctx.arena.take(n * rows * 4);
    new Float32Array(ctx.kernel.memory.buffer, x, n * cols).set(job.x);
    for (let c = 0; c < chunks.chunks; c++) {
      throwIfAborted(ctx.signal);
      const count = await chunks.load(c);
      const first = chunks.start(c) / cols;
      matmulInKernel(ctx.kernel, x, n, chunks.values, count / cols, cols, out + first * 4, rows);
      ctx.progress(chunks.start(c) + count, rows * cols);
    }
    const y = new Float32Array(ctx.kernel.memory.buffer, out, n * rows).slice();
    return new Transfer(y, [y.buffer as ArrayBuffer]);
  } finally {
    await reader.close();
  }
}
