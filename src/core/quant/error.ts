/**
 * The error of a quantization: the source values against their dequantized values, accumulated
 * in f64 over finite source values (a NaN or ±Inf source has no meaningful error).
 */
import { QuantLensError } from '../errors';
import { dequantizeBlocks } from './dequant';
import { type GgufQuantType, quantizeRows } from './ggml-quantize';

export interface QuantError {
  /** Finite source values compared. */
  count: number;
  /** Σ (x − x̂)². */
  sumSquaredError: number;
  /** max |x − x̂|. */
  maxAbsError: number;
  /** Σ x². */
  signalEnergy: number;
  /** 10·log10(Σ x² / Σ (x − x̂)²) in dB; null when lossless (no error to compare with). */
  sqnrDb: number | null;
}

/** Error of `dequantized` against `source` over the element range [start, end). */
export function quantizationError(source: Float32Array, dequantized: Float32Array, start = 0, end = source.length): QuantError {
  if (start < 0 || end > source.length || end > dequantized.length || start > end) {
    throw new QuantLensError('SIZE_MISMATCH', `range [${start}, ${end}) is outside ${source.length} source / ${dequantized.length} dequantized values`);
  }
  let count = 0;
  let sse = 0;
  let maxAbs = 0;
  let energy = 0;
  for (let i = start; i < end; i++) {
    const x = source[i]!;
    if (!Number.isFinite(x)) continue;
    const e = x - dequantized[i]!;
    count++;
    sse += e * e;
    energy += x * x;
    const a = Math.abs(e);
    if (a > maxAbs || Number.isNaN(a)) maxAbs = a;
  }
  return { count, sumSquaredError: sse, maxAbsError: maxAbs, signalEnergy: energy, sqnrDb: sse > 0 || Number.isNaN(sse) ? 10 * Math.log10(energy / sse) : null };
}

/** Quantizes rows × cols values to `type` (twin), dequantizes them and measures the error. */
export function ggmlQuantizationError(type: GgufQuantType, src: Float32Array, rows: number, cols: number, imatrix?: Float32Array): QuantError {
  const blocks = quantizeRows(type, src, rows, cols, imatrix);
  const deq = new Float32Array(rows * cols);
  dequantizeBlocks(type, blocks, deq);
  return quantizationError(src, deq, 0, rows * cols);
}
