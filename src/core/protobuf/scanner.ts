/**
 * A lazy protobuf scanner: iterates a message's fields as (fieldNumber, wireType, offset, length)
 * without materialising length-delimited payloads. Messages small enough are read into memory and
 * scanned there; larger ones (an ONNX graph holding gigabytes of raw_data) are scanned through a
 * small window over the ByteSource, so tensor bytes are only ever located, never read.
 */
import { readExact, readInto, type ByteSource } from '../bytesource';
import { QuantLensError } from '../errors';
import { PROTOBUF_MAX_DEPTH } from '../limits';
import {
  countVarintEnds,
  invalidProtobuf,
  MAX_FIELD_HEADER_BYTES,
  WireCursor,
  WireType,
  type ProtoField,
  type WireContext,
} from './wire';

/** Sub-messages up to this size are read whole and scanned in memory (speed); larger ones stream. */
const IN_MEMORY_MESSAGE_BYTES = 1 << 20;
/** Window the streaming scanner reads field headers through. */
const SCAN_WINDOW_BYTES = 64 << 10;

/** A message: a byte range of a file whose fields can be iterated and descended into. */
export interface ProtoMessage {
  /** Absolute offsets of the message's first byte and one past its last. */
  readonly start: number;
  readonly end: number;
  /** Nesting depth: 0 for the file's top-level message. */
  readonly depth: number;
  readonly ctx: WireContext;
  fields(): AsyncIterable<ProtoField>;
  /** The sub-message held by a length-delimited field, one level deeper (LIMIT_EXCEEDED past PROTOBUF_MAX_DEPTH). */
  message(field: ProtoField): Promise<ProtoMessage>;
  /** A length-delimited field's payload, copied; LIMIT_EXCEEDED when longer than `maxBytes`. */
  bytes(field: ProtoField, maxBytes: number): Promise<Uint8Array>;
  /** Number of varints in a packed payload, counted without decoding them. */
  countPackedVarints(field: ProtoField): Promise<number>;
}

function checkLengthDelimited(ctx: WireContext, field: ProtoField, what: string): void {
  if (field.wireType !== WireType.LengthDelimited) {
    throw invalidProtobuf(ctx, `field ${field.fieldNumber} should be a length-delimited ${what}, has wire type ${field.wireType}`, field.start);
  }
}

function checkDepth(ctx: WireContext, depth: number, offset: number): void {
  if (depth > PROTOBUF_MAX_DEPTH) {
    throw new QuantLensError('LIMIT_EXCEEDED', `protobuf messages nested deeper than ${PROTOBUF_MAX_DEPTH}`, {
      offset,
      file: ctx.file,
    });
  }
}

function checkBytesLimit(ctx: WireContext, field: ProtoField, maxBytes: number): void {
  if (field.length > maxBytes) {
    throw new QuantLensError('LIMIT_EXCEEDED', `field ${field.fieldNumber} holds ${field.length} bytes, more than the ${maxBytes} allowed`, {
      offset: field.start,
      file: ctx.file,
    });
  }
}

function checkPackedEnd(ctx: WireContext, field: ProtoField, lastByte: number | undefined): void {
  if (lastByte !== undefined && lastByte >= 0x80) {
    throw invalidProtobuf(ctx, `packed field ${field.fieldNumber} ends inside a varint`, field.offset + field.length - 1);
  }
}

/** A message held in memory: `bytes` are the file's bytes from absolute offset `start`. */
export class BytesMessage implements ProtoMessage {
  readonly end: number;

  constructor(
    private readonly data: Uint8Array,
    readonly start: number,
    readonly depth: number,
    readonly ctx: WireContext,
  ) {
    this.end = start + data.length;
  }

  /** Iterates the fields synchronously (for small messages decoded in one go). */
  *fieldsSync(): Generator<ProtoField> {
    const cur = new WireCursor(this.data, this.start, 0, this.data.length, this.end, this.ctx);
    while (cur.pos < this.data.length) {
      const field = cur.field();
      cur.pos = field.offset + field.length - this.start;
      yield field;
    }
  }

  fields(): AsyncIterable<ProtoField> {
    const sync = this.fieldsSync();
    return {
      [Symbol.asyncIterator]: () => ({
        next: async () => sync.next(),
        return: async () => sync.return(undefined),
      }),
    };
  }

  /** The payload of a length-delimited field, as a view into this message's bytes (not copied). */
  view(field: ProtoField): Uint8Array {
    checkLengthDelimited(this.ctx, field, 'payload');
    const from = field.offset - this.start;
    return this.data.subarray(from, from + field.length);
  }

  messageSync(field: ProtoField): BytesMessage {
    checkLengthDelimited(this.ctx, field, 'message');
    checkDepth(this.ctx, this.depth + 1, field.start);
    return new BytesMessage(this.view(field), field.offset, this.depth + 1, this.ctx);
  }

  async message(field: ProtoField): Promise<ProtoMessage> {
    return this.messageSync(field);
  }

  async bytes(field: ProtoField, maxBytes: number): Promise<Uint8Array> {
    checkBytesLimit(this.ctx, field, maxBytes);
    return this.view(field).slice();
  }

  async countPackedVarints(field: ProtoField): Promise<number> {
    const payload = this.view(field);
    checkPackedEnd(this.ctx, field, payload[payload.length - 1]);
    return countVarintEnds(payload);
  }
}

/** Reads field headers of large messages through one shared window over the source. */
class WindowedSource {
  private readonly window = new Uint8Array(SCAN_WINDOW_BYTES);
  private windowStart = 0;
  private windowLength = 0;

  constructor(
    readonly source: ByteSource,
    readonly ctx: WireContext,
    readonly inMemoryBytes: number,
  ) {}

  /** The field header at `pos` of a message ending at `end`. */
  async field(pos: number, end: number): Promise<ProtoField> {
    const need = Math.min(MAX_FIELD_HEADER_BYTES, end - pos);
    if (pos < this.windowStart || pos + need > this.windowStart + this.windowLength) {
      const length = Math.min(this.window.length, this.source.size - pos);
      await readInto(this.source, pos, this.window.subarray(0, length));
      this.windowStart = pos;
      this.windowLength = length;
    }
    const relEnd = Math.min(this.windowLength, end - this.windowStart);
    const cur = new WireCursor(this.window, this.windowStart, pos - this.windowStart, relEnd, end, this.ctx);
    return cur.field();
  }
}

/** A message too large to hold in memory, scanned through the window. */
class StreamedMessage implements ProtoMessage {
  constructor(
    private readonly reader: WindowedSource,
    readonly start: number,
    readonly end: number,
    readonly depth: number,
  ) {}

  get ctx(): WireContext {
    return this.reader.ctx;
  }

  async *fields(): AsyncGenerator<ProtoField> {
    let pos = this.start;
    while (pos < this.end) {
      const field = await this.reader.field(pos, this.end);
      pos = field.offset + field.length;
      yield field;
    }
  }

  async message(field: ProtoField): Promise<ProtoMessage> {
    checkLengthDelimited(this.ctx, field, 'message');
    checkDepth(this.ctx, this.depth + 1, field.start);
    if (field.length <= this.reader.inMemoryBytes) {
      const data = await readExact(this.reader.source, field.offset, field.length);
      return new BytesMessage(data, field.offset, this.depth + 1, this.ctx);
    }
    return new StreamedMessage(this.reader, field.offset, field.offset + field.length, this.depth + 1);
  }

  async bytes(field: ProtoField, maxBytes: number): Promise<Uint8Array> {
    checkLengthDelimited(this.ctx, field, 'payload');
    checkBytesLimit(this.ctx, field, maxBytes);
    return readExact(this.reader.source, field.offset, field.length);
  }

  async countPackedVarints(field: ProtoField): Promise<number> {
    checkLengthDelimited(this.ctx, field, 'packed field');
    const chunk = new Uint8Array(Math.min(SCAN_WINDOW_BYTES, field.length));
    let count = 0;
    let last: number | undefined;
    for (let done = 0; done < field.length; ) {
      const part = chunk.subarray(0, Math.min(chunk.length, field.length - done));
      await readInto(this.reader.source, field.offset + done, part);
      count += countVarintEnds(part);
      last = part[part.length - 1];
      done += part.length;
    }
    checkPackedEnd(this.ctx, field, last);
    return count;
  }
}

export interface OpenMessageOptions {
  /** Messages up to this many bytes are read whole and scanned in memory (default 1 MiB). */
  inMemoryMessageBytes?: number;
}

/** The top-level message spanning all of `source` (read into memory when small). */
export async function openProtoMessage(source: ByteSource, options: OpenMessageOptions = {}): Promise<ProtoMessage> {
  const inMemoryBytes = options.inMemoryMessageBytes ?? IN_MEMORY_MESSAGE_BYTES;
  const ctx: WireContext = { file: source.name, fileSize: source.size };
  if (source.size <= inMemoryBytes) {
    return new BytesMessage(await readExact(source, 0, source.size), 0, 0, ctx);
  }
  return new StreamedMessage(new WindowedSource(source, ctx, inMemoryBytes), 0, source.size, 0);
}

/** Scans a message held in memory (e.g. a field payload already read); `start` is its absolute offset. */
export function bytesMessage(data: Uint8Array, ctx: WireContext, start = 0, depth = 0): BytesMessage {
  return new BytesMessage(data, start, depth, ctx);
}
