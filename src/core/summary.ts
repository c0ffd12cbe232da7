import { DTYPES, type DType } from './dtypes';
import { elementCount, type ModelInfo, type TensorInfo } from './model';
import { describeTensor, isQuantCompanion } from './names';

export interface DTypeTotals {
  tensors: number;
  params: number;
  bytes: number;
}

export interface ModelTotals {
  tensors: number;
  params: number;
  bytes: number;
  /** llama.cpp's figure: Σ tensor bytes × 8 ÷ Σ elements (header excluded); null for a model without weights. */
  bitsPerWeight: number | null;
  byDtype: Partial<Record<DType, DTypeTotals>>;
}

/**
 * Totals as llama.cpp counts them. Quantization companions (scales, zero points) add bytes to their
 * weight but no elements; a storage shared by several tensors (PyTorch views) counts once.
 */
export function summarizeModel(model: ModelInfo): ModelTotals {
  const byDtype: Partial<Record<DType, DTypeTotals>> = {};
  const seenStorage = new Set<string>();
  let params = 0;
  let bytes = 0;
  for (const t of model.tensors) {
    const p = isQuantCompanion(t.name) ? 0 : elementCount(t.shape);
    const b = storageBytes(t, seenStorage);
    params += p;
    bytes += b;
    const d = (byDtype[t.dtype] ??= { tensors: 0, params: 0, bytes: 0 });
    d.tensors++;
    d.params += p;
    d.bytes += b;
  }
  return { tensors: model.tensors.length, params, bytes, bitsPerWeight: params > 0 ? (bytes * 8) / params : null, byDtype };
}

/** Bytes a tensor adds to the model: its stored size, or 0 when its storage was already counted. */
function storageBytes(t: TensorInfo, seen: Set<string>): number {
  if (t.storageKey !== undefined) {
    const key = `${t.file}\u0000${t.storageKey}`;
    if (seen.has(key)) return 0;
    seen.add(key);
  }
  if (t.encoding === 'onnx-typed-field' || t.encoding === 'onnx-attribute') {
    // Protobuf-encoded values: count the tensor's logical size, not its varint encoding.
    const tr = DTYPES[t.dtype];
    return (elementCount(t.shape) / tr.blockSize) * tr.bytesPerBlock;
  }
  return t.byteLength;
}

export interface TensorRow {
  name: string;
  dtype: DType;
  shape: number[];
  file: string;
  byteOffset: number;
  byteLength: number;
  layer: number | null;
  role: string;
}

export function tensorRow(t: TensorInfo): TensorRow {
  const d = describeTensor(t.name);
  return { name: t.name, dtype: t.dtype, shape: t.shape, file: t.file, byteOffset: t.byteOffset, byteLength: t.byteLength, layer: d.layer, role: d.role };
}

const GB = 1e9;
const GIB = 2 ** 30;
const MB = 1e6;

/** Sizes in bytes with a GB (10^9) or GiB (2^30) figure, spelled as such. */
export function formatBytes(bytes: number, unit: 'GB' | 'GiB' = 'GB'): string {
  if (unit === 'GiB') return bytes >= GIB / 10 ? `${(bytes / GIB).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(2)} MiB`;
  if (bytes >= GB / 10) return `${(bytes / GB).toFixed(2)} GB`;
  if (bytes >= MB / 10) return `${(bytes / MB).toFixed(2)} MB`;
  return `${bytes} B`;
}
