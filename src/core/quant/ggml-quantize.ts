/**
 * GGUF quantization in plain TypeScript: the reference twins of libggml's quantizers, byte-exact
 * with `ggml_quantize_chunk` (ggml.c) and the test oracle of the WebAssembly kernels.
 * Rows are independent: each row of `cols` values becomes `cols / blockSize` blocks.
 */
import { DTYPES } from '../dtypes';
import { QuantLensError } from '../errors';
import { quantizeRowIQ4_NL, quantizeRowIQ4_XS } from './ggml-iq4';
import { quantizeRowQ2_K, quantizeRowQ3_K, quantizeRowQ4_K, quantizeRowQ5_K, quantizeRowQ6_K } from './ggml-kquants';
import { quantizeRowQ4_0, quantizeRowQ4_1, quantizeRowQ5_0, quantizeRowQ5_1, quantizeRowQ8_0 } from './ggml-legacy';
import { quantizeRowMXFP4 } from './ggml-mxfp4';
import { quantizeRowTQ1_0, quantizeRowTQ2_0 } from './ggml-ternary';

export type GgufQuantType =
  | 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1'
  | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K'
  | 'TQ1_0' | 'TQ2_0' | 'IQ4_NL' | 'IQ4_XS' | 'MXFP4';

/** One row of `n` values at x[xo] into out[oo]; `qw` holds one importance weight per column. */
export type QuantizeRow = (x: Float32Array, xo: number, n: number, out: Uint8Array, oo: number, qw?: Float32Array) => void;

interface GgufQuantizer {
  row: QuantizeRow;
  /** Whether libggml's quantizer reads importance weights (Q8_0, TQ1_0, TQ2_0, MXFP4 ignore them). */
  usesImatrix: boolean;
}

const QUANTIZERS = {
  Q8_0: { row: quantizeRowQ8_0, usesImatrix: false },
  Q4_0: { row: quantizeRowQ4_0, usesImatrix: true },
  Q4_1: { row: quantizeRowQ4_1, usesImatrix: true },
  Q5_0: { row: quantizeRowQ5_0, usesImatrix: true },
  Q5_1: { row: quantizeRowQ5_1, usesImatrix: true },
  Q2_K: { row: quantizeRowQ2_K, usesImatrix: true },
  Q3_K: { row: quantizeRowQ3_K, usesImatrix: true },
  Q4_K: { row: quantizeRowQ4_K, usesImatrix: true },
  Q5_K: { row: quantizeRowQ5_K, usesImatrix: true },
  Q6_K: { row: quantizeRowQ6_K, usesImatrix: true },
  TQ1_0: { row: quantizeRowTQ1_0, usesImatrix: false },
  TQ2_0: { row: quantizeRowTQ2_0, usesImatrix: false },
  IQ4_NL: { row: quantizeRowIQ4_NL, usesImatrix: true },
  IQ4_XS: { row: quantizeRowIQ4_XS, usesImatrix: true },
  MXFP4: { row: quantizeRowMXFP4, usesImatrix: false },
} as const satisfies Record<GgufQuantType, GgufQuantizer>;

export const GGUF_QUANT_TYPES = Object.keys(QUANTIZERS) as GgufQuantType[];

export function isGgufQuantType(name: string): name is GgufQuantType {
  return Object.prototype.hasOwnProperty.call(QUANTIZERS, name);
}

/**
 * Refuses source values a block quantizer cannot represent: a NaN or ±Inf in a block makes its
 * scale non-finite or its levels meaningless, so the whole block dequantizes to garbage
 * (llama-quantize's row validation rejects such output). The quantizers themselves stay libggml's
 * twins; the quantize pipeline calls this before them. `firstElement`: index of values[0] in the tensor.
 */
export function checkFiniteSource(values: Float32Array, tensor: string, target: string, firstElement = 0): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v - v !== 0) {
      throw new QuantLensError(
        'NON_FINITE',
        `${tensor} holds ${v} at element ${firstElement + i}, which ${target} cannot represent (the values quantized with it would be garbage); repair the checkpoint, or keep this tensor in float`,
        { tensor },
      );
    }
  }
}

/** Whether importance weights change the output of `type` (libggml ignores them for the others). */
export function quantUsesImatrix(type: GgufQuantType): boolean {
  return QUANTIZERS[type].usesImatrix;
}

/** Bytes of `rows` rows of `cols` values of `type`; throws unless `cols` is a whole number of blocks. */
export function quantizedRowBytes(type: GgufQuantType, cols: number): number {
  const t = DTYPES[type];
  if (!Number.isSafeInteger(cols) || cols <= 0 || cols % t.blockSize !== 0) {
    throw new QuantLensError('INVALID_SHAPE', `${type} needs rows of a positive multiple of ${t.blockSize} values, got ${cols}`);
  }
  return (cols / t.blockSize) * t.bytesPerBlock;
}

/**
 * Quantizes `rows` × `cols` f32 values (row-major) to `type`, as libggml's
 * `ggml_quantize_chunk(type, src, dst, 0, rows, cols, imatrix)` does. `imatrix` holds one
 * importance weight per column; it is ignored for the types libggml ignores it for.
 */
export function quantizeRows(type: GgufQuantType, src: Float32Array, rows: number, cols: number, imatrix?: Float32Array): Uint8Array {
  const rowBytes = quantizedRowBytes(type, cols);
  if (!Number.isSafeInteger(rows) || rows < 0 || rows * cols > src.length) {
    throw new QuantLensError('SIZE_MISMATCH', `${rows} rows of ${cols} values need ${rows * cols} values, got ${src.length}`);
  }
  if (imatrix && imatrix.length !== cols) {
    throw new QuantLensError('SIZE_MISMATCH', `importance weights: expected ${cols} (one per column), got ${imatrix.length}`);
  }
  const q = QUANTIZERS[type];
  const qw = q.usesImatrix ? imatrix : undefined;
  const out = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++) q.row(src, r * cols, cols, out, r * rowBytes, qw);
  return out;
}
