/**
 * The error a format makes on given rows, measured by quantizing and dequantizing them. The sweep
 * talks to a `QuantErrorOracle`: the TypeScript twins here, or the kernel in the worker pool
 * (src/kernel/quant-error.ts), which give the same numbers.
 */
import { QuantLensError } from '../errors';
import { dequantizeBlocks } from '../quant/dequant';
import { quantizeRows } from '../quant/ggml-quantize';
import { dequantizeRtn, quantizeRtn } from '../quant/rtn';
import type { QuantFormat } from './formats';

/** Per-row squared errors of one format on rows × cols values. */
export interface RowErrors {
  /** Σ_j w_j (x_j − x̂_j)² per row, w = the importance weights (1 without), over finite x. */
  sqErr: Float64Array;
  /** Largest |x − x̂| over finite x. */
  maxAbsErr: number;
}

export interface QuantErrorOracle {
  /**
   * Quantizes `values` (row-major rows × cols f32) to each of `formats` and back; `importance` (one
   * weight per column) weights the error and, for GGUF formats that use it, the quantization itself.
   * One result per format, in order.
   */
  measure(values: Float32Array, rows: number, cols: number, formats: readonly QuantFormat[], importance: Float32Array | undefined, signal?: AbortSignal): Promise<RowErrors[]>;
  /** How many measurements are worth running at once (the pool's size; 1 in-thread). */
  readonly parallelism: number;
}

/** Squared and max errors of a reconstruction, per row, weighted per column. */
export function rowErrors(x: Float32Array, xhat: Float32Array, rows: number, cols: number, importance: Float32Array | undefined): RowErrors {
  const sqErr = new Float64Array(rows);
  let maxAbsErr = 0;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const o = r * cols;
    for (let j = 0; j < cols; j++) {
      const v = x[o + j];
      if (!Number.isFinite(v)) continue;
      const d = v - xhat[o + j];
      const a = Math.abs(d);
      if (a > maxAbsErr) maxAbsErr = a;
      s += importance ? importance[j] * d * d : d * d;
    }
    sqErr[r] = s;
  }
  return { sqErr, maxAbsErr };
}

/** Quantize-dequantize of rows with the plain TypeScript quantizers. */
export function reconstructWithTwins(values: Float32Array, rows: number, cols: number, format: QuantFormat, importance: Float32Array | undefined): Float32Array {
  if (values.length !== rows * cols) throw new QuantLensError('INTERNAL', `${values.length} values for ${rows} × ${cols}`);
  if (format.target === 'gguf') {
    const blocks = quantizeRows(format.name, values, rows, cols, importance);
    const out = new Float32Array(rows * cols);
    dequantizeBlocks(format.name, blocks, out);
    return out;
  }
  return dequantizeRtn(quantizeRtn(values, rows, cols, format.scheme));
}

/** The twins, in the calling thread: the reference, and the fallback where no kernel is built. */
export const twinOracle: QuantErrorOracle = {
  parallelism: 1,
  async measure(values, rows, cols, formats, importance) {
    return formats.map((f) => rowErrors(values, reconstructWithTwins(values, rows, cols, f, importance), rows, cols, importance));
  },
};
