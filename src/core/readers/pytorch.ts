/**
 * PyTorch reader: zip checkpoints (`<archive>/data.pkl` + `<archive>/data/<key>` storages), legacy
 * (non-zip) pickles, TorchScript archives (`data.pkl` + `constants.pkl`; `code/` is never read) and
 * `pytorch_model.bin.index.json` shard sets. The pickle is interpreted, never executed (./pickle).
 * Layouts follow torch/serialization.py (`_load`, `_legacy_load`).
 */
import { basename, join, relative } from 'node:path';
import { readExact, type ByteSource } from '../bytesource';
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import {
  MAX_TENSORS,
  PICKLE_MAX_BYTES,
  PICKLE_MAX_DEPTH,
  PYTORCH_MAX_GATHER_BYTES,
  PYTORCH_MAX_STORAGES,
} from '../limits';
import { setOwn, type Diagnostic, type MetadataValue, type ModelInfo, type TensorInfo } from '../model';
import {
  loadPickle,
  PickleEndOfInput,
  PyDict,
  PyObject,
  PySet,
  PyStorage,
  PyTensor,
  PyTuple,
  storageFromPersistentId,
  type PyValue,
} from '../pickle';
import { entryDataOffset, hasZipMagic, readEntryBytes, readZipDirectory, storedEntryOffset, type ZipArchive } from '../zip';
import { notInWeightMap, readShardIndex } from './shard-index';
import type { CheckpointReader, FileAccess, ReadOptions } from './types';

/** torch/serialization.py MAGIC_NUMBER and PROTOCOL_VERSION of legacy files. */
export const LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
export const LEGACY_PROTOCOL_VERSION = 1001n;
const INDEX_NAME = 'pytorch_model.bin.index.json';
/** First window read for a legacy file's pickles; doubled until they fit (up to PICKLE_MAX_BYTES). */
const LEGACY_FIRST_WINDOW = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Walking the unpickled value: tensors by dotted path, simple values to metadata

interface NamedTensor {
  name: string;
  tensor: PyTensor;
}

interface Collected {
  tensors: NamedTensor[];
  metadata: Record<string, MetadataValue>;
}

function keyText(k: PyValue): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'bigint' || typeof k === 'number' || typeof k === 'boolean') return String(k);
  if (k === null) return 'None';
  if (k instanceof Uint8Array) return new TextDecoder('latin1').decode(k);
  if (k instanceof PyTuple) return k.items.map(keyText).join(',');
  return '?';
}

function join2(prefix: string, key: string): string {
  return prefix === '' ? key : `${prefix}.${key}`;
}

function scalarMetadata(v: PyValue): MetadataValue | undefined {
  if (typeof v === 'bigint') return { type: 'i64', value: v };
  if (typeof v === 'number') return { type: 'f64', value: v };
  if (typeof v === 'boolean') return { type: 'bool', value: v };
  if (typeof v === 'string') return { type: 'string', value: v };
  return undefined;
}

/** A list or tuple of one simple type becomes an array metadata value. */
function arrayMetadata(items: PyValue[]): MetadataValue | undefined {
  if (items.length === 0) return undefined;
  const first = scalarMetadata(items[0]!);
  if (!first || first.type === 'array') return undefined;
  const values: Array<number | bigint | boolean | string> = [];
  for (const item of items) {
    const m = scalarMetadata(item);
    if (!m || m.type !== first.type) return undefined;
    values.push(m.value as number | bigint | boolean | string);
  }
  return { type: 'array', itemType: first.type, value: values };
}

/** Names tensors by their container path (`model.layers.0.w`, lists by index, TorchScript attributes). */
export function collectTensors(root: PyValue, rootName = ''): Collected {
  const out: Collected = { tensors: [], metadata: {} };
  const onPath = new Set<object>();
  const walk = (v: PyValue, name: string, depth: number): void => {
    if (depth > PICKLE_MAX_DEPTH) {
      throw new QuantLensError('LIMIT_EXCEEDED', `containers nested deeper than ${PICKLE_MAX_DEPTH}`, { tensor: name });
    }
    if (v instanceof PyTensor) {
      out.tensors.push({ name: name === '' ? 'tensor' : name, tensor: v });
      return;
    }
    const scalar = scalarMetadata(v);
    if (scalar) {
      setOwn(out.metadata, name === '' ? 'value' : name, scalar);
      return;
    }
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return;
    if (onPath.has(v)) return; // a self-referencing container: its contents are already named
    onPath.add(v);
    if (v instanceof PyDict) {
      for (const [k, item] of v.entries) walk(item, join2(name, keyText(k)), depth + 1);
    } else if (Array.isArray(v) || v instanceof PyTuple) {
      const items = Array.isArray(v) ? v : v.items;
      const asArray = items.some((x) => typeof x === 'object' && x !== null) ? undefined : arrayMetadata(items);
      if (asArray) setOwn(out.metadata, name === '' ? 'value' : name, asArray);
      else items.forEach((item, i) => walk(item, join2(name, String(i)), depth + 1));
    } else if (v instanceof PyObject) {
      for (const [k, item] of v.attrs) walk(item, join2(name, k), depth + 1);
      if (v.state !== null) walk(v.state, name, depth + 1);
    } else if (v instanceof PySet) {
      v.items.forEach((item, i) => walk(item, join2(name, String(i)), depth + 1));
    }
    onPath.delete(v);
  };
  walk(root, rootName, 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// From pickled views to TensorInfo

/** Where a storage's bytes are: absolute offset and length in the checkpoint file. */
interface StorageExtent {
  offset: number;
  bytes: number;
  storageKey: string;
}

function safeNumber(v: bigint, what: string, file: string, tensor?: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new QuantLensError('OVERFLOW', `${what} ${v} exceeds 2^53`, { file, tensor });
  return Number(v);
}

/** Strides of a contiguous row-major tensor; size-1 dimensions may carry any stride, as torch's is_contiguous allows. */
function isRowMajor(shape: bigint[], strides: bigint[]): boolean {
  let expected = 1n;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i]! !== 1n && strides[i]! !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

function toTensorInfo(
  named: NamedTensor,
  file: string,
  extent: StorageExtent,
  diagnostics: Diagnostic[],
): TensorInfo | undefined {
  const { name, tensor } = named;
  const elementType = tensor.dtype;
  const dtype: DType | undefined = elementType.dtype;
  if (dtype === undefined) {
    diagnostics.push({
      severity: 'warning',
      code: 'UNSUPPORTED_DTYPE',
      message: `torch.${elementType.torchName} tensors are not modelled; left out`,
      tensor: name,
      file,
    });
    return undefined;
  }
  const size = BigInt(DTYPES[dtype].bytesPerBlock);
  let elements = 1n;
  let lastIndex = 0n;
  for (let i = 0; i < tensor.shape.length; i++) {
    elements *= tensor.shape[i]!;
    lastIndex += (tensor.shape[i]! - 1n) * tensor.strides[i]!;
  }
  const spanElements = elements === 0n ? 0n : lastIndex + 1n;
  const startByte = tensor.storageOffset * size;
  const spanBytes = spanElements * size;
  if (startByte + spanBytes > BigInt(extent.bytes)) {
    throw new QuantLensError(
      'SIZE_MISMATCH',
      `view of ${spanElements} elements at element ${tensor.storageOffset} needs ${startByte + spanBytes} bytes; storage ${extent.storageKey} has ${extent.bytes}`,
      { file, tensor: name },
    );
  }
  safeNumber(elements * size, 'tensor size', file, name);
  const info: TensorInfo = {
    name,
    dtype,
    shape: tensor.shape.map((d) => safeNumber(d, 'dimension', file, name)),
    file,
    byteOffset: extent.offset + Number(startByte),
    byteLength: Number(spanBytes),
    encoding: 'pytorch-view',
    storageKey: extent.storageKey,
  };
  if (!isRowMajor(tensor.shape, tensor.strides)) info.strides = tensor.strides.map((s) => safeNumber(s, 'stride', file, name));
  return info;
}

/** Builds TensorInfos, dropping duplicate names with a diagnostic. */
function buildTensors(
  named: NamedTensor[],
  file: string,
  extentOf: (storage: PyStorage) => StorageExtent,
  diagnostics: Diagnostic[],
): TensorInfo[] {
  if (named.length > MAX_TENSORS) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${named.length} tensors, limit ${MAX_TENSORS}`, { file });
  }
  const seen = new Set<string>();
  const tensors: TensorInfo[] = [];
  for (const n of named) {
    if (seen.has(n.name)) {
      diagnostics.push({ severity: 'warning', code: 'DUPLICATE_NAME', message: 'a second tensor has this name; only the first is listed', tensor: n.name, file });
      continue;
    }
    seen.add(n.name);
    const info = toTensorInfo(n, file, extentOf(n.tensor.storage), diagnostics);
    if (info) tensors.push(info);
  }
  return tensors;
}

// ---------------------------------------------------------------------------------------------
// Zip archives (torch.save since 1.6, TorchScript)

interface SingleFile {
  tensors: TensorInfo[];
  metadata: Record<string, MetadataValue>;
  diagnostics: Diagnostic[];
}

/** Storages named by persistent ids, one object per key (torch keeps the first it loaded). */
function storageTable(): { storages: Map<string, PyStorage>; persistentLoad: (pid: PyValue) => PyValue } {
  const storages = new Map<string, PyStorage>();
  return {
    storages,
    persistentLoad(pid: PyValue): PyValue {
      const s = storageFromPersistentId(pid);
      const known = storages.get(s.key);
      if (known && s.viewOffset === 0n && s.viewNumel === s.numel) return known;
      if (!known) {
        if (storages.size >= PYTORCH_MAX_STORAGES) {
          throw new QuantLensError('LIMIT_EXCEEDED', `more than ${PYTORCH_MAX_STORAGES} storages`);
        }
        storages.set(s.key, new PyStorage(s.key, s.storageType, s.location, s.numel));
      }
      return s;
    },
  };
}

async function readZipCheckpoint(path: string, src: ByteSource, signal: AbortSignal | undefined): Promise<SingleFile> {
  const zip = await readZipDirectory(src);
  const first = zip.entries[0];
  const slash = first ? first.name.indexOf('/') : -1;
  // torch names every record "<archive>/<record>" with one folder of any name (caffe2 inline_container.cc).
  const prefix = slash > 0 ? first!.name.slice(0, slash + 1) : '';
  const dataPkl = zip.byName.get(`${prefix}data.pkl`);
  if (!dataPkl) {
    throw new QuantLensError('INVALID_ZIP', `zip has no ${prefix}data.pkl: not a PyTorch archive`, { file: path });
  }
  const diagnostics: Diagnostic[] = [];
  const byteorder = zip.byName.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(await readEntryBytes(src, byteorder, 16));
    if (order === 'big') throw new QuantLensError('UNSUPPORTED', 'big-endian checkpoints are not supported', { file: path });
    if (order !== 'little') throw new QuantLensError('INVALID_ZIP', `unknown byteorder record "${order}"`, { file: path });
  }

  // TorchScript keeps its constants in constants.pkl with storages under constants/.
  const pickles: Array<{ entry: string; storageDir: string; rootName: string }> = [{ entry: 'data.pkl', storageDir: 'data/', rootName: '' }];
  if (zip.byName.has(`${prefix}constants.pkl`)) pickles.push({ entry: 'constants.pkl', storageDir: 'constants/', rootName: 'constants' });

  const tensors: TensorInfo[] = [];
  const metadata: Record<string, MetadataValue> = {};
  for (const p of pickles) {
    throwIfAborted(signal);
    const entry = zip.byName.get(`${prefix}${p.entry}`)!;
    const bytes = await readEntryBytes(src, entry, PICKLE_MAX_BYTES);
    const table = storageTable();
    const baseOffset = entry.method === 0 ? await entryDataOffset(src, entry) : undefined;
    const { value } = loadPickle(bytes, 0, { persistentLoad: table.persistentLoad, baseOffset, file: path });
    const collected = collectTensors(value, p.rootName);
    const extents = await zipStorageExtents(path, src, zip, prefix + p.storageDir, table.storages, signal);
    for (const [k, v] of Object.entries(collected.metadata)) setOwn(metadata, k, v);
    const fileTag = basename(path);
    tensors.push(
      ...buildTensors(collected.tensors, path, (s) => viewExtent(s, extents.get(s.key)!, `${fileTag}:${p.storageDir}${s.key}`, path), diagnostics),
    );
  }
  return { tensors, metadata, diagnostics };
}

/** A storage as a tensor sees it (a legacy view starts inside its root), checked to lie within the root's bytes. */
function viewExtent(s: PyStorage, root: { offset: number; bytes: number }, storageKey: string, file: string): StorageExtent {
  const size = BigInt(s.storageType.elementSize);
  const start = s.viewOffset * size;
  const bytes = s.viewNumel * size;
  if (start + bytes > BigInt(root.bytes)) {
    throw new QuantLensError('SIZE_MISMATCH', `storage ${storageKey} is used as ${start + bytes} bytes but holds ${root.bytes}`, { file });
  }
  return { offset: root.offset + Number(start), bytes: Number(bytes), storageKey };
}

async function zipStorageExtents(
  path: string,
  src: ByteSource,
  zip: ZipArchive,
  dir: string,
  storages: Map<string, PyStorage>,
  signal: AbortSignal | undefined,
): Promise<Map<string, { offset: number; bytes: number }>> {
  const extents = new Map<string, { offset: number; bytes: number }>();
  for (const [key, s] of storages) {
    throwIfAborted(signal);
    const entry = zip.byName.get(`${dir}${key}`);
    if (!entry) throw new QuantLensError('MISSING_STORAGE', `storage record ${dir}${key} is not in the archive`, { file: path });
    const needed = s.numel * BigInt(s.storageType.elementSize);
    if (BigInt(entry.uncompressedSize) < needed) {
      throw new QuantLensError('SIZE_MISMATCH', `storage ${dir}${key} holds ${entry.uncompressedSize} bytes, the pickle says ${needed}`, {
        file: path,
      });
    }
    extents.set(key, { offset: await storedEntryOffset(src, entry), bytes: Number(needed) });
  }
  return extents;
}

// ---------------------------------------------------------------------------------------------
// Legacy files (torch.save before 1.6, or _use_new_zipfile_serialization=False)

interface LegacyPickles {
  value: PyValue;
  keys: string[];
  storages: Map<string, PyStorage>;
  /** Absolute offset where the storages' data begins. */
  dataStart: number;
}

function parseLegacyPickles(bytes: Uint8Array, path: string): LegacyPickles {
  const magic = loadPickle(bytes, 0, { file: path });
  if (magic.value !== LEGACY_MAGIC_NUMBER) {
    throw new QuantLensError('BAD_MAGIC', 'not a PyTorch legacy checkpoint: the first pickle is not torch\'s magic number', { file: path, offset: 0 });
  }
  const protocol = loadPickle(bytes, magic.end, { file: path });
  if (protocol.value !== LEGACY_PROTOCOL_VERSION) {
    throw new QuantLensError('UNSUPPORTED_VERSION', `legacy protocol version ${String(protocol.value)}, expected ${LEGACY_PROTOCOL_VERSION}`, {
      file: path,
      offset: magic.end,
    });
  }
  const sysInfo = loadPickle(bytes, protocol.end, { file: path });
  if (sysInfo.value instanceof PyDict && sysInfo.value.entries.get('little_endian') === false) {
    throw new QuantLensError('UNSUPPORTED', 'big-endian checkpoints are not supported', { file: path });
  }
  const table = storageTable();
  const main = loadPickle(bytes, sysInfo.end, { persistentLoad: table.persistentLoad, file: path });
  const keyList = loadPickle(bytes, main.end, { file: path });
  const rawKeys = keyList.value;
  if (!Array.isArray(rawKeys)) throw new QuantLensError('INVALID_PICKLE', 'legacy storage key list is not a list', { file: path, offset: main.end });
  if (rawKeys.length > PYTORCH_MAX_STORAGES) {
    throw new QuantLensError('LIMIT_EXCEEDED', `${rawKeys.length} storages, limit ${PYTORCH_MAX_STORAGES}`, { file: path });
  }
  const keys = rawKeys.map((k) => {
    if (typeof k !== 'string' && !(k instanceof Uint8Array) && typeof k !== 'bigint') {
      throw new QuantLensError('INVALID_PICKLE', 'legacy storage key is not a string', { file: path, offset: main.end });
    }
    return keyText(k);
  });
  return { value: main.value, keys, storages: table.storages, dataStart: keyList.end };
}

async function readLegacyCheckpoint(path: string, src: ByteSource, signal: AbortSignal | undefined): Promise<SingleFile> {
  // The pickles come first and their end is only known once parsed: read a window, grow it when it ends too soon.
  const cap = Math.min(src.size, PICKLE_MAX_BYTES);
  let window = Math.min(src.size, LEGACY_FIRST_WINDOW);
  let parsed: LegacyPickles;
  for (;;) {
    const bytes = await readExact(src, 0, window);
    try {
      parsed = parseLegacyPickles(bytes, path);
      break;
    } catch (err) {
      if (!(err instanceof PickleEndOfInput)) throw err;
      if (window >= cap) {
        if (cap < src.size) {
          throw new QuantLensError('LIMIT_EXCEEDED', `legacy pickles exceed ${PICKLE_MAX_BYTES} bytes`, { file: path });
        }
        throw err;
      }
      window = Math.min(cap, window * 2);
      throwIfAborted(signal);
    }
  }

  // Each listed storage: its element count (int64 LE), then its bytes (torch `_set_from_file`).
  const extents = new Map<string, { offset: number; bytes: number }>();
  let at = parsed.dataStart;
  for (const key of parsed.keys) {
    throwIfAborted(signal);
    const s = parsed.storages.get(key);
    if (!s) throw new QuantLensError('INVALID_PICKLE', `storage ${key} is listed but no tensor refers to it`, { file: path, offset: at });
    const head = await readExact(src, at, 8);
    const count = new DataView(head.buffer, head.byteOffset, 8).getBigInt64(0, true);
    if (count < 0n) throw new QuantLensError('INVALID_PICKLE', `storage ${key} has a negative size`, { file: path, offset: at });
    if (count !== s.numel) {
      throw new QuantLensError('SIZE_MISMATCH', `storage ${key} holds ${count} elements, the pickle says ${s.numel}`, { file: path, offset: at });
    }
    const bytes = count * BigInt(s.storageType.elementSize);
    const end = BigInt(at) + 8n + bytes;
    if (end > BigInt(src.size)) {
      throw new QuantLensError('TRUNCATED', `storage ${key} needs ${bytes} bytes at offset ${at + 8}, file has ${src.size}`, {
        file: path,
        offset: at + 8,
      });
    }
    extents.set(key, { offset: at + 8, bytes: Number(bytes) });
    at = Number(end);
  }
  for (const key of parsed.storages.keys()) {
    if (!extents.has(key)) throw new QuantLensError('MISSING_STORAGE', `storage ${key} is not in the file's storage list`, { file: path });
  }
  const diagnostics: Diagnostic[] = [];
  if (at !== src.size) {
    diagnostics.push({ severity: 'info', code: 'TRAILING_BYTES', message: `${src.size - at} bytes after the last storage`, file: path, offset: at });
  }
  const collected = collectTensors(parsed.value);
  const fileTag = basename(path);
  const tensors = buildTensors(collected.tensors, path, (s) => viewExtent(s, extents.get(s.key)!, `${fileTag}:${s.key}`, path), diagnostics);
  return { tensors, metadata: collected.metadata, diagnostics };
}

// ---------------------------------------------------------------------------------------------
// Entry points

function isLegacyHead(head: Uint8Array): boolean {
  // Protocol 2 PROTO then LONG1 of 10 bytes: torch's magic number pickled.
  return head.length >= 4 && head[0] === 0x80 && head[1] === 0x02 && head[2] === 0x8a && head[3] === 0x0a;
}

function isPickleHead(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5;
}

async function readSingleFile(path: string, files: FileAccess, signal: AbortSignal | undefined): Promise<SingleFile> {
  const src = await files.open(path);
  try {
    const head = await readExact(src, 0, Math.min(4, src.size));
    if (hasZipMagic(head)) return await readZipCheckpoint(path, src, signal);
    if (isPickleHead(head)) return await readLegacyCheckpoint(path, src, signal);
    throw new QuantLensError('BAD_MAGIC', 'neither a zip archive nor a pickle', { file: path, offset: 0 });
  } finally {
    await src.close();
  }
}

/** Reads `pytorch_model.bin.index.json` and every shard it names; the weight_map is checked against them. */
async function readIndex(indexPath: string, files: FileAccess, signal: AbortSignal | undefined): Promise<ModelInfo> {
  const index = await readShardIndex(indexPath, files);
  const { dir, expectedShard: expected, shards } = index;
  for (const shard of shards) {
    if (!(await files.exists(shard))) throw new QuantLensError('MISSING_SHARD', `missing shard ${relative(dir, shard)}`, { file: shard });
  }
  const model: ModelInfo = { format: 'pytorch', files: [indexPath, ...shards], metadata: {}, tensors: [], diagnostics: [] };
  const found = new Map<string, string>();
  for (const shard of shards) {
    throwIfAborted(signal);
    const single = await readSingleFile(shard, files, signal);
    for (const [k, v] of Object.entries(single.metadata)) {
      if (!Object.prototype.hasOwnProperty.call(model.metadata, k)) setOwn(model.metadata, k, v);
    }
    for (const t of single.tensors) {
      const other = found.get(t.name);
      if (other !== undefined) throw new QuantLensError('DUPLICATE_NAME', `tensor is in both ${other} and ${shard}`, { file: shard, tensor: t.name });
      found.set(t.name, shard);
      model.tensors.push(t);
    }
    model.diagnostics.push(...single.diagnostics);
  }
  const leftOut = new Set(model.diagnostics.filter((d) => d.code === 'UNSUPPORTED_DTYPE').map((d) => d.tensor));
  for (const [tensor, shard] of expected) {
    if (found.get(tensor) !== shard && !leftOut.has(tensor)) {
      throw new QuantLensError('TENSOR_NOT_FOUND', `weight_map puts tensor in ${relative(dir, shard)}, which does not hold it`, { file: shard, tensor });
    }
  }
  model.diagnostics.push(...notInWeightMap(index, model.tensors));
  return model;
}

async function readFolder(dir: string, files: FileAccess, signal: AbortSignal | undefined): Promise<ModelInfo> {
  const names = await files.list(dir);
  if (names.includes(INDEX_NAME)) return readIndex(join(dir, INDEX_NAME), files, signal);
  const candidates = names.filter((n) => /\.(pt|pth|bin|jit)$/.test(n));
  const chosen = candidates.includes('pytorch_model.bin') ? 'pytorch_model.bin' : candidates.length === 1 ? candidates[0] : undefined;
  if (!chosen) {
    throw new QuantLensError('UNKNOWN_FORMAT', candidates.length ? `folder holds ${candidates.length} PyTorch files and no ${INDEX_NAME}: open one` : 'folder holds no PyTorch checkpoint', {
      file: dir,
    });
  }
  return readFile(join(dir, chosen), files, signal);
}

async function readFile(path: string, files: FileAccess, signal: AbortSignal | undefined): Promise<ModelInfo> {
  const single = await readSingleFile(path, files, signal);
  return { format: 'pytorch', files: [path], metadata: single.metadata, tensors: single.tensors, diagnostics: single.diagnostics };
}

export const pytorchReader: CheckpointReader = {
  format: 'pytorch',
  label: 'PyTorch',
  sniff(path: string, head: Uint8Array): boolean {
    const lower = path.toLowerCase();
    if (lower.endsWith('.bin.index.json')) return true;
    if (hasZipMagic(head) || isLegacyHead(head)) return true;
    return isPickleHead(head) && /\.(pt|pth|bin|jit|ckpt)$/.test(lower);
  },
  async read(path: string, files: FileAccess, options: ReadOptions = {}): Promise<ModelInfo> {
    throwIfAborted(options.signal);
    if (await files.isDirectory(path)) return readFolder(path, files, options.signal);
    if (path.toLowerCase().endsWith('.index.json')) return readIndex(path, files, options.signal);
    return readFile(path, files, options.signal);
  },
};

// ---------------------------------------------------------------------------------------------
// Strided views → contiguous bytes

/**
 * A `pytorch-view` tensor's elements as contiguous row-major bytes. Reads the view's span once
 * through `readBytes(offset, length)` (absolute file offsets) and gathers it when `strides` is set.
 */
export async function gatherStridedView(
  tensor: TensorInfo,
  readBytes: (offset: number, length: number) => Promise<Uint8Array>,
): Promise<Uint8Array> {
  const span = await readBytes(tensor.byteOffset, tensor.byteLength);
  if (span.length !== tensor.byteLength) {
    throw new QuantLensError('TRUNCATED', `read ${span.length} of ${tensor.byteLength} bytes`, { file: tensor.file, tensor: tensor.name });
  }
  if (!tensor.strides) return span;
  const size = DTYPES[tensor.dtype].bytesPerBlock;
  const { shape, strides } = tensor;
  let elements = 1;
  for (const d of shape) elements *= d;
  const outBytes = elements * size;
  if (outBytes > PYTORCH_MAX_GATHER_BYTES) {
    throw new QuantLensError('LIMIT_EXCEEDED', `gathering ${outBytes} bytes exceeds ${PYTORCH_MAX_GATHER_BYTES}`, { file: tensor.file, tensor: tensor.name });
  }
  const out = new Uint8Array(outBytes);
  if (elements === 0) return out;
  const rank = shape.length;
  const inner = rank === 0 ? 1 : shape[rank - 1]!;
  const innerStride = rank === 0 ? 0 : strides[rank - 1]!;
  const index = new Array<number>(Math.max(0, rank - 1)).fill(0);
  let outAt = 0;
  // Odometer over all but the innermost dimension; the innermost runs as a copy when it is contiguous.
  for (;;) {
    let base = 0;
    for (let d = 0; d < rank - 1; d++) base += index[d]! * strides[d]!;
    if (innerStride === 1) {
      out.set(span.subarray(base * size, (base + inner) * size), outAt);
      outAt += inner * size;
    } else {
      for (let i = 0; i < inner; i++) {
        const from = (base + i * innerStride) * size;
        out.set(span.subarray(from, from + size), outAt);
        outAt += size;
      }
    }
    let d = rank - 2;
    while (d >= 0) {
      if (++index[d]! < shape[d]!) break;
      index[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
  return out;
}
