import { dequantizeRtn, quantizeRtn } from '../src/core/quant/rtn';
import { parseScheme } from '../src/core/quant/scheme';
import { quantizeRtnWithKernel } from '../src/kernel/rtn';
import { instantiateKernel } from '../src/kernel/wasm';
import { benchWeights, medianMs, printTable } from './common';

const SCHEMES = [
  'int8-ch-sym', 'int8-t-asym', 'int4-g32-sym', 'int4-g128-sym', 'int4-g128-asym', 'int4-g32-sym-mse', 'int4-g128-asym-mse',
  'nf4-g64', 'nf4-g64-dq', 'nf4-g64-mse', 'fp8-e4m3-ch',
];

/**
 * ns/element of each RTN scheme, one thread: the kernel through its binding (copies in and out
 * included) against the plain TypeScript twin, on a 1024 × 1024 f32 tensor; plus the error (SQNR).
 */
export async function benchRtn(): Promise<void> {
  const rows = 1024;
  const cols = 1024;
  const n = rows * cols;
  const x = benchWeights(rows, cols);
  const kernel = instantiateKernel(64 << 20);
  const table: Array<Array<string | number>> = [];
  for (const name of SCHEMES) {
    const scheme = parseScheme(name);
    const kernelMs = await medianMs(5, async () => quantizeRtnWithKernel(kernel, x, rows, cols, scheme));
    const twinMs = await medianMs(1, async () => quantizeRtn(x, rows, cols, scheme));
    const y = dequantizeRtn(quantizeRtnWithKernel(kernel, x, rows, cols, scheme));
    let signal = 0;
    let noise = 0;
    for (let i = 0; i < n; i++) {
      signal += x[i]! * x[i]!;
      noise += (x[i]! - y[i]!) ** 2;
    }
    const kernelNs = (kernelMs * 1e6) / n;
    const twinNs = (twinMs * 1e6) / n;
    table.push([name, kernelNs, twinNs, twinNs / kernelNs, 10 * Math.log10(signal / noise)]);
  }
  printTable(`RTN quantization, ${rows} × ${cols} f32, 1 thread (fp8: twin on both sides, no kernel yet)`,
    ['scheme', 'kernel ns/el', 'twin ns/el', 'speed-up', 'SQNR dB'], table);
}
