/**
 * A protobuf encoder that builds messages from fields, where a field's bytes may be a reference to a
 * byte range of a source file. Nothing large is held in memory: referenced ranges are copied from
 * their source in chunks while the message streams to its output.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { readInto, type ByteSource } from '../bytesource';
import { QuantLensError, throwIfAborted } from '../errors';
import { encodeZigZag, WireType } from './wire';

type Part =
  | { kind: 'bytes'; bytes: Uint8Array }
  /** Bytes copied from a source at write time. */
  | { kind: 'source'; source: ByteSource; offset: number; length: number }
  /** A nested message: its length prefix is computed at write time (its key precedes it in a bytes part). */
  | { kind: 'message'; builder: MessageBuilder };

/** Staging size for small writes and for copying referenced ranges. */
const COPY_CHUNK_BYTES = 1 << 20;
/** Referenced ranges up to this size are copied through a shared read window. */
const SMALL_RANGE_BYTES = 4 << 10;
const SMALL_RANGE_WINDOW_BYTES = 64 << 10;

export function varintSize(value: bigint | number): number {
  let v = typeof value === 'bigint' ? value : BigInt(value);
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** A message under construction. Fields are written in the order the methods are called. */
export class MessageBuilder {
  private readonly parts: Part[] = [];
  private pending: number[] = [];

  private pushByte(b: number): void {
    this.pending.push(b);
  }

  private pushVarint(value: bigint | number): void {
    if (typeof value === 'number') {
      if (!Number.isInteger(value)) throw new QuantLensError('INTERNAL', `varint of non-integer ${value}`);
      if (value >= 0 && value <= 0x7fffffff) {
        let v = value;
        while (v >= 0x80) {
          this.pushByte((v & 0x7f) | 0x80);
          v >>>= 7;
        }
        this.pushByte(v);
        return;
      }
      value = BigInt(value);
    }
    // Negative int32/int64 values are written as their 64-bit two's complement (10 bytes), as protobuf does.
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.pushByte(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.pushByte(Number(v));
  }

  private pushKey(field: number, wireType: WireType): void {
    this.pushVarint(field * 8 + wireType);
  }

  private pushBytes(bytes: Uint8Array): void {
    if (bytes.length <= 64) {
      for (const b of bytes) this.pending.push(b);
      return;
    }
    this.flushPending();
    this.parts.push({ kind: 'bytes', bytes });
  }

  private flushPending(): void {
    if (this.pending.length === 0) return;
    this.parts.push({ kind: 'bytes', bytes: Uint8Array.from(this.pending) });
    this.pending = [];
  }

  /** int32, int64, uint32, uint64, enum and bool fields. */
  varint(field: number, value: bigint | number | boolean): this {
    this.pushKey(field, WireType.Varint);
    this.pushVarint(typeof value === 'boolean' ? (value ? 1 : 0) : value);
    return this;
  }

  /** sint32/sint64 fields (zigzag). */
  sint(field: number, value: bigint | number): this {
    this.pushKey(field, WireType.Varint);
    this.pushVarint(encodeZigZag(BigInt(value)));
    return this;
  }

  fixed32(field: number, bits: number): this {
    this.pushKey(field, WireType.Fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, bits >>> 0, true);
    this.pushBytes(b);
    return this;
  }

  fixed64(field: number, bits: bigint): this {
    this.pushKey(field, WireType.Fixed64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, bits), true);
    this.pushBytes(b);
    return this;
  }

  float(field: number, value: number): this {
    this.pushKey(field, WireType.Fixed32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.pushBytes(b);
    return this;
  }

  double(field: number, value: number): this {
    this.pushKey(field, WireType.Fixed64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    this.pushBytes(b);
    return this;
  }

  /** A bytes field. The array is referenced, not copied: do not change it before writing. */
  bytes(field: number, bytes: Uint8Array): this {
    this.pushKey(field, WireType.LengthDelimited);
    this.pushVarint(bytes.length);
    this.pushBytes(bytes);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, builder: MessageBuilder): this {
    this.pushKey(field, WireType.LengthDelimited);
    this.flushPending();
    this.parts.push({ kind: 'message', builder });
    return this;
  }

  /** A packed repeated varint field (int32/int64/uint64/bool/enum). Nothing is written for an empty list. */
  packedVarints(field: number, values: ArrayLike<bigint | number>): this {
    if (values.length === 0) return this;
    const inner = new MessageBuilder();
    for (let i = 0; i < values.length; i++) inner.pushVarint(values[i]!);
    inner.flushPending();
    return this.message(field, inner);
  }

  packedFloats(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    const b = new Uint8Array(values.length * 4);
    const view = new DataView(b.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
    return this.bytes(field, b);
  }

  packedDoubles(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    const b = new Uint8Array(values.length * 8);
    const view = new DataView(b.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat64(i * 8, values[i]!, true);
    return this.bytes(field, b);
  }

  /** A length-delimited field whose payload is `length` bytes of `source` at `offset`, copied at write time. */
  bytesFromSource(field: number, source: ByteSource, offset: number, length: number): this {
    this.pushKey(field, WireType.LengthDelimited);
    this.pushVarint(length);
    this.flushPending();
    this.parts.push({ kind: 'source', source, offset, length });
    return this;
  }

  /** Already-encoded fields (keys included) copied verbatim from `source` at write time. */
  rawFromSource(source: ByteSource, offset: number, length: number): this {
    if (length === 0) return this;
    this.flushPending();
    this.parts.push({ kind: 'source', source, offset, length });
    return this;
  }

  /** Already-encoded fields (keys included). */
  raw(bytes: Uint8Array): this {
    this.pushBytes(bytes);
    return this;
  }

  /** Encoded size of this message (without a key or length prefix). */
  byteLength(): number {
    return measure(this, new Map());
  }

  /** @internal parts for the writer, pending bytes flushed. */
  partsForWrite(): readonly Part[] {
    this.flushPending();
    return this.parts;
  }
}

function measure(builder: MessageBuilder, cache: Map<MessageBuilder, number>): number {
  const known = cache.get(builder);
  if (known !== undefined) return known;
  let total = 0;
  for (const part of builder.partsForWrite()) {
    if (part.kind === 'bytes') total += part.bytes.length;
    else if (part.kind === 'source') total += part.length;
    else {
      const inner = measure(part.builder, cache);
      total += varintSize(inner) + inner;
    }
  }
  if (!Number.isSafeInteger(total)) throw new QuantLensError('OVERFLOW', 'encoded message size overflows');
  cache.set(builder, total);
  return total;
}

/** Where an encoded message goes. `write` must be done with the chunk when its promise resolves. */
export interface ByteSink {
  write(chunk: Uint8Array): Promise<void>;
}

/** Collects the output in memory. */
export class MemoryByteSink implements ByteSink {
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  async write(chunk: Uint8Array): Promise<void> {
    this.chunks.push(chunk.slice());
    this.length += chunk.length;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

export interface WriteOptions {
  signal?: AbortSignal;
}

/** Streams `builder` to `sink`, copying referenced source ranges in chunks. Returns the bytes written. */
export async function writeMessage(builder: MessageBuilder, sink: ByteSink, options: WriteOptions = {}): Promise<number> {
  const cache = new Map<MessageBuilder, number>();
  const total = measure(builder, cache);
  const staging = new Uint8Array(Math.min(COPY_CHUNK_BYTES, Math.max(total, 1)));
  let used = 0;

  const flush = async (): Promise<void> => {
    if (used === 0) return;
    await sink.write(staging.subarray(0, used));
    used = 0;
  };
  const put = async (bytes: Uint8Array): Promise<void> => {
    if (bytes.length > staging.length - used) await flush();
    if (bytes.length > staging.length) await sink.write(bytes);
    else {
      staging.set(bytes, used);
      used += bytes.length;
    }
  };
  const putVarint = async (n: number): Promise<void> => {
    const b: number[] = [];
    let v = BigInt(n);
    while (v >= 0x80n) {
      b.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    b.push(Number(v));
    await put(Uint8Array.from(b));
  };
  // Small referenced ranges (unmodelled fields, short tensors) come in file order: serve them from a
  // window read once, rather than one read call each.
  const windowBuffer = new Uint8Array(SMALL_RANGE_WINDOW_BYTES);
  let windowSource: ByteSource | undefined;
  let windowStart = 0;
  let windowLength = 0;
  const copySmall = async (source: ByteSource, offset: number, length: number): Promise<void> => {
    if (windowSource !== source || offset < windowStart || offset + length > windowStart + windowLength) {
      const n = Math.max(length, Math.min(windowBuffer.length, source.size - offset));
      windowSource = undefined;
      await readInto(source, offset, windowBuffer.subarray(0, n));
      windowSource = source;
      windowStart = offset;
      windowLength = n;
    }
    await put(windowBuffer.subarray(offset - windowStart, offset - windowStart + length));
  };
  const copyFrom = async (source: ByteSource, offset: number, length: number): Promise<void> => {
    if (length <= SMALL_RANGE_BYTES) return copySmall(source, offset, length);
    for (let done = 0; done < length; ) {
      if (used === staging.length) await flush();
      const n = Math.min(staging.length - used, length - done);
      await readInto(source, offset + done, staging.subarray(used, used + n));
      used += n;
      done += n;
      throwIfAborted(options.signal);
    }
  };
  const emit = async (b: MessageBuilder): Promise<void> => {
    for (const part of b.partsForWrite()) {
      if (part.kind === 'bytes') await put(part.bytes);
      else if (part.kind === 'source') await copyFrom(part.source, part.offset, part.length);
      else {
        await putVarint(cache.get(part.builder)!);
        await emit(part.builder);
      }
    }
  };

  throwIfAborted(options.signal);
  await emit(builder);
  await flush();
  return total;
}

/** Encodes `builder` into one array (for messages that must be handed over in memory). */
export async function encodeMessage(builder: MessageBuilder, options: WriteOptions = {}): Promise<Uint8Array> {
  const sink = new MemoryByteSink();
  await writeMessage(builder, sink, options);
  return sink.bytes();
}

/** Writes `builder` to a new file at `path` (replacing it). Returns the bytes written. */
export async function writeMessageToFile(builder: MessageBuilder, path: string, options: WriteOptions = {}): Promise<number> {
  let handle;
  try {
    handle = await open(path, 'w');
  } catch (err) {
    throw new QuantLensError('OUTPUT', `cannot write ${path}: ${(err as Error).message}`, { file: path, cause: err });
  }
  try {
    return await writeMessage(builder, fileSink(handle, path), options);
  } finally {
    await handle.close();
  }
}

/** A sink writing into an open file from offset 0; a failed write is an OUTPUT error naming `path`. */
export function fileSink(handle: FileHandle, path: string): ByteSink {
  let position = 0;
  return {
    write: async (chunk) => {
      try {
        for (let done = 0; done < chunk.length; ) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.length - done, position);
          done += bytesWritten;
          position += bytesWritten;
        }
      } catch (err) {
        throw new QuantLensError('OUTPUT', `cannot write ${path}: ${(err as Error).message}`, { file: path, cause: err });
      }
    },
  };
}
