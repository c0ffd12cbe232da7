import { DTYPES } from '../src/core/dtypes';
import { DEQUANTIZABLE_DTYPES, dequantizeBlocks } from '../src/core/quant/dequant';
import { dequantizeInPlace } from '../src/kernel/dequantize';
import { alignUp, instantiateKernel } from '../src/kernel/wasm';
import { medianMs, printTable } from './common';

/**
 * ns/element of dequantizing each ggml block type to f32, one thread: the kernel on blocks already in
 * its memory against the plain TypeScript twin, over 1 Mi values of random blocks.
 */
export async function benchDequant(): Promise<void> {
  const values = 1 << 20;
  const kernel = instantiateKernel(64 << 20);
  const rows: Array<Array<string | number>> = [];
  for (const dtype of DEQUANTIZABLE_DTYPES) {
    const { blockSize, bytesPerBlock } = DTYPES[dtype];
    const blocks = values / blockSize;
    const bytes = new Uint8Array(blocks * bytesPerBlock);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
    // keep f16 scales finite and small: clear the exponent's top bit of every other byte pair
    for (let i = 1; i < bytes.length; i += 2) bytes[i]! &= 0x3b;
    const src = kernel.heapBase;
    const dst = src + alignUp(bytes.length, 64);
    kernel.ensure(dst + values * 4).set(bytes, src);
    const kernelMs = await medianMs(7, async () => dequantizeInPlace(kernel, dtype, src, dst, blocks));
    const out = new Float32Array(values);
    const twinMs = await medianMs(3, async () => dequantizeBlocks(dtype, bytes, out));
    const k = (kernelMs * 1e6) / values;
    const t = (twinMs * 1e6) / values;
    rows.push([dtype, k, t, t / k]);
  }
  printTable('ggml dequantization to f32, 1 Mi values, 1 thread', ['type', 'kernel ns/el', 'twin ns/el', 'speed-up'], rows);
}
