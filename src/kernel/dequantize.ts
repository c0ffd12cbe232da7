// TypeScript binding of the kernel's ggml dequantizers (src/kernel/assembly/dequant.ts).
import { DTYPES, type DType } from '../core/dtypes';
import { QuantLensError } from '../core/errors';
import { isDequantizable } from '../core/quant/dequant';
import { alignUp, type KernelInstance } from './wasm';

/**
 * Dequantizes `blocks` blocks of `dtype` already in kernel memory at `src` into f32 at `dst`
 * (both byte addresses at or above `kernel.heapBase`, `dst` 4-byte aligned). Returns the number of values.
 */
export function dequantizeInPlace(kernel: KernelInstance, dtype: DType, src: number, dst: number, blocks: number): number {
  const id = isDequantizable(dtype) ? DTYPES[dtype].ggmlId : undefined;
  if (id === undefined) throw new QuantLensError('UNSUPPORTED', `no dequantizer for ${dtype}`);
  const written = kernel.exports.dequantizeBlocks!(id, src, dst, blocks);
  if (written < 0) throw new QuantLensError('INTERNAL', `the kernel has no dequantizer for ${dtype}`);
  return written;
}

/**
 * Dequantizes whole blocks of `dtype` from `bytes` into `out` through the kernel: the same contract
 * as the twin `dequantizeBlocks` of src/core/quant/dequant.ts, and the same bits.
 */
export function dequantizeWithKernel(kernel: KernelInstance, dtype: DType, bytes: Uint8Array, out: Float32Array): void {
  if (!isDequantizable(dtype)) throw new QuantLensError('UNSUPPORTED', `no dequantizer for ${dtype}`);
  const { blockSize, bytesPerBlock } = DTYPES[dtype];
  if (bytes.length % bytesPerBlock !== 0) {
    throw new QuantLensError('SIZE_MISMATCH', `${bytes.length} bytes is not a whole number of ${dtype} blocks (${bytesPerBlock} bytes)`);
  }
  const blocks = bytes.length / bytesPerBlock;
  const values = blocks * blockSize;
  if (out.length < values) {
    throw new QuantLensError('SIZE_MISMATCH', `${blocks} ${dtype} blocks need ${values} values, the output holds ${out.length}`);
  }
  const src = kernel.heapBase;
  const dst = src + alignUp(bytes.length, 64);
  let memory = kernel.ensure(dst + values * 4);
  memory.set(bytes, src);
  dequantizeInPlace(kernel, dtype, src, dst, blocks);
  memory = kernel.bytes();
  out.set(new Float32Array(memory.buffer, dst, values));
}
