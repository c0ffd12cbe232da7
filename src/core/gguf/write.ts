/**
 * GGUF header encoder: magic, version, counts, key/values, tensor infos, then zero padding to the
 * alignment, byte for byte as ggml's gguf.cpp writes them (`gguf_write_out`, `gguf_writer_base`), so
 * a file written with it matches llama-quantize's. Tensor data is laid out by `layoutGgufTensorData`:
 * each tensor starts at a multiple of the alignment, in listed order, as `gguf_add_tensor` places it.
 */
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError } from '../errors';
import { GGUF_MAX_DIMS } from '../limits';
import { elementCount, type MetadataType, type MetadataValue } from '../model';
import { GGUF_ALIGNMENT_KEY, GGUF_DEFAULT_ALIGNMENT, GGUF_TYPE_ID } from '../readers/gguf-metadata';

const GGUF_MAGIC_BYTES = [0x47, 0x47, 0x55, 0x46]; // "GGUF"

const INT_RANGE: Readonly<Partial<Record<MetadataType, readonly [number, number]>>> = {
  u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff], u32: [0, 0xffffffff], i32: [-0x80000000, 0x7fffffff],
};

export interface GgufTensorSpec {
  name: string;
  dtype: DType;
  /**
   * Row-major, outermost first; written as ne[] reversed with n_dims = shape.length. llama-quantize
   * writes ggml_n_dims (trailing ne of 1 dropped, at least 1): pass shapes as the source file stores them.
   */
  shape: readonly number[];
  /** Offset within the data section; a multiple of the alignment. */
  offset: number | bigint;
}

export interface GgufHeaderSpec {
  /** 2 or 3 (llama.cpp writes 3). */
  version: number;
  /** Written in key order. `general.alignment`, when present, must be u32 and equal `alignment`. */
  metadata: Readonly<Record<string, MetadataValue>>;
  tensors: readonly GgufTensorSpec[];
  /** Power of two; 32 unless `general.alignment` says otherwise. */
  alignment: number;
}

/** Bytes of data for a tensor of this dtype and shape (whole blocks along the row). */
export function ggufTensorByteLength(dtype: DType, shape: readonly number[]): number {
  const { blockSize, bytesPerBlock } = DTYPES[dtype];
  return (elementCount(shape) / blockSize) * bytesPerBlock;
}

/** Zero bytes ggml writes after `length` bytes so that the next byte is aligned. */
export function ggufPadding(length: number, alignment: number): number {
  return (alignment - (length % alignment)) % alignment;
}

/**
 * Data-section offsets as llama.cpp assigns them: each tensor at the running size, each size padded
 * to the alignment. `dataBytes` includes the last tensor's padding, as ggml writes it.
 */
export function layoutGgufTensorData(
  tensors: ReadonlyArray<{ dtype: DType; shape: readonly number[] }>,
  alignment: number,
): { offsets: number[]; dataBytes: number } {
  checkAlignment(alignment);
  const offsets: number[] = [];
  let at = 0;
  for (const t of tensors) {
    offsets.push(at);
    const n = ggufTensorByteLength(t.dtype, t.shape);
    at += n + ggufPadding(n, alignment);
  }
  return { offsets, dataBytes: at };
}

function checkAlignment(alignment: number): void {
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment > 0xffffffff || (alignment & (alignment - 1)) !== 0) {
    throw new QuantLensError('INVALID_ALIGNMENT', `alignment ${alignment} is not a power of two`);
  }
}

/** Little-endian byte writer that grows as needed. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly encoder = new TextEncoder();

  private reserve(n: number): number {
    const at = this.length;
    if (at + n > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < at + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(0, at));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    this.length += n;
    return at;
  }

  // reserve() may replace buf and view, so it runs before either is read
  bytes(b: ArrayLike<number>): void {
    const at = this.reserve(b.length);
    this.buf.set(b, at);
  }
  u8(v: number): void {
    const at = this.reserve(1);
    this.view.setUint8(at, v);
  }
  i8(v: number): void {
    const at = this.reserve(1);
    this.view.setInt8(at, v);
  }
  u16(v: number): void {
    const at = this.reserve(2);
    this.view.setUint16(at, v, true);
  }
  i16(v: number): void {
    const at = this.reserve(2);
    this.view.setInt16(at, v, true);
  }
  u32(v: number): void {
    const at = this.reserve(4);
    this.view.setUint32(at, v, true);
  }
  i32(v: number): void {
    const at = this.reserve(4);
    this.view.setInt32(at, v, true);
  }
  f32(v: number): void {
    const at = this.reserve(4);
    this.view.setFloat32(at, v, true);
  }
  f64(v: number): void {
    const at = this.reserve(8);
    this.view.setFloat64(at, v, true);
  }
  u64(v: bigint): void {
    const at = this.reserve(8);
    this.view.setBigUint64(at, v, true);
  }
  i64(v: bigint): void {
    const at = this.reserve(8);
    this.view.setBigInt64(at, v, true);
  }

  /** u64 byte length, then the UTF-8 bytes. */
  string(s: string): void {
    const lengthAt = this.reserve(8);
    const room = s.length * 3;
    const at = this.reserve(room);
    const { written } = this.encoder.encodeInto(s, this.buf.subarray(at, at + room));
    this.length = at + written;
    this.view.setBigUint64(lengthAt, BigInt(written), true);
  }

  zeros(n: number): void {
    const at = this.reserve(n);
    this.buf.fill(0, at, this.length);
  }

  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Serialises a GGUF header: everything before the data section, padding included. */
export function encodeGgufHeader(spec: GgufHeaderSpec): Uint8Array {
  if (spec.version !== 2 && spec.version !== 3) {
    throw new QuantLensError('UNSUPPORTED_VERSION', `GGUF version ${spec.version} cannot be written (2 and 3 can)`);
  }
  checkAlignment(spec.alignment);
  const declared = Object.prototype.hasOwnProperty.call(spec.metadata, GGUF_ALIGNMENT_KEY) ? spec.metadata[GGUF_ALIGNMENT_KEY] : undefined;
  if (declared === undefined ? spec.alignment !== GGUF_DEFAULT_ALIGNMENT : declared.type !== 'u32' || declared.value !== spec.alignment) {
    throw new QuantLensError(
      'INVALID_ALIGNMENT',
      `alignment ${spec.alignment} disagrees with ${GGUF_ALIGNMENT_KEY} (${declared ? `${declared.type} ${String(declared.value)}` : `absent, meaning ${GGUF_DEFAULT_ALIGNMENT}`})`,
    );
  }

  const w = new ByteWriter();
  w.bytes(GGUF_MAGIC_BYTES);
  w.u32(spec.version);
  const keys = Object.keys(spec.metadata);
  w.i64(BigInt(spec.tensors.length));
  w.i64(BigInt(keys.length));

  for (const key of keys) {
    if (key === '') throw new QuantLensError('INVALID_HEADER', 'metadata key is empty');
    w.string(key);
    writeValue(w, spec.metadata[key]!, key, true);
  }

  const names = new Set<string>();
  for (const t of spec.tensors) {
    writeTensorInfo(w, t, spec.alignment, names);
  }
  w.zeros(ggufPadding(w.length, spec.alignment));
  return w.result();
}

function writeTensorInfo(w: ByteWriter, t: GgufTensorSpec, alignment: number, names: Set<string>): void {
  const traits = DTYPES[t.dtype] as { blockSize: number; ggmlId?: number } | undefined;
  if (traits?.ggmlId === undefined) {
    throw new QuantLensError('UNSUPPORTED', `dtype ${t.dtype} has no ggml type id`, { tensor: t.name });
  }
  if (names.has(t.name)) throw new QuantLensError('DUPLICATE_NAME', 'tensor name appears twice', { tensor: t.name });
  names.add(t.name);
  if (t.shape.length > GGUF_MAX_DIMS) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${t.shape.length} dimensions exceed GGUF's limit of ${GGUF_MAX_DIMS}`, { tensor: t.name });
  }
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new QuantLensError('INVALID_SHAPE', `extent ${d} is not a non-negative integer`, { tensor: t.name });
  }
  const row = t.shape.length === 0 ? 1 : t.shape[t.shape.length - 1]!;
  if (row % traits.blockSize !== 0) {
    throw new QuantLensError('INVALID_SHAPE', `row of ${row} elements is not a multiple of ${t.dtype}'s block size ${traits.blockSize}`, {
      tensor: t.name,
    });
  }
  const offset = BigInt(t.offset);
  if (offset < 0n || offset % BigInt(alignment) !== 0n) {
    throw new QuantLensError('INVALID_OFFSETS', `data offset ${offset} is not a non-negative multiple of ${alignment}`, { tensor: t.name });
  }
  w.string(t.name);
  w.u32(t.shape.length);
  for (let j = t.shape.length - 1; j >= 0; j--) w.i64(BigInt(t.shape[j]!));
  w.i32(traits.ggmlId);
  w.u64(offset);
}

function writeValue(w: ByteWriter, v: MetadataValue, key: string, withType: boolean): void {
  const id = GGUF_TYPE_ID[v.type];
  if (id === undefined) throw new QuantLensError('INVALID_VALUE_TYPE', `"${key}" has unknown type ${String(v.type)}`);
  if (withType) w.i32(id);
  if (v.type === 'array') {
    const itemId = GGUF_TYPE_ID[v.itemType];
    if (itemId === undefined) throw new QuantLensError('INVALID_VALUE_TYPE', `array "${key}" has unknown item type ${String(v.itemType)}`);
    w.i32(itemId);
    w.u64(BigInt(v.value.length));
    if (v.itemType === 'array') {
      for (const item of v.value as MetadataValue[]) {
        if (item.type !== 'array') throw new QuantLensError('INVALID_VALUE_TYPE', `nested array "${key}" holds a ${item.type}`);
        writeValue(w, item, key, false);
      }
    } else {
      for (const item of v.value) writeScalar(w, v.itemType, item, key);
    }
    return;
  }
  writeScalar(w, v.type, v.value, key);
}

function writeScalar(w: ByteWriter, type: Exclude<MetadataType, 'array'>, value: unknown, key: string): void {
  const bad = (): QuantLensError => new QuantLensError('INVALID_VALUE_TYPE', `"${key}": ${String(value)} is not a valid ${type}`);
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw bad();
      w.string(value);
      return;
    case 'bool':
      if (typeof value !== 'boolean') throw bad();
      w.u8(value ? 1 : 0);
      return;
    case 'f32':
    case 'f64':
      if (typeof value !== 'number') throw bad();
      if (type === 'f32') w.f32(value);
      else w.f64(value);
      return;
    case 'u64':
    case 'i64': {
      if (typeof value !== 'bigint') throw bad();
      const ok = type === 'u64' ? value >= 0n && value < 1n << 64n : value >= -(1n << 63n) && value < 1n << 63n;
      if (!ok) throw bad();
      if (type === 'u64') w.u64(value);
      else w.i64(value);
      return;
    }
    default: {
      const [lo, hi] = INT_RANGE[type]!;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) throw bad();
      switch (type) {
        case 'u8': w.u8(value); break;
        case 'i8': w.i8(value); break;
        case 'u16': w.u16(value); break;
        case 'i16': w.i16(value); break;
        case 'u32': w.u32(value); break;
        default: w.i32(value); break;
      }
    }
  }
}
