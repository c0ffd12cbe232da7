/**
 * A zip reader for PyTorch archives: the central directory (zip64 included) and where each
 * entry's bytes start, so stored storages are read in place without extracting anything.
 * PKWARE APPNOTE.TXT sections 4.3.7 (local header), 4.3.12 (central directory), 4.3.14-16 (zip64, EOCD).
 */
import { inflateRawSync } from 'node:zlib';
import { readExact, type ByteSource } from './bytesource';
import { QuantLensError } from './errors';
import { ZIP_MAX_CENTRAL_DIRECTORY_BYTES, ZIP_MAX_ENTRIES, ZIP_MAX_NAME_BYTES } from './limits';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

export const ZIP_METHOD_STORED = 0;
export const ZIP_METHOD_DEFLATE = 8;

export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

export interface ZipArchive {
  entries: ZipEntry[];
  byName: Map<string, ZipEntry>;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 as zip stores it (zlib's `crc32` exists only from Node 20.15, so it is computed here). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** True when the bytes start with a local file header, as torch's `_is_zipfile` checks. */
export function hasZipMagic(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

function invalid(src: ByteSource, message: string, offset?: number): QuantLensError {
  return new QuantLensError('INVALID_ZIP', message, { file: src.name, offset });
}

function u64(view: DataView, at: number, src: ByteSource): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(src, `zip64 value ${v} exceeds 2^53`);
  return Number(v);
}

/** Reads the central directory. Every entry's extent is checked against the file size. */
export async function readZipDirectory(src: ByteSource): Promise<ZipArchive> {
  if (src.size < EOCD_SIZE) throw invalid(src, `file of ${src.size} bytes is too small for a zip archive`);
  const tailLength = Math.min(src.size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = src.size - tailLength;
  const tail = await readExact(src, tailStart, tailLength);
  const tailView = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tailView.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tailView.getUint16(i + 20, true) <= tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw invalid(src, 'no end of central directory record');

  let count = tailView.getUint16(eocd + 10, true);
  let cdSize = tailView.getUint32(eocd + 12, true);
  let cdOffset = tailView.getUint32(eocd + 16, true);
  const eocdAbs = tailStart + eocd;
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locatorAt = eocdAbs - 20;
    if (locatorAt < 0) throw invalid(src, 'zip64 end of central directory locator missing', eocdAbs);
    const loc = await readExact(src, locatorAt, 20);
    const locView = new DataView(loc.buffer, loc.byteOffset, 20);
    if (locView.getUint32(0, true) !== SIG_ZIP64_LOCATOR) {
      throw invalid(src, 'zip64 end of central directory locator missing', locatorAt);
    }
    const recordAt = u64(locView, 8, src);
    const rec = await readExact(src, recordAt, 56);
    const recView = new DataView(rec.buffer, rec.byteOffset, 56);
    if (recView.getUint32(0, true) !== SIG_ZIP64_EOCD) {
      throw invalid(src, 'bad zip64 end of central directory signature', recordAt);
    }
    count = u64(recView, 32, src);
    cdSize = u64(recView, 40, src);
    cdOffset = u64(recView, 48, src);
  }
  if (count > ZIP_MAX_ENTRIES) {
    throw new QuantLensError('LIMIT_EXCEEDED', `zip has ${count} entries, limit ${ZIP_MAX_ENTRIES}`, { file: src.name });
  }
  if (cdSize > ZIP_MAX_CENTRAL_DIRECTORY_BYTES) {
    throw new QuantLensError('LIMIT_EXCEEDED', `zip central directory of ${cdSize} bytes, limit ${ZIP_MAX_CENTRAL_DIRECTORY_BYTES}`, {
      file: src.name,
    });
  }
  if (cdOffset + cdSize > src.size) throw invalid(src, 'central directory extends past end of file', cdOffset);

  const cd = await readExact(src, cdOffset, cdSize);
  const view = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  const decoder = new TextDecoder('utf-8', { fatal: false });
  const entries: ZipEntry[] = [];
  const byName = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || view.getUint32(p, true) !== SIG_CENTRAL) {
      throw invalid(src, `bad central directory entry ${i}`, cdOffset + p);
    }
    const method = view.getUint16(p + 10, true);
    const crc = view.getUint32(p + 16, true);
    let compressedSize = view.getUint32(p + 20, true);
    let uncompressedSize = view.getUint32(p + 24, true);
    const nameLength = view.getUint16(p + 28, true);
    const extraLength = view.getUint16(p + 30, true);
    const commentLength = view.getUint16(p + 32, true);
    let localHeaderOffset = view.getUint32(p + 42, true);
    const nameAt = p + 46;
    const extraAt = nameAt + nameLength;
    const next = extraAt + extraLength + commentLength;
    if (next > cd.length) throw invalid(src, `central directory entry ${i} overruns the directory`, cdOffset + p);
    if (nameLength > ZIP_MAX_NAME_BYTES) {
      throw new QuantLensError('LIMIT_EXCEEDED', `zip entry name of ${nameLength} bytes`, { file: src.name, offset: cdOffset + p });
    }
    const name = decoder.decode(cd.subarray(nameAt, extraAt));
    // zip64 extended information: only the fields whose 32-bit value is saturated are present, in this order.
    for (let e = extraAt; e + 4 <= extraAt + extraLength; ) {
      const id = view.getUint16(e, true);
      const size = view.getUint16(e + 2, true);
      if (e + 4 + size > extraAt + extraLength) throw invalid(src, `bad extra field in entry ${name}`, cdOffset + e);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (): number => {
          if (q + 8 > e + 4 + size) throw invalid(src, `short zip64 extra field in entry ${name}`, cdOffset + q);
          const v = u64(view, q, src);
          q += 8;
          return v;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      e += 4 + size;
    }
    if (localHeaderOffset + 30 + compressedSize > src.size) {
      throw invalid(src, `entry ${name} extends past end of file`, localHeaderOffset);
    }
    const entry: ZipEntry = { name, method, crc32: crc, compressedSize, uncompressedSize, localHeaderOffset };
    entries.push(entry);
    if (!byName.has(name)) byName.set(name, entry);
    p = next;
  }
  return { entries, byName };
}

/** Absolute offset of an entry's data: past its local header, whose name and extra lengths may differ from the central one. */
export async function entryDataOffset(src: ByteSource, entry: ZipEntry): Promise<number> {
  const header = await readExact(src, entry.localHeaderOffset, 30);
  const view = new DataView(header.buffer, header.byteOffset, 30);
  if (view.getUint32(0, true) !== SIG_LOCAL) {
    throw invalid(src, `bad local header signature for ${entry.name}`, entry.localHeaderOffset);
  }
  const dataOffset = entry.localHeaderOffset + 30 + view.getUint16(26, true) + view.getUint16(28, true);
  if (dataOffset + entry.compressedSize > src.size) {
    throw new QuantLensError('TRUNCATED', `entry ${entry.name} data extends past end of file`, {
      file: src.name,
      offset: dataOffset,
    });
  }
  return dataOffset;
}

/** Offset of a stored (uncompressed) entry's bytes, for reading them in place. */
export async function storedEntryOffset(src: ByteSource, entry: ZipEntry): Promise<number> {
  if (entry.method !== ZIP_METHOD_STORED) {
    throw new QuantLensError('UNSUPPORTED_COMPRESSION', `zip entry ${entry.name} is compressed (method ${entry.method}); storages must be stored`, {
      file: src.name,
      offset: entry.localHeaderOffset,
    });
  }
  if (entry.compressedSize !== entry.uncompressedSize) {
    throw invalid(src, `stored entry ${entry.name} has differing sizes`, entry.localHeaderOffset);
  }
  return entryDataOffset(src, entry);
}

/** An entry's whole content (stored or deflated), capped at `maxBytes`, CRC-checked. For small records such as `data.pkl`. */
export async function readEntryBytes(src: ByteSource, entry: ZipEntry, maxBytes: number): Promise<Uint8Array> {
  if (entry.uncompressedSize > maxBytes || entry.compressedSize > maxBytes) {
    throw new QuantLensError('LIMIT_EXCEEDED', `zip entry ${entry.name} is ${entry.uncompressedSize} bytes, limit ${maxBytes}`, {
      file: src.name,
    });
  }
  const at = await entryDataOffset(src, entry);
  const raw = await readExact(src, at, entry.compressedSize);
  let bytes: Uint8Array;
  if (entry.method === ZIP_METHOD_STORED) {
    bytes = raw;
  } else if (entry.method === ZIP_METHOD_DEFLATE) {
    try {
      bytes = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (err) {
      throw invalid(src, `cannot inflate ${entry.name}: ${(err as Error).message}`, at);
    }
  } else {
    throw new QuantLensError('UNSUPPORTED_COMPRESSION', `zip entry ${entry.name} uses compression method ${entry.method}`, {
      file: src.name,
      offset: entry.localHeaderOffset,
    });
  }
  if (bytes.length !== entry.uncompressedSize) {
    throw invalid(src, `entry ${entry.name} is ${bytes.length} bytes, directory says ${entry.uncompressedSize}`, at);
  }
  if (crc32(bytes) !== entry.crc32) throw invalid(src, `CRC mismatch in ${entry.name}`, at);
  return bytes;
}
