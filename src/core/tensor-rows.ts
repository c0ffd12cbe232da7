import { readInto } from './bytesource';
import { DTYPES } from './dtypes';
import { QuantLensError, throwIfAborted } from './errors';
import { elementCount, type ModelInfo, type TensorInfo } from './model';
import { dequantizeBlocks, isDequantizable } from './quant/dequant';
import type { FileAccess } from './readers/types';
import { decodeToF32, isPlainDType } from './stats/decode';
import { readTensorBytes } from './tensordata';

export interface RowChunk {
  /** First row of the chunk. */
  row: number;
  rows: number;
  /** rows × cols values. */
  values: Float32Array;
}

/** A tensor as a matrix: the last dimension is the row (ggml's ne[0]), everything before it counts rows. */
export function matrixShape(shape: readonly number[]): { rows: number; cols: number } {
  if (shape.length === 0) return { rows: 1, cols: 1 };
  const cols = shape[shape.length - 1];
  return { rows: cols === 0 ? 0 : elementCount(shape) / cols, cols };
}

/** Default chunk: 4 Mi values (16 MB of f32), so memory stays bounded whatever the tensor's size. */
export const ROW_CHUNK_ELEMENTS = 1 << 22;

/**
 * Streams a tensor's rows as f32, decoding plain types and dequantizing ggml block types.
 * Raw tensors are read chunk by chunk; protobuf-encoded and strided ones are read whole first
 * (their readers bound them).
 */
export async function* tensorRowsF32(
  model: ModelInfo,
  tensor: TensorInfo,
  files: FileAccess,
  options: { maxElements?: number; signal?: AbortSignal } = {},
): AsyncGenerator<RowChunk> {
  if (tensor.encoding === 'quantized') {
    // a quantized layout's logical tensor (readers/quantized-layouts.ts)
    const { dequantizeLogicalRows } = await import('./readers/quantized-layouts');
    yield* dequantizeLogicalRows(model, tensor, files, { maxElements: options.maxElements ?? ROW_CHUNK_ELEMENTS, signal: options.signal });
    return;
  }
  const { rows, cols } = matrixShape(tensor.shape);
  const traits = DTYPES[tensor.dtype];
  if (cols % traits.blockSize !== 0) {
    throw new QuantLensError('INVALID_SHAPE', `rows of ${cols} are not whole ${tensor.dtype} blocks`, { tensor: tensor.name });
  }
  const rowBytes = (cols / traits.blockSize) * traits.bytesPerBlock;
  const rowsPerChunk = Math.max(1, Math.floor((options.maxElements ?? ROW_CHUNK_ELEMENTS) / Math.max(1, cols)));
  const whole = tensor.encoding === 'raw' ? undefined : await readTensorBytes(model, tensor, files);
  const src = whole ? undefined : await files.open(tensor.file);
  try {
    for (let row = 0; row < rows; row += rowsPerChunk) {
      throwIfAborted(options.signal);
      const n = Math.min(rowsPerChunk, rows - row);
      let bytes: Uint8Array;
      if (whole) {
        bytes = whole.subarray(row * rowBytes, (row + n) * rowBytes);
      } else {
        bytes = new Uint8Array(n * rowBytes);
        await readInto(src!, tensor.byteOffset + row * rowBytes, bytes, tensor.name);
      }
      yield { row, rows: n, values: decodeF32(tensor, bytes, n * cols) };
    }
  } finally {
    await src?.close();
  }
}

function decodeF32(tensor: TensorInfo, bytes: Uint8Array, count: number): Float32Array {
  if (tensor.dtype === 'F32' && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  if (isPlainDType(tensor.dtype)) return decodeToF32(tensor.dtype, bytes);
  if (isDequantizable(tensor.dtype)) {
    const out = new Float32Array(count);
    dequantizeBlocks(tensor.dtype, bytes, out);
    return out;
  }
  throw new QuantLensError('UNSUPPORTED', `${tensor.dtype} values cannot be decoded`, { tensor: tensor.name });
}
