/**
 * Worker side of the `quantizeRows` job: a range of a tensor's rows read straight into kernel
 * memory, decoded or dequantized to f32 there, and converted to the output type (a GGUF block type
 * by the kernel quantizers, or F32/F16/BF16). The bytes are the twin's (src/core/quant/ggml-quantize.ts).
 */
import { DTYPES, type DType } from '../core/dtypes';
import { QuantLensError, throwIfAborted } from '../core/errors';
import { f32ToBf16, f32ToF16 } from '../core/quant/fp16';
import { checkFiniteSource, isGgufQuantType, quantUsesImatrix } from '../core/quant/ggml-quantize';
import { Transfer } from '../shared/rpc';
import type { ByteInput, JobContext } from './jobs';
import { quantizeInPlace, quantScratchBytes } from './quantize';
import { InputReader, ValueChunks } from './stats-job';

export interface QuantizeRowsJob {
  /** For messages: the tensor's name. */
  name: string;
  /** The stored type of the input rows. */
  dtype: DType;
  rows: number;
  cols: number;
  /** For messages: the tensor row these rows start at. */
  firstRow?: number;
  input: ByteInput;
  /** The output type: a GGUF block type, or F32/F16/BF16. */
  target: DType;
  /** One importance weight per column (used by the types libggml uses it for). */
  importance?: Float32Array;
}

/** Output bytes per row of `cols` values of `target`. */
export function outputRowBytes(target: DType, cols: number): number {
  const t = DTYPES[target];
  return (cols / t.blockSize) * t.bytesPerBlock;
}

/** Values converted per kernel call: bounded so memory stays small whatever the range. */
const CHUNK_VALUE_BYTES = 16 << 20;

export async function runQuantizeRowsJob(job: QuantizeRowsJob, ctx: JobContext): Promise<Transfer<Uint8Array>> {
  const { rows, cols, target } = job;
  const quantized = isGgufQuantType(target);
  if (!quantized && target !== 'F32' && target !== 'F16' && target !== 'BF16') {
    throw new QuantLensError('UNSUPPORTED', `no kernel writes ${target}`, { tensor: job.name });
  }
  if (cols % DTYPES[target].blockSize !== 0) {
    throw new QuantLensError('INVALID_SHAPE', `rows of ${cols} are not whole ${target} blocks`, { tensor: job.name });
  }
  const rowBytes = outputRowBytes(target, cols);
  const out = new Uint8Array(rows * rowBytes);
  const reader = await InputReader.open(ctx.kernel, job.input);
  try {
    const chunks = new ValueChunks(ctx, reader, job.name, job.dtype, rows * cols, 'f32', CHUNK_VALUE_BYTES, cols);
    const scratch = quantized ? ctx.arena.take(quantScratchBytes(ctx.kernel)) : 0;
    const useWeights = quantized && job.importance !== undefined && quantUsesImatrix(target);
    const qw = useWeights ? ctx.arena.take(cols * 4) : 0;
    if (useWeights) new Float32Array(ctx.kernel.memory.buffer, qw, cols).set(job.importance!);
    const dst = quantized ? ctx.arena.take((chunks.chunkElements / cols) * rowBytes) : 0;
    for (let c = 0; c < chunks.chunks; c++) {
      throwIfAborted(ctx.signal);
      const n = await chunks.load(c);
      const r = n / cols;
      const at = (chunks.start(c) / cols) * rowBytes;
      if (quantized) {
        checkFiniteSource(new Float32Array(ctx.kernel.memory.buffer, chunks.values, n), job.name, target, (job.firstRow ?? 0) * cols + chunks.start(c));
        quantizeInPlace(ctx.kernel, target, chunks.values, dst, r, cols, qw, scratch);
        out.set(new Uint8Array(ctx.kernel.memory.buffer, dst, r * rowBytes), at);
      } else {
        const values = new Float32Array(ctx.kernel.memory.buffer, chunks.values, n);
        if (target === 'F32') out.set(new Uint8Array(values.buffer, values.byteOffset, n * 4), at);
        else {
          const convert = target === 'F16' ? f32ToF16 : f32ToBf16;
          const half = new Uint16Array(out.buffer, at, n);
          for (let i = 0; i < n; i++) half[i] = convert(values[i]);
        }
      }
      ctx.progress(chunks.start(c) + n, rows * cols);
    }
  } finally {
    await reader.close();
  }
  return new Transfer(out, [out.buffer as ArrayBuffer]);
}
