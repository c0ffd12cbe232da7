/**
 * Protocol buffers wire format (https://protobuf.dev/programming-guides/encoding/): varints, zigzag,
 * fixed-width values and field headers, decoded from a byte window with every bound checked.
 */
import { QuantLensError } from '../errors';

export const WireType = { Varint: 0, Fixed64: 1, LengthDelimited: 2, Fixed32: 5 } as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

/** Largest field number protobuf allows (2^29 - 1). */
const MAX_FIELD_NUMBER = 0x1fffffff;
/** A varint never takes more than 10 bytes (64 bits in 7-bit groups). */
export const MAX_VARINT_BYTES = 10;
/** A field header (key varint + varint value or length) fits in this many bytes. */
export const MAX_FIELD_HEADER_BYTES = 2 * MAX_VARINT_BYTES;

/** One field of a message, located by absolute offsets; length-delimited payloads are not read. */
export interface ProtoField {
  fieldNumber: number;
  wireType: WireType;
  /** Absolute offset of the field's key. */
  start: number;
  /** Absolute offset of the value: the payload of a length-delimited field. */
  offset: number;
  /** Length of the value in bytes (the payload's length for length-delimited fields). */
  length: number;
  /** Varint, fixed32 and fixed64 values as unsigned bits; 0n for length-delimited fields. */
  bits: bigint;
}

/** Where a decode happens, for error messages: the file and its size decide TRUNCATED vs INVALID_PROTOBUF. */
export interface WireContext {
  file: string;
  fileSize: number;
}

/**
 * Thrown when a value runs past `end`: the file ends there (TRUNCATED) or the enclosing message does
 * (INVALID_PROTOBUF: a length that overruns its parent).
 */
export function overrunError(ctx: WireContext, what: string, offset: number, end: number): QuantLensError {
  if (end >= ctx.fileSize) {
    return new QuantLensError('TRUNCATED', `${what} runs past the end of the file`, { offset, file: ctx.file });
  }
  return new QuantLensError('INVALID_PROTOBUF', `${what} runs past the end of its message at ${end}`, {
    offset,
    file: ctx.file,
  });
}

export function invalidProtobuf(ctx: WireContext, message: string, offset: number): QuantLensError {
  return new QuantLensError('INVALID_PROTOBUF', message, { offset, file: ctx.file });
}

/**
 * A read position in `bytes`, which hold the file range starting at absolute offset `base`.
 * `end` (relative) is where the enclosing message stops; `messageEnd` is its absolute end.
 */
export class WireCursor {
  constructor(
    readonly bytes: Uint8Array,
    readonly base: number,
    public pos: number,
    readonly end: number,
    readonly messageEnd: number,
    readonly ctx: WireContext,
  ) {}

  /** An unsigned varint of up to 64 bits. */
  varint(): bigint {
    const { bytes, end } = this;
    let pos = this.pos;
    const start = pos;
    let low = 0;
    let mul = 1;
    // The first 7 bytes (49 bits) stay exact in a double; later bytes go through bigint.
    for (let i = 0; i < 7; i++) {
      if (pos >= end) throw overrunError(this.ctx, 'varint', this.base + start, this.messageEnd);
      const b = bytes[pos++]!;
      low += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) {
        this.pos = pos;
        return BigInt(low);
      }
    }
    let value = BigInt(low);
    for (let i = 7; i < MAX_VARINT_BYTES; i++) {
      if (pos >= end) throw overrunError(this.ctx, 'varint', this.base + start, this.messageEnd);
      const b = bytes[pos++]!;
      if (i === MAX_VARINT_BYTES - 1 && b > 1) {
        throw invalidProtobuf(this.ctx, 'varint overflows 64 bits', this.base + start);
      }
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) {
        this.pos = pos;
        return value;
      }
    }
    throw invalidProtobuf(this.ctx, 'varint longer than 10 bytes', this.base + start);
  }

  fixed(width: 4 | 8): bigint {
    const start = this.pos;
    if (this.end - start < width) throw overrunError(this.ctx, `fixed${width * 8} value`, this.base + start, this.messageEnd);
    const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + start, width);
    this.pos = start + width;
    return width === 4 ? BigInt(view.getUint32(0, true)) : view.getBigUint64(0, true);
  }

  /**
   * The field header at the cursor: key, then the varint/fixed value or the payload length.
   * The payload itself is skipped, not read; it must end within the message.
   */
  field(): ProtoField {
    const start = this.base + this.pos;
    const key = this.varint();
    if (key > 0xffffffffn) throw invalidProtobuf(this.ctx, 'field key exceeds 32 bits', start);
    const fieldNumber = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (fieldNumber === 0 || fieldNumber > MAX_FIELD_NUMBER) {
      throw invalidProtobuf(this.ctx, `invalid field number ${fieldNumber}`, start);
    }
    const valueStart = this.pos;
    switch (wireType) {
      case WireType.Varint: {
        const bits = this.varint();
        return { fieldNumber, wireType, start, offset: this.base + valueStart, length: this.pos - valueStart, bits };
      }
      case WireType.Fixed64:
      case WireType.Fixed32: {
        const bits = this.fixed(wireType === WireType.Fixed32 ? 4 : 8);
        return { fieldNumber, wireType, start, offset: this.base + valueStart, length: this.pos - valueStart, bits };
      }
      case WireType.LengthDelimited: {
        const length = this.varint();
        const offset = this.base + this.pos;
        if (length > BigInt(this.messageEnd - offset)) {
          throw overrunError(this.ctx, `field ${fieldNumber} (length ${length})`, start, this.messageEnd);
        }
        return { fieldNumber, wireType, start, offset, length: Number(length), bits: 0n };
      }
      default:
        // 3/4 are proto2 groups (never used by ONNX or SentencePiece), 6/7 do not exist.
        throw invalidProtobuf(this.ctx, `unsupported wire type ${wireType} in field ${fieldNumber}`, start);
    }
  }
}

/** Two's-complement view of 64 unsigned bits (int64 fields). */
export function asInt64(bits: bigint): bigint {
  return BigInt.asIntN(64, bits);
}

/** int32 fields: negative values are sign-extended to 10-byte varints; the low 32 bits are the value. */
export function asInt32(bits: bigint): number {
  return Number(BigInt.asIntN(32, bits));
}

/** sint32/sint64 zigzag decoding. */
export function decodeZigZag(bits: bigint): bigint {
  return (bits >> 1n) ^ -(bits & 1n);
}

export function encodeZigZag(value: bigint): bigint {
  return BigInt.asUintN(64, (value << 1n) ^ (value >> 63n));
}

const scratch = new DataView(new ArrayBuffer(8));

export function asFloat32(bits: bigint): number {
  scratch.setUint32(0, Number(bits & 0xffffffffn), true);
  return scratch.getFloat32(0, true);
}

export function asFloat64(bits: bigint): number {
  scratch.setBigUint64(0, BigInt.asUintN(64, bits), true);
  return scratch.getFloat64(0, true);
}

/** Decodes a packed run of varints (the payload of a packed repeated field). */
export function decodePackedVarints(payload: Uint8Array, base: number, ctx: WireContext): bigint[] {
  const cur = new WireCursor(payload, base, 0, payload.length, base + payload.length, ctx);
  const values: bigint[] = [];
  while (cur.pos < payload.length) values.push(cur.varint());
  return values;
}

/** Counts the varints in a packed payload chunk; the last one must be complete. */
export function countVarintEnds(chunk: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < chunk.length; i++) if (chunk[i]! < 0x80) n++;
  return n;
}
