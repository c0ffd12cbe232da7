import { bitsPerElement } from '../src/core/dtypes';
import { GGUF_QUANT_TYPES, quantUsesImatrix, quantizeRows, quantizedRowBytes } from '../src/core/quant/ggml-quantize';
import { quantScratchBytes, quantizeInPlace } from '../src/kernel/quantize';
import { KernelPool } from '../src/kernel/pool';
import { alignUp, instantiateKernel } from '../src/kernel/wasm';
import { benchWeights, medianMs, printTable } from './common';

/**
 * ns/element of every GGUF quantizer: through the pool with 2 workers (f32 rows in, blocks out), and
 * one thread: the kernel on rows already in wasm memory
 * (512 × 1024 f32) against the TypeScript twin (on the first 16 rows, JIT warmed: it is slow), without and
 * with importance weights; the ratio is the kernel's speed-up.
 */
export async function benchQuantize(): Promise<void> {
  const rows = 512;
  const twinRows = 16;
  const cols = 1024;
  const x = benchWeights(rows, cols);
  const imatrix = Float32Array.from({ length: cols }, (_, j) => 0.5 + ((j * 7919) % 1000) / 1000);
  const kernel = instantiateKernel(64 << 20);
  const scratch = kernel.heapBase;
  const qw = scratch + alignUp(quantScratchBytes(kernel), 64);
  const src = qw + cols * 4;
  const dst = src + rows * cols * 4;
  const memory = kernel.ensure(dst + rows * quantizedRowBytes('Q8_0', cols));
  new Float32Array(memory.buffer, qw, cols).set(imatrix);
  new Float32Array(memory.buffer, src, rows * cols).set(x);
  const table: Array<Array<string | number>> = [];
  // The whole path with 2 workers: f32 rows sent to the pool (quantizeRows jobs), one range per worker.
  const pool = new KernelPool({ size: 2 });
  const bytes = new Uint8Array(x.buffer);
  const half = (rows / 2) * cols * 4;
  const poolRun = (type: (typeof GGUF_QUANT_TYPES)[number]) =>
    Promise.all([0, 1].map((k) => pool.run('quantizeRows', { name: 'bench', dtype: 'F32', rows: rows / 2, cols, input: { bytes: bytes.slice(k * half, (k + 1) * half) }, target: type })));
  for (const type of GGUF_QUANT_TYPES) {
    await poolRun(type); // start the workers and warm them
    const poolNs = ((await medianMs(3, () => poolRun(type))) * 1e6) / (rows * cols);
    const row: Array<string | number> = [type, poolNs];
    for (const imat of quantUsesImatrix(type) ? [false, true] : [false]) {
      const kernelMs = await medianMs(3, async () => quantizeInPlace(kernel, type, src, dst, rows, cols, imat ? qw : 0, scratch));
      quantizeRows(type, x, 4, cols, imat ? imatrix : undefined); // warm the JIT
      const twinMs = await medianMs(3, async () => quantizeRows(type, x, twinRows, cols, imat ? imatrix : undefined));
      const kernelNs = (kernelMs * 1e6) / (rows * cols);
      const twinNs = (twinMs * 1e6) / (twinRows * cols);
      row.push(kernelNs, twinNs, twinNs / kernelNs);
    }
    if (row.length === 5) row.push('(ignored)', '', '');
    table.push(row);
  }
  pool.dispose();
  printTable(
    `GGUF quantizers, ${rows} × ${cols} f32, 1 thread, kernel vs TypeScript twin (bits: ${GGUF_QUANT_TYPES.map(bitsPerElement).join('/')})`,
    ['type', '2 workers ns/el', 'kernel ns/el', 'twin ns/el', 'speed-up', 'imatrix: kernel', 'twin', 'speed-up'],
    table,
  );
}
