import { readInto } from './bytesource';
import { QuantLensError } from './errors';
import type { ModelInfo, TensorInfo } from './model';
import type { FileAccess } from './readers/types';

/**
 * A tensor's elements as contiguous little-endian bytes of its dtype, whatever its encoding:
 * - 'raw': one positioned read of [byteOffset, byteOffset + byteLength) (into `into` when given,
 *   which must hold byteLength bytes);
 * - 'pytorch-view': the view's span, gathered when strided (readers/pytorch.ts `gatherStridedView`);
 * - 'onnx-typed-field' / 'onnx-attribute': protobuf-encoded values decoded to the dtype's bytes
 *   (readers/onnx `decodeOnnxFieldValues`).
 * The readers already checked every offset and length against the file.
 */
export async function readTensorBytes(model: ModelInfo, tensor: TensorInfo, files: FileAccess, into?: Uint8Array): Promise<Uint8Array> {
  if (!model.files.includes(tensor.file)) {
    throw new QuantLensError('INTERNAL', `tensor ${tensor.name} lives in ${tensor.file}, which is not a file of this model`, { tensor: tensor.name });
  }
  const readBytes = async (offset: number, length: number, target?: Uint8Array): Promise<Uint8Array> => {
    const src = await files.open(tensor.file);
    try {
      const buf = target ?? new Uint8Array(length);
      if (buf.length !== length) {
        throw new QuantLensError('INTERNAL', `buffer of ${buf.length} bytes for ${length}`, { tensor: tensor.name });
      }
      if (offset + length > src.size) {
        throw new QuantLensError('TRUNCATED', `needs ${length} bytes at offset ${offset}, file has ${src.size}`, { offset, tensor: tensor.name, file: tensor.file });
      }
      await readInto(src, offset, buf, tensor.name);
      return buf;
    } finally {
      await src.close();
    }
  };
  switch (tensor.encoding) {
    case 'raw':
      return readBytes(tensor.byteOffset, tensor.byteLength, into);
    case 'pytorch-view': {
      const { gatherStridedView } = await import('./readers/pytorch');
      return copyInto(await gatherStridedView(tensor, (offset, length) => readBytes(offset, length)), into);
    }
    case 'onnx-typed-field':
    case 'onnx-attribute': {
      const { decodeOnnxFieldValues } = await import('./readers/onnx');
      return copyInto(decodeOnnxFieldValues(tensor, await readBytes(tensor.byteOffset, tensor.byteLength)), into);
    }
    case 'quantized':
      throw new QuantLensError('UNSUPPORTED', `${tensor.name} is a ${tensor.quantized?.format ?? 'quantized'} layout of several tensors: read its values with tensorRowsF32`, { tensor: tensor.name });
  }
}

function copyInto(bytes: Uint8Array, into: Uint8Array | undefined): Uint8Array {
  if (!into) return bytes;
  if (into.length !== bytes.length) throw new QuantLensError('INTERNAL', `buffer of ${into.length} bytes for ${bytes.length}`);
  into.set(bytes);
  return into;
}
