/**
 * GGUF reader (v2 and v3, little-endian), header only: magic, counts, typed metadata (nested arrays
 * included, 64-bit integers as bigint), tensor infos, alignment; split files `-0000K-of-0000N.gguf`.
 * Rules follow ggml's gguf.cpp (`gguf_init_from_reader`) and the limits of @huggingface/gguf.
 */
import { basename, dirname, join } from 'node:path';
import { readInto, type ByteSource } from '../bytesource';
import { DTYPES, dtypeFromGgmlId, type DType } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import {
  GGUF_MAX_ALIGNMENT,
  GGUF_MAX_ARRAY_DEPTH,
  GGUF_MAX_ARRAY_LENGTH,
  GGUF_MAX_DIMS,
  GGUF_MAX_KV,
  GGUF_MAX_STRING_BYTES,
  GGUF_MAX_TENSORS,
  MAX_SHARDS,
  SHARD_OPEN_CONCURRENCY,
} from '../limits';
import { metadataNumber, setOwn, type Diagnostic, type MetadataType, type MetadataValue, type ModelInfo, type TensorInfo } from '../model';
import {
  GGUF_ALIGNMENT_KEY,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_TYPE_ARRAY,
  GGUF_TYPE_STRING,
  GGUF_VALUE_SIZE,
  GGUF_VALUE_TYPES,
} from './gguf-metadata';
import { mapLimited } from './shard-index';
import type { CheckpointReader, FileAccess, ReadOptions } from './types';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as u32 LE
/** ggml's GGML_MAX_NAME: llama.cpp refuses longer tensor names (we open them with a warning). */
const GGML_MAX_NAME = 64;

/** Smallest encoding of one element of each type: a string is at least its u64 length, an array its type and count. */
const MIN_ELEMENT_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8] as const;

/** Smallest tensor info: name length (8), n_dims (4), type (4), offset (8). */
const MIN_TENSOR_INFO_BYTES = 24;
/** Smallest key/value: key length (8), type (4), one byte of value. */
const MIN_KV_BYTES = 13;
const INT64_MAX = (1n << 63n) - 1n;
/** Check for cancellation every this many tensor infos. */
const ABORT_CHECK_EVERY = 4096;

/** A TensorInfo (shape: ne[] reversed, n_dims entries as stored) plus the stored data-section offset. */
export interface GgufTensorInfo extends TensorInfo {
  /** Offset within the data section, as stored; `byteOffset` = the header's dataOffset + this. */
  offset: number;
}

export interface GgufHeader {
  version: number;
  alignment: number;
  /** Key order is the file's order. */
  metadata: Record<string, MetadataValue>;
  /** In the file's order. */
  tensors: GgufTensorInfo[];
  /** End of the tensor infos, before the padding. */
  headerEnd: number;
  /** Start of the data section: headerEnd rounded up to the alignment. */
  dataOffset: number;
  diagnostics: Diagnostic[];
}

/** Reads and validates a GGUF header; tensor data is never read. */
export async function readGgufHeader(src: ByteSource, options: ReadOptions = {}): Promise<GgufHeader> {
  const file = src.name;
  const c = new GgufCursor(src);
  const diagnostics: Diagnostic[] = [];

  await c.need(4);
  if (c.u32() !== GGUF_MAGIC) {
    throw new QuantLensError('BAD_MAGIC', 'not a GGUF file: the first 4 bytes are not "GGUF"', { file, offset: 0 });
  }
  await c.need(4 + 8 + 8);
  const version = c.u32();
  if (version === 0 || version === 1 || version > 3) {
    const why =
      (version & 0xffff) === 0 && version !== 0
        ? `GGUF version ${version} looks byte-swapped: big-endian files are not supported`
        : `GGUF version ${version} is not supported (2 and 3 are)`;
    throw new QuantLensError('UNSUPPORTED_VERSION', why, { file, offset: 4 });
  }
  const nTensors = c.i64();
  const nKv = c.i64();
  checkCount(nTensors, GGUF_MAX_TENSORS, 'tensor', MIN_TENSOR_INFO_BYTES, c, file, 8);
  checkCount(nKv, GGUF_MAX_KV, 'key/value', MIN_KV_BYTES, c, file, 16);

  const metadata: Record<string, MetadataValue> = {};
  for (let i = 0; i < Number(nKv); i++) {
    const at = c.pos;
    const key = await readName(c, 'key');
    if (key === '') throw new QuantLensError('INVALID_HEADER', `key ${i} is empty`, { file, offset: at });
    if (Object.prototype.hasOwnProperty.call(metadata, key)) {
      throw new QuantLensError('DUPLICATE_NAME', `metadata key "${key}" appears twice`, { file, offset: at });
    }
    await c.need(4);
    const typeAt = c.pos;
    const type = c.i32();
    setOwn(metadata, key, await readValue(c, type, key, typeAt, 0, diagnostics));
  }

  const alignment = alignmentOf(metadata, file);

  const parsed: ParsedTensorInfos = { names: [], dtypes: [], shapes: [], offsets: [], byteLengths: [] };
  const names = new Set<string>();
  for (let i = 0; i < Number(nTensors); i++) {
    if (i % ABORT_CHECK_EVERY === 0) throwIfAborted(options.signal);
    let needed = parseTensorInfo(c, alignment, src.size, parsed);
    while (needed > 0) {
      await c.need(needed);
      needed = parseTensorInfo(c, alignment, src.size, parsed);
    }
    const name = parsed.names[i]!;
    if (names.has(name)) {
      throw new QuantLensError('DUPLICATE_NAME', 'tensor name appears twice', { file, tensor: name, offset: c.pos });
    }
    names.add(name);
    if (c.lastStringBytes >= GGML_MAX_NAME) {
      diagnostics.push({
        severity: 'warning',
        code: 'NAME_TOO_LONG',
        message: `tensor name is ${c.lastStringBytes} bytes; llama.cpp refuses names of ${GGML_MAX_NAME} bytes or more`,
        tensor: name,
        file,
      });
    }
  }

  const headerEnd = c.pos;
  const dataOffset = nTensors > 0n ? alignUp(headerEnd, alignment) : headerEnd;
  // built once with final values: setting byteOffset afterwards would change the objects' field
  // representation and make V8 migrate every object (measured: hundreds of ms at 100,000 tensors)
  const tensors = new Array<GgufTensorInfo>(parsed.names.length);
  for (let i = 0; i < tensors.length; i++) {
    const offset = parsed.offsets[i]!;
    tensors[i] = {
      name: parsed.names[i]!,
      dtype: parsed.dtypes[i]!,
      shape: parsed.shapes[i]!,
      file,
      byteOffset: dataOffset + offset,
      byteLength: parsed.byteLengths[i]!,
      encoding: 'raw',
      offset,
    };
  }
  checkTensorPlacement(tensors, alignment, src.size, file, diagnostics);
  return { version, alignment, metadata, tensors, headerEnd, dataOffset, diagnostics };
}

/** Block size and bytes per block by ggml type id, so the tensor loop does no map lookups. */
const GGML_TYPE_BY_ID: ReadonlyArray<{ dtype: DType; blockSize: number; bytesPerBlock: number } | undefined> = (() => {
  const table: Array<{ dtype: DType; blockSize: number; bytesPerBlock: number } | undefined> = [];
  for (let id = 0; id < 64; id++) {
    const dtype = dtypeFromGgmlId(id);
    if (dtype !== undefined) table[id] = { dtype, blockSize: DTYPES[dtype].blockSize, bytesPerBlock: DTYPES[dtype].bytesPerBlock };
  }
  return table;
})();

const TWO_POW_32 = 0x1_0000_0000;
/** High word of an i64/u64 from which the value is beyond Number.MAX_SAFE_INTEGER. */
const UNSAFE_HIGH_WORD = 0x20_0000;

/**
 * Parses one tensor info (name, n_dims, ne[], type, offset) from buffered bytes with number
 * arithmetic checked against 2^53 and appends it to `into`, returning 0. When the record is not all
 * buffered yet it consumes nothing and returns the byte count it needs. Checks follow gguf.cpp's order.
 */
/** Tensor infos as parsed, column by column, before the data section's start is known. */
interface ParsedTensorInfos {
  names: string[];
  dtypes: DType[];
  shapes: number[][];
  offsets: number[];
  byteLengths: number[];
}

function parseTensorInfo(c: GgufCursor, alignment: number, fileSize: number, into: ParsedTensorInfos): number {
  const file = c.file;
  const at = c.pos;
  if (!c.has(8)) return 8;
  const nameBytes = c.peekU64Number(0);
  checkStringLength(nameBytes, c, at, 'tensor name');
  if (!c.has(8 + nameBytes + 4)) return 8 + nameBytes + 4;
  const nDims = c.peekU32(8 + nameBytes);
  if (nDims > GGUF_MAX_DIMS) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${nDims} dimensions exceed GGUF's limit of ${GGUF_MAX_DIMS}`, { file, offset: at + 8 + nameBytes });
  }
  const size = 8 + nameBytes + 4 + 8 * nDims + 4 + 8;
  if (!c.has(size)) return size;

  c.pos += 8;
  const name = c.utf8(nameBytes);
  if (name === undefined) throw new QuantLensError('INVALID_UTF8', 'tensor name is not valid UTF-8', { file, offset: at + 8 });
  c.pos += 4;
  const shape = new Array<number>(nDims);
  let elements = 1;
  for (let j = 0; j < nDims; j++) {
    const lo = c.u32();
    const hi = c.i32();
    if (hi < 0) {
      const ne = (BigInt(hi) << 32n) + BigInt(lo);
      throw new QuantLensError('INVALID_SHAPE', `dimension ${j} has negative extent ${ne}`, { file, tensor: name, offset: c.pos - 8 });
    }
    if (hi >= UNSAFE_HIGH_WORD) {
      throw new QuantLensError('OVERFLOW', `extent of dimension ${j} is beyond 2^53`, { file, tensor: name, offset: c.pos - 8 });
    }
    const ne = hi * TWO_POW_32 + lo;
    shape[nDims - 1 - j] = ne;
    elements *= ne;
  }
  if (elements > Number.MAX_SAFE_INTEGER) {
    let exact = 1n;
    for (const d of shape) exact *= BigInt(d);
    const why = exact >= INT64_MAX ? 'overflows int64' : 'is beyond 2^53, more than any file holds';
    throw new QuantLensError('OVERFLOW', `element count ${exact} ${why}`, { file, tensor: name, offset: c.pos });
  }
  const typeAt = c.pos;
  const typeId = c.i32();
  const type = typeId >= 0 ? GGML_TYPE_BY_ID[typeId] : undefined;
  if (type === undefined) {
    throw new QuantLensError('INVALID_DTYPE', `unknown ggml type id ${typeId}`, { file, tensor: name, offset: typeAt });
  }
  const rowLength = nDims === 0 ? 1 : shape[nDims - 1]!;
  if (rowLength % type.blockSize !== 0) {
    throw new QuantLensError('INVALID_SHAPE', `row of ${rowLength} elements is not a multiple of ${type.dtype}'s block size ${type.blockSize}`, {
      file,
      tensor: name,
      offset: typeAt,
    });
  }
  const byteLength = (elements / type.blockSize) * type.bytesPerBlock;
  const offsetAt = c.pos;
  const offLo = c.u32();
  const offHi = c.u32();
  const offset = offHi * TWO_POW_32 + offLo;
  if (offHi >= UNSAFE_HIGH_WORD || byteLength > fileSize || offset > fileSize) {
    throw new QuantLensError('TRUNCATED', `tensor data (${byteLength} bytes at data offset ${(BigInt(offHi) << 32n) + BigInt(offLo)}) cannot fit in the ${fileSize}-byte file`, {
      file,
      tensor: name,
      offset: offsetAt,
    });
  }
  if (offset % alignment !== 0) {
    throw new QuantLensError('INVALID_OFFSETS', `data offset ${offset} is not a multiple of the alignment ${alignment}`, {
      file,
      tensor: name,
      offset: offsetAt,
    });
  }
  into.names.push(name);
  into.dtypes.push(type.dtype);
  into.shapes.push(shape);
  into.offsets.push(offset);
  into.byteLengths.push(byteLength);
  return 0;
}

function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function checkCount(n: bigint, limit: number, what: string, minBytes: number, c: GgufCursor, file: string, offset: number): void {
  if (n < 0n) throw new QuantLensError('INVALID_HEADER', `${what} count ${n} is negative`, { file, offset });
  if (n > BigInt(limit)) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${what} count ${n} exceeds the limit of ${limit}`, { file, offset });
  }
  if (n * BigInt(minBytes) > BigInt(c.remaining)) {
    throw new QuantLensError('TRUNCATED', `${n} ${what} entries cannot fit in the ${c.remaining} bytes left`, { file, offset });
  }
}

/** Keys and tensor names must be valid UTF-8: they identify things. */
async function readName(c: GgufCursor, what: string): Promise<string> {
  if (!c.has(8)) await c.need(8);
  const at = c.pos;
  const len = c.u64();
  checkStringLength(Number(len), c, at, what);
  const n = Number(len);
  if (!c.has(n)) await c.need(n);
  const s = c.utf8(n);
  if (s === undefined) throw new QuantLensError('INVALID_UTF8', `${what} is not valid UTF-8`, { file: c.file, offset: at + 8 });
  return s;
}

/** `len` may be a u64 read as an inexact number: beyond 2^53 it fails the caps all the same. */
function checkStringLength(len: number, c: GgufCursor, at: number, what: string): void {
  if (len > GGUF_MAX_STRING_BYTES) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${what} length ${len} exceeds the limit of ${GGUF_MAX_STRING_BYTES} bytes`, {
      file: c.file,
      offset: at,
    });
  }
  if (len > c.remaining) {
    throw new QuantLensError('TRUNCATED', `${what} of ${len} bytes runs past the end of the file`, { file: c.file, offset: at });
  }
}

/** String values may hold arbitrary bytes (tokenizer pieces): invalid UTF-8 is replaced, with a warning. */
async function readStringValue(c: GgufCursor, key: string, diagnostics: Diagnostic[]): Promise<string> {
  if (!c.has(8)) await c.need(8);
  const at = c.pos;
  const len = c.u64();
  checkStringLength(Number(len), c, at, 'string');
  const n = Number(len);
  if (!c.has(n)) await c.need(n);
  const s = c.utf8(n);
  if (s !== undefined) return s;
  diagnostics.push({
    severity: 'warning',
    code: 'INVALID_UTF8_VALUE',
    message: `string value of "${key}" is not valid UTF-8; shown with replacement characters (it will not round-trip)`,
    file: c.file,
    offset: at + 8,
  });
  return c.utf8Lossy(at + 8, n);
}

async function readValue(
  c: GgufCursor,
  type: number,
  key: string,
  typeAt: number,
  depth: number,
  diagnostics: Diagnostic[],
): Promise<MetadataValue> {
  if (!Number.isInteger(type) || type < 0 || type >= GGUF_VALUE_TYPES.length) {
    throw new QuantLensError('INVALID_VALUE_TYPE', `value type ${type} of "${key}" is not a GGUF type`, { file: c.file, offset: typeAt });
  }
  if (type === GGUF_TYPE_STRING) return { type: 'string', value: await readStringValue(c, key, diagnostics) };
  if (type === GGUF_TYPE_ARRAY) return readArray(c, key, depth + 1, diagnostics);
  if (!c.has(GGUF_VALUE_SIZE[type])) await c.need(GGUF_VALUE_SIZE[type]);
  return readScalar(c, type, key, diagnostics);
}

function readScalar(c: GgufCursor, type: number, key: string, diagnostics: Diagnostic[]): MetadataValue {
  switch (type) {
    case 0: return { type: 'u8', value: c.u8() };
    case 1: return { type: 'i8', value: c.i8() };
    case 2: return { type: 'u16', value: c.u16() };
    case 3: return { type: 'i16', value: c.i16() };
    case 4: return { type: 'u32', value: c.u32() };
    case 5: return { type: 'i32', value: c.i32() };
    case 6: return { type: 'f32', value: c.f32() };
    case 7: return { type: 'bool', value: readBool(c, key, diagnostics) };
    case 10: return { type: 'u64', value: c.u64() };
    case 11: return { type: 'i64', value: c.i64() };
    default: return { type: 'f64', value: c.f64() };
  }
}

function readBool(c: GgufCursor, key: string, diagnostics: Diagnostic[]): boolean {
  const b = c.u8();
  if (b > 1) {
    diagnostics.push({
      severity: 'warning',
      code: 'BOOL_VALUE',
      message: `bool in "${key}" is stored as ${b}; read as true as llama.cpp does (it will not round-trip)`,
      file: c.file,
      offset: c.pos - 1,
    });
  }
  return b !== 0;
}

async function readArray(c: GgufCursor, key: string, depth: number, diagnostics: Diagnostic[]): Promise<MetadataValue> {
  if (depth > GGUF_MAX_ARRAY_DEPTH) {
    throw new QuantLensError('LIMIT_EXCEEDED', `arrays in "${key}" nest deeper than ${GGUF_MAX_ARRAY_DEPTH}`, { file: c.file, offset: c.pos });
  }
  if (!c.has(12)) await c.need(12);
  const typeAt = c.pos;
  const itemType = c.i32();
  const count = c.u64();
  if (!Number.isInteger(itemType) || itemType < 0 || itemType >= GGUF_VALUE_TYPES.length) {
    throw new QuantLensError('INVALID_VALUE_TYPE', `array item type ${itemType} of "${key}" is not a GGUF type`, { file: c.file, offset: typeAt });
  }
  if (count > BigInt(GGUF_MAX_ARRAY_LENGTH)) {
    throw new QuantLensError('LIMIT_EXCEEDED', `array "${key}" has ${count} items, the limit is ${GGUF_MAX_ARRAY_LENGTH}`, {
      file: c.file,
      offset: typeAt + 4,
    });
  }
  if (count * BigInt(MIN_ELEMENT_BYTES[itemType]) > BigInt(c.remaining)) {
    throw new QuantLensError('TRUNCATED', `array "${key}" of ${count} items runs past the end of the file`, { file: c.file, offset: typeAt + 4 });
  }
  const n = Number(count);
  if (itemType === GGUF_TYPE_ARRAY) {
    // each item is itself an array body (item type, count, items), with no type tag of its own
    const items: MetadataValue[] = [];
    for (let i = 0; i < n; i++) items.push(await readArray(c, key, depth + 1, diagnostics));
    return { type: 'array', itemType: 'array', value: items };
  }
  const name = GGUF_VALUE_TYPES[itemType] as Exclude<MetadataType, 'array'>;
  const values: Array<number | bigint | boolean | string> = [];
  if (itemType === GGUF_TYPE_STRING) {
    for (let i = 0; i < n; i++) {
      // inline fast path: a vocabulary holds hundreds of thousands of short strings
      if (c.has(8)) {
        const len = c.peekU64();
        if (len <= BigInt(c.available - 8)) {
          c.pos += 8;
          const s = c.utf8(Number(len));
          if (s !== undefined) {
            values.push(s);
            continue;
          }
          c.pos -= 8 + Number(len);
        }
      }
      values.push(await readStringValue(c, key, diagnostics));
    }
  } else {
    const size = GGUF_VALUE_SIZE[itemType];
    let i = 0;
    while (i < n) {
      if (!c.has(size)) await c.need(size);
      const run = Math.min(n - i, Math.floor(c.available / size));
      if (itemType === 7) for (let k = 0; k < run; k++) values.push(readBool(c, key, diagnostics));
      else c.readRun(itemType, run, values as number[]);
      i += run;
    }
  }
  return { type: 'array', itemType: name, value: values } as MetadataValue;
}

function alignmentOf(metadata: Record<string, MetadataValue>, file: string): number {
  if (!Object.prototype.hasOwnProperty.call(metadata, GGUF_ALIGNMENT_KEY)) return GGUF_DEFAULT_ALIGNMENT;
  const v = metadata[GGUF_ALIGNMENT_KEY]!;
  if (v.type !== 'u32') {
    throw new QuantLensError('INVALID_ALIGNMENT', `${GGUF_ALIGNMENT_KEY} is of type ${v.type}, must be u32`, { file });
  }
  const a = v.value;
  if (a === 0 || (a & (a - 1)) !== 0) {
    throw new QuantLensError('INVALID_ALIGNMENT', `${GGUF_ALIGNMENT_KEY} ${a} is not a power of two`, { file });
  }
  if (a > GGUF_MAX_ALIGNMENT) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${GGUF_ALIGNMENT_KEY} ${a} exceeds the limit of ${GGUF_MAX_ALIGNMENT}`, { file });
  }
  return a;
}

/**
 * Every tensor inside the file and no two overlapping (errors); llama.cpp also wants the data packed
 * in listed order with padding to the alignment, which we only warn about.
 */
function checkTensorPlacement(
  tensors: GgufTensorInfo[],
  alignment: number,
  fileSize: number,
  file: string,
  diagnostics: Diagnostic[],
): void {
  let packed = 0;
  let inOrder = true;
  for (const t of tensors) {
    if (t.byteOffset + t.byteLength > fileSize) {
      throw new QuantLensError('TRUNCATED', `tensor data ends at byte ${t.byteOffset + t.byteLength}, the file has ${fileSize}`, {
        file,
        tensor: t.name,
        offset: t.byteOffset,
      });
    }
    if (inOrder && t.offset !== packed) inOrder = false;
    packed += alignUp(t.byteLength, alignment);
  }
  if (inOrder) return; // packed in order: no overlap possible
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const t = byOffset[i]!;
    if (t.offset < prev.offset + prev.byteLength && t.byteLength > 0 && prev.byteLength > 0) {
      throw new QuantLensError('INVALID_OFFSETS', `tensor data overlaps that of ${prev.name}`, { file, tensor: t.name, offset: t.byteOffset });
    }
  }
  diagnostics.push({
    severity: 'warning',
    code: 'NON_CANONICAL_LAYOUT',
    message: 'tensor data is not packed in listed order with alignment padding; llama.cpp will refuse this file',
    file,
  });
}

/** `name-00001-of-00003.gguf`, as llama.cpp's llama_split_path writes it. */
const SPLIT_NAME = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

function splitPath(dir: string, prefix: string, no: number, count: number): string {
  return join(dir, `${prefix}-${String(no).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.gguf`);
}

async function readOne(path: string, files: FileAccess, options: ReadOptions): Promise<GgufHeader> {
  const src = await files.open(path);
  try {
    const h = await readGgufHeader(src, options);
    if (src.name !== path) for (const t of h.tensors) t.file = path;
    return h;
  } finally {
    await src.close();
  }
}

/**
 * Opens a GGUF file; when it is one shard of a split model (`split.count` > 1 and the
 * `-0000K-of-0000N.gguf` name), opens every shard: metadata from the first, tensors from all.
 */
export async function readGguf(path: string, files: FileAccess, options: ReadOptions = {}): Promise<ModelInfo> {
  throwIfAborted(options.signal);
  const first = await readOne(path, files, options);
  const count = metadataNumber(first.metadata, 'split.count');
  const match = SPLIT_NAME.exec(basename(path));
  if (count === undefined || count <= 1) {
    return { format: 'gguf', files: [path], metadata: first.metadata, tensors: first.tensors, diagnostics: first.diagnostics };
  }
  if (match === null || Number(match[3]) !== count) {
    const diagnostics = [
      ...first.diagnostics,
      {
        severity: 'warning' as const,
        code: 'SPLIT_UNLOCATED',
        message: `file is one of ${count} split shards, but its name does not end in -0000K-of-${String(count).padStart(5, '0')}.gguf, so the others cannot be found; showing this shard only`,
        file: path,
      },
    ];
    return { format: 'gguf', files: [path], metadata: first.metadata, tensors: first.tensors, diagnostics };
  }
  if (count > MAX_SHARDS) {
    throw new QuantLensError('LIMIT_EXCEEDED', `split.count ${count} exceeds the limit of ${MAX_SHARDS} shards`, { file: path });
  }
  const dir = dirname(path);
  const paths = Array.from({ length: count }, (_, i) => splitPath(dir, match[1]!, i + 1, count));
  const headers = await mapLimited(paths, SHARD_OPEN_CONCURRENCY, async (p, i) => {
    if (p === path) return first;
    if (!(await files.exists(p))) throw new QuantLensError('MISSING_SHARD', `split shard ${i + 1} of ${count} is missing`, { file: p });
    throwIfAborted(options.signal);
    return readOne(p, files, options);
  });

  const tensors: TensorInfo[] = [];
  const diagnostics: Diagnostic[] = [];
  const seen = new Map<string, string>();
  headers.forEach((h, i) => {
    const p = paths[i]!;
    const no = metadataNumber(h.metadata, 'split.no');
    if (no !== i) {
      throw new QuantLensError('INVALID_HEADER', `split.no is ${no ?? 'missing'}, the file name says shard ${i + 1} (split.no ${i})`, { file: p });
    }
    const c = metadataNumber(h.metadata, 'split.count');
    if (c !== count) {
      throw new QuantLensError('INVALID_HEADER', `split.count is ${c ?? 'missing'}, the first shard says ${count}`, { file: p });
    }
    for (const t of h.tensors) {
      const other = seen.get(t.name);
      if (other !== undefined) throw new QuantLensError('DUPLICATE_NAME', `tensor is in both ${other} and ${p}`, { file: p, tensor: t.name });
      seen.set(t.name, p);
      tensors.push(t);
    }
    diagnostics.push(...h.diagnostics);
  });
  const metadata = headers[0]!.metadata;
  const declared = metadataNumber(metadata, 'split.tensors.count');
  if (declared !== undefined && declared !== tensors.length) {
    diagnostics.push({
      severity: 'warning',
      code: 'SPLIT_TENSOR_COUNT',
      message: `split.tensors.count says ${declared} tensors, the ${count} shards hold ${tensors.length}`,
      file: paths[0],
    });
  }
  return { format: 'gguf', files: paths, metadata, tensors, diagnostics };
}

export const ggufReader: CheckpointReader = {
  format: 'gguf',
  label: 'GGUF',
  sniff(path: string, head: Uint8Array): boolean {
    const magic = head.length >= 4 && head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46;
    return magic || path.toLowerCase().endsWith('.gguf');
  },
  read: readGguf,
};

/**
 * Header bytes are read in chunks, not one read per field: the first chunk is small so that a small
 * file's tensor data is barely touched, later ones double up to the largest.
 */
const CURSOR_FIRST_CHUNK_BYTES = 64 << 10;
const CURSOR_MAX_CHUNK_BYTES = 1 << 20;
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Lossy = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * A buffered little-endian reader over a ByteSource. The synchronous getters assume the bytes are
 * buffered: callers check `has(n)` and `await need(n)` only when it is false, so the common path awaits nothing.
 */
class GgufCursor {
  readonly file: string;
  /** Absolute offset of the next byte. */
  pos = 0;
  /** Byte length of the last string read. */
  lastStringBytes = 0;
  private buf = Buffer.alloc(0);
  private view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  private bufStart = 0;
  private bufLength = 0;
  private chunk = CURSOR_FIRST_CHUNK_BYTES / 2;

  constructor(private readonly src: ByteSource) {
    this.file = src.name;
  }

  /** Bytes left in the file after `pos`. */
  get remaining(): number {
    return this.src.size - this.pos;
  }

  /** Bytes buffered after `pos`. */
  get available(): number {
    return this.bufStart + this.bufLength - this.pos;
  }

  has(n: number): boolean {
    return this.pos + n <= this.bufStart + this.bufLength;
  }

  /** Buffers at least `n` bytes from `pos`, or throws TRUNCATED. */
  async need(n: number): Promise<void> {
    if (this.has(n)) return;
    if (n > this.remaining) {
      throw new QuantLensError('TRUNCATED', `needs ${n} bytes at offset ${this.pos}, the file ends at ${this.src.size}`, {
        file: this.file,
        offset: this.pos,
      });
    }
    this.chunk = Math.min(this.chunk * 2, CURSOR_MAX_CHUNK_BYTES);
    const length = Math.min(this.remaining, Math.max(this.chunk, n));
    if (this.buf.length < length) {
      this.buf = Buffer.alloc(length);
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
    }
    await readInto(this.src, this.pos, this.buf.subarray(0, length));
    this.bufStart = this.pos;
    this.bufLength = length;
  }

  private take(n: number): number {
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }

  u8(): number { return this.buf[this.take(1)]!; }
  i8(): number { return this.view.getInt8(this.take(1)); }
  u16(): number { return this.view.getUint16(this.take(2), true); }
  i16(): number { return this.view.getInt16(this.take(2), true); }
  u32(): number { return this.view.getUint32(this.take(4), true); }
  i32(): number { return this.view.getInt32(this.take(4), true); }
  f32(): number { return this.view.getFloat32(this.take(4), true); }
  f64(): number { return this.view.getFloat64(this.take(8), true); }
  u64(): bigint { return this.view.getBigUint64(this.take(8), true); }
  peekU64(): bigint { return this.view.getBigUint64(this.pos - this.bufStart, true); }
  /** u64 at `pos + rel` as a number (inexact beyond 2^53, which every caller treats as too large). */
  peekU64Number(rel: number): number {
    const at = this.pos - this.bufStart + rel;
    return this.view.getUint32(at + 4, true) * 0x1_0000_0000 + this.view.getUint32(at, true);
  }
  peekU32(rel: number): number { return this.view.getUint32(this.pos - this.bufStart + rel, true); }

  /** Appends `count` buffered fixed-size numbers of GGUF value type `type` (not bool, string or array). */
  readRun(type: number, count: number, into: Array<number | bigint>): void {
    const v = this.view;
    let at = this.take(count * GGUF_VALUE_SIZE[type]);
    switch (type) {
      case 0: for (let k = 0; k < count; k++) into.push(this.buf[at++]!); break;
      case 1: for (let k = 0; k < count; k++) into.push(v.getInt8(at++)); break;
      case 2: for (let k = 0; k < count; k++, at += 2) into.push(v.getUint16(at, true)); break;
      case 3: for (let k = 0; k < count; k++, at += 2) into.push(v.getInt16(at, true)); break;
      case 4: for (let k = 0; k < count; k++, at += 4) into.push(v.getUint32(at, true)); break;
      case 5: for (let k = 0; k < count; k++, at += 4) into.push(v.getInt32(at, true)); break;
      case 6: for (let k = 0; k < count; k++, at += 4) into.push(v.getFloat32(at, true)); break;
      case 10: for (let k = 0; k < count; k++, at += 8) into.push(v.getBigUint64(at, true)); break;
      case 11: for (let k = 0; k < count; k++, at += 8) into.push(v.getBigInt64(at, true)); break;
      default: for (let k = 0; k < count; k++, at += 8) into.push(v.getFloat64(at, true)); break;
    }
  }
  i64(): bigint { return this.view.getBigInt64(this.take(8), true); }

  /** Decodes `n` buffered bytes as strict UTF-8; undefined when invalid (the bytes are consumed either way). */
  utf8(n: number): string | undefined {
    this.lastStringBytes = n;
    const start = this.take(n);
    // Buffer's decoder is the fastest per call; it replaces bad sequences with U+FFFD, so only then check strictly
    const s = this.buf.toString('utf8', start, start + n);
    if (s.indexOf('\ufffd') === -1) return s;
    try {
      return utf8Strict.decode(this.buf.subarray(start, start + n));
    } catch {
      return undefined;
    }
  }

  /** Decodes buffered bytes at absolute offset `at`, replacing invalid sequences. */
  utf8Lossy(at: number, n: number): string {
    const start = at - this.bufStart;
    return utf8Lossy.decode(this.buf.subarray(start, start + n));
  }
}
