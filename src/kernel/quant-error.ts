/**
 * The sensitivity sweep's measurements in the kernel: quantize-dequantize of rows for each format,
 * inside the worker running a `sensitivity` job (src/kernel/sensitivity-job.ts). The numbers equal
 * the twins' (src/core/sensitivity/quant-error.ts): the kernels are bit-exact with them.
 */
import { QuantLensError } from '../core/errors';
import type { QuantFormat } from '../core/sensitivity/formats';
import { rowErrors, type QuantErrorOracle, type RowErrors } from '../core/sensitivity/quant-error';
import { dequantizeWithKernel } from './dequantize';
import { quantizeWithKernel } from './quantize';
import { dequantizeRtnWithKernel, quantizeRtnWithKernel } from './rtn';
import type { KernelInstance } from './wasm';

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
