import type { DType } from './dtypes';

export type FormatName = 'safetensors' | 'gguf' | 'onnx' | 'pytorch';

/** How a tensor's bytes are laid out at [byteOffset, byteOffset + byteLength) of `file`. */
export type TensorEncoding =
  /** Contiguous row-major elements of `dtype`, little-endian. */
  | 'raw'
  /** An ONNX TensorProto typed field (`float_data`, `int32_data` holding FLOAT16 bits, …): protobuf-encoded values. */
  | 'onnx-typed-field'
  /** An ONNX Constant node's `value_float(s)`/`value_int(s)` attribute: protobuf-encoded values. */
  | 'onnx-attribute'
  /** A PyTorch storage view: `byteOffset` is the first element, `strides` (in elements) may be non-contiguous. */
  | 'pytorch-view'
  /**
   * A quantized layout's logical tensor: the values live in `quantized.parts`; `byteLength` is the sum
   * of the parts, `file`/`byteOffset` those of the packed values. Read it with tensorRowsF32.
   */
  | 'quantized';

/** The stored tensors of a quantized weight, by role. */
export type QuantizedPart =
  | 'packed'
  | 'scale'
  | 'zeroPoint'
  | 'gIdx'
  | 'shape'
  | 'absmax'
  | 'quantMap'
  | 'nestedAbsmax'
  | 'nestedQuantMap'
  | 'quantState'
  | 'format';

export type QuantizedFormat =
  /** compressed-tensors pack-quantized: int32 words of `bits`-bit values + 2^(bits−1) */
  | 'compressed-tensors-pack'
  /** compressed-tensors int-quantized / naive-quantized: one int8 per value */
  | 'compressed-tensors-int'
  /** compressed-tensors float-quantized: FP8 values */
  | 'compressed-tensors-fp8'
  | 'gptq'
  | 'awq'
  | 'bnb-nf4'
  | 'bnb-fp4'
  /** LLM.int8: int8 rows with one absmax per row (`SCB`) */
  | 'bnb-int8'
  /** ONNX DequantizeLinear of a constant: integer values, a scale and zero point per tensor or per `axis` */
  | 'onnx-qdq'
  /** ONNX Runtime com.microsoft MatMulNBits: `bits`-bit values packed along K in blocks of `groupSize` */
  | 'onnx-matmulnbits';

/** How a quantized weight is stored; parts are plain tensors of the same model (safetensors tensors, ONNX initializers or Constants). */
export interface QuantizedLayout {
  format: QuantizedFormat;
  bits: number;
  /**
   * Columns sharing a scale along a row (the row length when per channel, rows × cols per tensor);
   * bitsandbytes 4-bit: values per block of the flattened tensor; ONNX QDQ: values per scale;
   * MatMulNBits: values per block along K.
   */
  groupSize: number;
  /** ONNX QDQ per axis: the axis the scales run along (absent: one scale for the tensor). */
  axis?: number;
  symmetric: boolean;
  parts: Partial<Record<QuantizedPart, TensorInfo>>;
  /** GPTQ: added to the stored zero points (1 for the original GPTQ format, 0 for gptq_v2). */
  zeroPointOffset?: number;
  /** bitsandbytes double quantization: the mean added back to the absmax values, and their block size. */
  nestedOffset?: number;
  nestedBlockSize?: number;
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  /** Row-major, outermost first (GGUF's ne[] reversed). */
  shape: number[];
  /** Path of the file holding the bytes. */
  file: string;
  byteOffset: number;
  byteLength: number;
  encoding: TensorEncoding;
  /** Element strides, outermost first, when not contiguous row-major (PyTorch views). */
  strides?: number[];
  /** Identifies the storage the bytes belong to, so storages shared by several tensors count once. */
  storageKey?: string;
  /**
   * For `onnx-typed-field`/`onnx-attribute`: the protobuf wire form of the values. `packed-*`: the values
   * back to back (a packed payload, or one scalar's value bytes); `f32`/`f64`/`varint`: a run of unpacked
   * fields, keys included.
   */
  fieldWire?: 'packed-f32' | 'packed-f64' | 'packed-varint' | 'packed-fixed64' | 'packed-fixed32' | 'f32' | 'f64' | 'varint';
  /** For encoding `quantized`: the layout and its parts. */
  quantized?: QuantizedLayout;
}

export type MetadataType =
  | 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64' | 'bool' | 'string' | 'array';

/**
 * One metadata value with its type kept, so a writer can round-trip it.
 * 64-bit integers are bigint. Arrays keep their item type; nested arrays hold MetadataValue items.
 */
export type MetadataValue =
  | { type: 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64'; value: number }
  | { type: 'u64' | 'i64'; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: Exclude<MetadataType, 'array'>; value: Array<number | bigint | boolean | string> }
  | { type: 'array'; itemType: 'array'; value: MetadataValue[] };

export type Severity = 'error' | 'warning' | 'info';

export interface Diagnostic {
  severity: Severity;
  code: string;
  message: string;
  tensor?: string;
  offset?: number;
  file?: string;
}

export interface ModelInfo {
  format: FormatName;
  /** Every file the model spans (shards, external data), the entry file first. */
  files: string[];
  /** Key order is the file's order. */
  metadata: Record<string, MetadataValue>;
  tensors: TensorInfo[];
  diagnostics: Diagnostic[];
}

/** A numeric metadata value as a number (64-bit integers converted); undefined when absent or not a number. */
export function metadataNumber(metadata: Record<string, MetadataValue>, key: string): number | undefined {
  // Own keys only: a file's key must not reach Object.prototype's members.
  const v = Object.prototype.hasOwnProperty.call(metadata, key) ? metadata[key] : undefined;
  return v && (typeof v.value === 'number' || typeof v.value === 'bigint') ? Number(v.value) : undefined;
}

/** Number of elements in a shape (1 for a scalar). Shapes were checked by the reader, so this is safe. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Sets a key of a record built from a file's names: plain assignment of "__proto__" would replace the prototype instead of adding a key. */
export function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}
