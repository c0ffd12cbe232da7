/**
 * safetensors reader: single files, `*.safetensors.index.json` shard sets, and folders holding either.
 * Rules follow the Rust crate (`safetensors/src/tensor.rs`): u64 LE header length ≤ 100 MB, strict UTF-8
 * JSON starting with '{', offsets contiguous once sorted by offset, byte length = product(shape) × dtype
 * size with checked arithmetic, and the last tensor ends exactly at the end of the file.
 * Only the header is read, never tensor data.
 */
import { join, relative } from 'node:path';
import { readExact, type ByteSource } from '../bytesource';
import { isDType, type DType } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import {
  MAX_SHARDS,
  MAX_TENSOR_DIMS,
  MAX_TENSORS,
  SAFETENSORS_MAX_HEADER_BYTES,
  SHARD_OPEN_CONCURRENCY,
} from '../limits';
import { setOwn, type Diagnostic, type MetadataValue, type ModelInfo, type TensorInfo } from '../model';
import { mapLimited, notInWeightMap, readShardIndex } from './shard-index';
import type { CheckpointReader, FileAccess, ReadOptions } from './types';

/**
 * Bits per element of every dtype the safetensors format defines. Types QuantLens has no DType for
 * (F4, F6_*, F8_E8M0, C64) are still size-checked, then left out of the tensor list with a warning.
 */
const SAFETENSORS_DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, C64: 64, F64: 64, I64: 64, U64: 64,
};

/** The reference writer pads the header with spaces so that its length is a multiple of this. */
const HEADER_ALIGNMENT = 8;

const INDEX_SUFFIX = '.safetensors.index.json';

export interface SafetensorsHeader {
  /** Length of the JSON header in bytes (the u64 at offset 0). */
  headerLength: number;
  /** Absolute offset of the data section: 8 + headerLength. */
  dataOffset: number;
  /** `__metadata__`, string values, in the header's key order. */
  metadata: Record<string, MetadataValue>;
  /** Sorted by byte offset; `file` is the source's name. */
  tensors: TensorInfo[];
  diagnostics: Diagnostic[];
}

interface RawEntry {
  name: string;
  dtype: string;
  shape: number[];
  start: number;
  end: number;
}

/** Reads and validates one safetensors file's header (never its tensor data). */
export async function readSafetensorsHeader(src: ByteSource): Promise<SafetensorsHeader> {
  const file = src.name;
  if (src.size < 8) {
    throw new QuantLensError('TRUNCATED', `file has ${src.size} bytes, a safetensors header needs 8`, { file, offset: 0 });
  }
  const head = await readExact(src, 0, 8);
  const declared = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    throw new QuantLensError(
      'HEADER_TOO_LARGE',
      `header length ${declared} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`,
      { file, offset: 0 },
    );
  }
  const headerLength = Number(declared);
  const dataOffset = 8 + headerLength;
  if (dataOffset > src.size) {
    throw new QuantLensError('TRUNCATED', `header of ${headerLength} bytes runs past the end of the ${src.size}-byte file`, {
      file,
      offset: 8,
    });
  }
  const headerBytes = await readExact(src, 8, headerLength);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new QuantLensError('INVALID_UTF8', 'header is not valid UTF-8', { file, offset: 8 });
  }
  if (text.charCodeAt(0) !== 0x7b /* { */) {
    throw new QuantLensError('INVALID_HEADER', 'header does not start with "{"', { file, offset: 8 });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new QuantLensError('INVALID_JSON', `header is not valid JSON: ${(err as Error).message}`, { file, offset: 8 });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new QuantLensError('INVALID_HEADER', 'header is not a JSON object', { file, offset: 8 });
  }

  const diagnostics: Diagnostic[] = [];
  const padding = trailingWhitespace(text);
  const referencePadding = headerLength % HEADER_ALIGNMENT === 0 && padding.length < HEADER_ALIGNMENT && /^ *$/.test(padding);
  if (padding.length > 0 && !referencePadding) {
    diagnostics.push({
      severity: 'warning',
      code: 'HEADER_PADDING',
      message: `header ends with ${padding.length} bytes of whitespace padding (the reference writer pads at most ${HEADER_ALIGNMENT - 1} spaces to an 8-byte boundary)`,
      file,
      offset: dataOffset - padding.length,
    });
  }

  const obj = parsed as Record<string, unknown>;
  const keys = Object.keys(obj);
  checkDuplicateKeys(text, keys.length, file);
  if (keys.length > MAX_TENSORS + 1) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${keys.length} header entries exceed the limit of ${MAX_TENSORS} tensors`, { file });
  }

  const metadata: Record<string, MetadataValue> = {};
  const entries: RawEntry[] = [];
  for (const name of keys) {
    const value = obj[name];
    if (name === '__metadata__') {
      readMetadataMap(value, metadata, file);
      continue;
    }
    entries.push(parseEntry(name, value, file));
  }

  entries.sort((a, b) => a.start - b.start || a.end - b.end);
  const tensors: TensorInfo[] = [];
  let expected = 0;
  for (const e of entries) {
    if (e.start !== expected) {
      const what = e.start > expected ? `a gap of ${e.start - expected} bytes before it` : 'it overlaps the tensor before it';
      throw new QuantLensError('INVALID_OFFSETS', `data_offsets [${e.start}, ${e.end}] are not contiguous: ${what}`, {
        file,
        tensor: e.name,
        offset: dataOffset + e.start,
      });
    }
    const byteLength = checkedByteLength(e, file);
    if (byteLength !== BigInt(e.end - e.start)) {
      throw new QuantLensError(
        'SIZE_MISMATCH',
        `${e.dtype} ${JSON.stringify(e.shape)} needs ${byteLength} bytes, data_offsets span ${e.end - e.start}`,
        { file, tensor: e.name, offset: dataOffset + e.start },
      );
    }
    expected = e.end;
    if (!isDType(e.dtype)) {
      diagnostics.push({
        severity: 'warning',
        code: 'UNSUPPORTED_DTYPE',
        message: `dtype ${e.dtype} is valid safetensors but not supported by QuantLens; the tensor is left out`,
        tensor: e.name,
        file,
        offset: dataOffset + e.start,
      });
      continue;
    }
    tensors.push({
      name: e.name,
      dtype: e.dtype as DType,
      shape: e.shape,
      file,
      byteOffset: dataOffset + e.start,
      byteLength: e.end - e.start,
      encoding: 'raw',
    });
  }

  const end = dataOffset + expected;
  if (end > src.size) {
    throw new QuantLensError('TRUNCATED', `tensor data ends at byte ${end}, the file has ${src.size}`, { file, offset: src.size });
  }
  if (end < src.size) {
    throw new QuantLensError('SIZE_MISMATCH', `tensor data ends at byte ${end} but the file has ${src.size} bytes`, {
      file,
      offset: end,
    });
  }
  return { headerLength, dataOffset, metadata, tensors, diagnostics };
}

function trailingWhitespace(text: string): string {
  let i = text.length;
  while (i > 0) {
    const c = text.charCodeAt(i - 1);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
    i--;
  }
  return text.slice(i);
}

/**
 * JSON.parse keeps the last of duplicate keys silently; the Rust crate's map does too, but a
 * duplicate tensor name makes the file ambiguous, so count the top-level keys in the text.
 */
function checkDuplicateKeys(text: string, parsedKeys: number, file: string): void {
  const found = topLevelKeys(text);
  if (found.length === parsedKeys) return;
  const seen = new Set<string>();
  for (const raw of found) {
    const k = JSON.parse(raw) as string;
    if (seen.has(k)) throw new QuantLensError('DUPLICATE_NAME', `header names "${k}" more than once`, { file, tensor: k });
    seen.add(k);
  }
}

/** Top-level keys of a JSON object text already known to parse, as raw JSON string literals. */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
      if (depth === 1 && expectKey) keys.push(text.slice(start, i + 1));
      expectKey = false;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      expectKey = depth === 1;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */) {
      expectKey = depth === 1;
    }
  }
  return keys;
}

function readMetadataMap(value: unknown, into: Record<string, MetadataValue>, file: string): void {
  if (value === null) return;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new QuantLensError('INVALID_HEADER', '__metadata__ must be a map of strings to strings', { file, tensor: '__metadata__' });
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') {
      throw new QuantLensError('INVALID_HEADER', `__metadata__ value of "${k}" is a ${typeof v}, must be a string`, {
        file,
        tensor: '__metadata__',
      });
    }
    setOwn(into, k, { type: 'string', value: v });
  }
}

function parseEntry(name: string, value: unknown, file: string): RawEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new QuantLensError('INVALID_HEADER', 'tensor entry is not an object', { file, tensor: name });
  }
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_BITS, dtype)) {
    throw new QuantLensError('INVALID_DTYPE', `unknown dtype ${JSON.stringify(dtype)}`, { file, tensor: name });
  }
  if (!Array.isArray(shape)) {
    throw new QuantLensError('INVALID_SHAPE', 'shape is not an array', { file, tensor: name });
  }
  if (shape.length > MAX_TENSOR_DIMS) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${shape.length} dimensions exceed the limit of ${MAX_TENSOR_DIMS}`, { file, tensor: name });
  }
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      throw new QuantLensError('INVALID_SHAPE', `shape ${JSON.stringify(shape)} has an entry that is not a non-negative integer`, {
        file,
        tensor: name,
      });
    }
    if (!Number.isSafeInteger(d)) {
      throw new QuantLensError('OVERFLOW', `shape extent ${d} is beyond 2^53`, { file, tensor: name });
    }
  }
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw new QuantLensError('INVALID_OFFSETS', 'data_offsets is not a [begin, end] pair', { file, tensor: name });
  }
  const [start, end] = offsets as unknown[];
  for (const o of [start, end]) {
    if (typeof o !== 'number' || !Number.isInteger(o) || o < 0) {
      throw new QuantLensError('INVALID_OFFSETS', `data_offsets ${JSON.stringify(offsets)} are not non-negative integers`, {
        file,
        tensor: name,
      });
    }
    if (!Number.isSafeInteger(o)) {
      throw new QuantLensError('OVERFLOW', `data offset ${o} is beyond 2^53`, { file, tensor: name });
    }
  }
  if ((end as number) < (start as number)) {
    throw new QuantLensError('INVALID_OFFSETS', `data_offsets [${start}, ${end}] end before they begin`, { file, tensor: name });
  }
  return { name, dtype, shape: shape as number[], start: start as number, end: end as number };
}

/** product(shape) × bits ÷ 8, in bigint; OVERFLOW past 2^64 as the crate's checked_mul on usize. */
function checkedByteLength(e: RawEntry, file: string): bigint {
  let elements = 1n;
  for (const d of e.shape) elements *= BigInt(d);
  const bits = elements * BigInt(SAFETENSORS_DTYPE_BITS[e.dtype]!);
  if (bits >= 1n << 64n) {
    throw new QuantLensError('OVERFLOW', `shape ${JSON.stringify(e.shape)} of ${e.dtype} overflows 64-bit size arithmetic`, {
      file,
      tensor: e.name,
    });
  }
  if (bits % 8n !== 0n) {
    throw new QuantLensError('SIZE_MISMATCH', `${elements} elements of ${e.dtype} do not fill whole bytes`, { file, tensor: e.name });
  }
  return bits / 8n;
}

async function readSingle(path: string, files: FileAccess): Promise<SafetensorsHeader> {
  const src = await files.open(path);
  try {
    return await readSafetensorsHeader(src);
  } finally {
    await src.close();
  }
}

/** Opens every shard of a `*.safetensors.index.json` and checks its `weight_map` against them. */
export async function readSafetensorsIndex(indexPath: string, files: FileAccess, options: ReadOptions = {}): Promise<ModelInfo> {
  const index = await readShardIndex(indexPath, files);
  const { dir, expectedShard, shards } = index;
  const present = await mapLimited(shards, SHARD_OPEN_CONCURRENCY, (p) => files.exists(p));
  const missing = shards.filter((_, i) => !present[i]);
  if (missing.length > 0) {
    throw new QuantLensError('MISSING_SHARD', `missing shard${missing.length > 1 ? 's' : ''}: ${missing.map((p) => relative(dir, p)).join(', ')}`, {
      file: missing[0],
    });
  }
  throwIfAborted(options.signal);
  const headers = await mapLimited(shards, SHARD_OPEN_CONCURRENCY, async (p) => {
    throwIfAborted(options.signal);
    return readSingle(p, files);
  });

  const model = mergeShards(indexPath, shards, headers);
  for (const [tensor, shard] of expectedShard) {
    const found = model.tensorShard.get(tensor);
    if (found === undefined && model.leftOut.has(tensor)) continue;
    if (found !== shard) {
      throw new QuantLensError('TENSOR_NOT_FOUND', `weight_map puts tensor in ${relative(dir, shard)}, which does not hold it`, {
        file: shard,
        tensor,
      });
    }
  }
  model.info.diagnostics.push(...notInWeightMap(index, model.info.tensors));
  const totalSize = (index.json as { metadata?: { total_size?: unknown } }).metadata?.total_size;
  if (typeof totalSize === 'number') {
    const bytes = model.info.tensors.reduce((s, t) => s + t.byteLength, 0);
    if (totalSize !== bytes) {
      model.info.diagnostics.push({
        severity: 'info',
        code: 'TOTAL_SIZE_MISMATCH',
        message: `index metadata.total_size is ${totalSize}, the shards hold ${bytes} bytes of tensors`,
        file: indexPath,
      });
    }
  }
  return model.info;
}

/** Joins shard headers into one model: tensors in shard order, `__metadata__` keys first seen wins. */
function mergeShards(
  entry: string | undefined,
  shards: string[],
  headers: SafetensorsHeader[],
): { info: ModelInfo; tensorShard: Map<string, string>; leftOut: Set<string> } {
  const metadata: Record<string, MetadataValue> = {};
  const tensors: TensorInfo[] = [];
  const diagnostics: Diagnostic[] = [];
  const tensorShard = new Map<string, string>();
  const leftOut = new Set<string>();
  headers.forEach((h, i) => {
    const shard = shards[i]!;
    for (const [k, v] of Object.entries(h.metadata)) {
      if (!Object.prototype.hasOwnProperty.call(metadata, k)) setOwn(metadata, k, v);
    }
    for (const t of h.tensors) {
      const other = tensorShard.get(t.name);
      if (other !== undefined) {
        throw new QuantLensError('DUPLICATE_NAME', `tensor is in both ${other} and ${shard}`, { file: shard, tensor: t.name });
      }
      tensorShard.set(t.name, shard);
      tensors.push(t);
    }
    for (const d of h.diagnostics) {
      if (d.code === 'UNSUPPORTED_DTYPE' && d.tensor !== undefined) leftOut.add(d.tensor);
      diagnostics.push(d);
    }
  });
  const fileList = entry === undefined ? shards : [entry, ...shards];
  return { info: { format: 'safetensors', files: fileList, metadata, tensors, diagnostics }, tensorShard, leftOut };
}

async function readFolder(dir: string, files: FileAccess, options: ReadOptions): Promise<ModelInfo> {
  const names = await files.list(dir);
  const indexes = names.filter((n) => n.endsWith(INDEX_SUFFIX));
  if (indexes.length === 1 || indexes.includes(`model${INDEX_SUFFIX}`)) {
    const chosen = indexes.length === 1 ? indexes[0]! : `model${INDEX_SUFFIX}`;
    return readSafetensorsIndex(join(dir, chosen), files, options);
  }
  if (indexes.length > 1) {
    throw new QuantLensError('UNKNOWN_FORMAT', `folder holds several safetensors indexes: ${indexes.join(', ')}`, { file: dir });
  }
  const singles = names.filter((n) => n.endsWith('.safetensors')).map((n) => join(dir, n));
  if (singles.length === 0) {
    throw new QuantLensError('UNKNOWN_FORMAT', 'folder holds no .safetensors file or index', { file: dir });
  }
  if (singles.length > MAX_SHARDS) {
    throw new QuantLensError('LIMIT_EXCEEDED', `folder holds ${singles.length} safetensors files, the limit is ${MAX_SHARDS}`, { file: dir });
  }
  const headers = await mapLimited(singles, SHARD_OPEN_CONCURRENCY, async (p) => {
    throwIfAborted(options.signal);
    return readSingle(p, files);
  });
  const { info } = mergeShards(undefined, singles, headers);
  if (singles.length > 1) {
    info.diagnostics.push({
      severity: 'warning',
      code: 'NO_INDEX',
      message: `folder holds ${singles.length} .safetensors files and no index; read as shards of one model`,
      file: dir,
    });
  }
  return info;
}

function looksLikeSafetensorsHead(head: Uint8Array): boolean {
  if (head.length < 9 || head[8] !== 0x7b) return false;
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(SAFETENSORS_MAX_HEADER_BYTES);
}

export const safetensorsReader: CheckpointReader = {
  format: 'safetensors',
  label: 'safetensors',
  sniff(path: string, head: Uint8Array): boolean {
    const lower = path.toLowerCase();
    return lower.endsWith('.safetensors') || lower.endsWith(INDEX_SUFFIX) || looksLikeSafetensorsHead(head);
  },
  async read(path: string, files: FileAccess, options: ReadOptions = {}): Promise<ModelInfo> {
    throwIfAborted(options.signal);
    if (await files.isDirectory(path)) return readFolder(path, files, options);
    if (path.toLowerCase().endsWith(INDEX_SUFFIX)) return readSafetensorsIndex(path, files, options);
    const h = await readSingle(path, files);
    return { format: 'safetensors', files: [path], metadata: h.metadata, tensors: h.tensors, diagnostics: h.diagnostics };
  },
};
