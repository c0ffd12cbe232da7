/**
 * A streaming safetensors writer. Every tensor's size is known before any byte is written, so the
 * header goes first and the data follows tensor by tensor, never held in memory as a whole.
 * Layout as the Rust crate writes it (`safetensors/src/tensor.rs`): u64 LE header length, the JSON
 * header padded with spaces so the data starts on an 8-byte boundary, data in header order.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { DTYPES, type DType } from './dtypes';
import { QuantLensError } from './errors';

/** The plain element types safetensors stores (block types are GGUF-only). */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

export function isSafetensorsDType(dtype: DType): dtype is SafetensorsDType {
  return DTYPES[dtype].kind !== 'block';
}

export interface SafetensorsTensorSpec {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
}

/** Bytes a tensor of this spec takes; throws on shapes beyond 2^53 bytes. */
export function specByteLength(spec: SafetensorsTensorSpec): number {
  let n = DTYPES[spec.dtype].bytesPerBlock;
  for (const d of spec.shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new QuantLensError('INVALID_SHAPE', `shape ${JSON.stringify(spec.shape)} is not a list of sizes`, { tensor: spec.name });
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new QuantLensError('OVERFLOW', `${spec.dtype} ${JSON.stringify(spec.shape)} is beyond 2^53 bytes`, { tensor: spec.name });
  return n;
}

export interface EncodedHeader {
  /** The 8-byte length, the JSON and its padding: the file's first bytes. */
  bytes: Uint8Array;
  /** [begin, end) of each tensor relative to the data section, in spec order. */
  ranges: Array<[number, number]>;
  dataBytes: number;
}

/** The header of a file holding `specs` in this order, with `__metadata__` first when given. */
export function encodeSafetensorsHeader(specs: readonly SafetensorsTensorSpec[], metadata?: Record<string, string>): EncodedHeader {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const ranges: Array<[number, number]> = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const s of specs) {
    if (s.name === '__metadata__' || seen.has(s.name)) throw new QuantLensError('DUPLICATE_NAME', `tensor name ${s.name} is used twice`, { tensor: s.name });
    seen.add(s.name);
    const end = offset + specByteLength(s);
    // defineProperty: a tensor named "__proto__" must become a key, not a prototype
    Object.defineProperty(header, s.name, { value: { dtype: s.dtype, shape: s.shape, data_offsets: [offset, end] }, enumerable: true });
    ranges.push([offset, end]);
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { bytes, ranges, dataBytes: offset };
}

/**
 * Writes one safetensors file: `create` writes the header, `write` appends data that must fill the
 * tensors exactly in spec order, `close` checks every byte arrived. The file is created exclusively
 * (never overwrites); callers put it in a temporary folder and rename the folder when complete.
 */
export class SafetensorsWriter {
  private position: number;
  private tensor = 0;

  private constructor(
    readonly path: string,
    private handle: FileHandle | undefined,
    private readonly specs: readonly SafetensorsTensorSpec[],
    private readonly header: EncodedHeader,
  ) {
    this.position = header.bytes.length;
  }

  static async create(path: string, specs: readonly SafetensorsTensorSpec[], metadata?: Record<string, string>): Promise<SafetensorsWriter> {
    const header = encodeSafetensorsHeader(specs, metadata);
    let handle: FileHandle;
    try {
      handle = await open(path, 'wx');
    } catch (err) {
      throw new QuantLensError('OUTPUT', `cannot create ${path}: ${(err as Error).message}`, { file: path, cause: err });
    }
    const writer = new SafetensorsWriter(path, handle, specs, header);
    try {
      await writer.writeAll(header.bytes, 0);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return writer;
  }

  /** Total size of the finished file. */
  get fileBytes(): number {
    return this.header.bytes.length + this.header.dataBytes;
  }

  /** The tensor the next `write` goes to (undefined once every tensor is complete). */
  get currentTensor(): string | undefined {
    this.skipEmpty();
    return this.specs[this.tensor]?.name;
  }

  /** Appends data; a write may span tensor boundaries but never runs past the last tensor. */
  async write(bytes: Uint8Array): Promise<void> {
    const end = this.header.bytes.length + this.header.dataBytes;
    if (this.position + bytes.length > end) {
      throw new QuantLensError('INTERNAL', `${bytes.length} bytes written past the end of the declared tensors`, { file: this.path, tensor: this.specs[this.specs.length - 1]?.name });
    }
    await this.writeAll(bytes, this.position);
    this.position += bytes.length;
    this.skipEmpty();
  }

  /** Checks every declared byte was written, flushes and closes. */
  async close(): Promise<void> {
    if (!this.handle) throw new QuantLensError('INTERNAL', 'close after close', { file: this.path });
    if (this.position !== this.fileBytes) {
      const missing = this.specs[this.tensor]?.name;
      throw new QuantLensError('INTERNAL', `${this.fileBytes - this.position} bytes of tensor data were never written`, { file: this.path, tensor: missing });
    }
    await this.handle.sync();
    await this.handle.close();
    this.handle = undefined;
  }

  /** Closes without checks (the caller removes the file). */
  async abort(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close().catch(() => undefined);
  }

  private skipEmpty(): void {
    const base = this.header.bytes.length;
    while (this.tensor < this.specs.length && base + this.header.ranges[this.tensor]![1] <= this.position) this.tensor++;
  }

  private async writeAll(bytes: Uint8Array, at: number): Promise<void> {
    if (!this.handle) throw new QuantLensError('INTERNAL', 'write after close', { file: this.path });
    let done = 0;
    while (done < bytes.length) done += (await this.handle.write(bytes, done, bytes.length - done, at + done)).bytesWritten;
  }
}

/** The bytes of a typed array (no copy). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
