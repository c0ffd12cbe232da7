import { open, type FileHandle } from 'node:fs/promises';
import { QuantLensError } from './errors';

/** All byte access goes through this: a size and a positioned read. Never a whole-file read. */
export interface ByteSource {
  /** Name shown in errors and diagnostics (usually the path). */
  readonly name: string;
  readonly size: number;
  /** Reads up to `into.length` bytes at `offset`; returns the count read (short only at end of source). */
  read(offset: number, into: Uint8Array): Promise<number>;
  close(): Promise<void>;
}

/** Reads exactly `length` bytes at `offset` or throws TRUNCATED. */
export async function readExact(src: ByteSource, offset: number, length: number, tensor?: string): Promise<Uint8Array> {
  if (offset < 0 || length < 0 || offset + length > src.size) {
    throw new QuantLensError('TRUNCATED', `needs ${length} bytes at offset ${offset}, file has ${src.size}`, {
      offset,
      tensor,
      file: src.name,
    });
  }
  const buf = new Uint8Array(length);
  await readInto(src, offset, buf, tensor);
  return buf;
}

/** Fills `into` from `offset` or throws TRUNCATED. */
export async function readInto(src: ByteSource, offset: number, into: Uint8Array, tensor?: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const n = await src.read(offset + done, into.subarray(done));
    if (n <= 0) {
      throw new QuantLensError('TRUNCATED', `unexpected end of file after ${offset + done} bytes`, {
        offset: offset + done,
        tensor,
        file: src.name,
      });
    }
    done += n;
  }
}

/** A file on disk, read with positioned reads through one file handle. */
export class FileByteSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<FileByteSource> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      throw new QuantLensError('IO', `cannot open ${path}: ${(err as Error).message}`, { file: path, cause: err });
    }
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      throw new QuantLensError('IO', `${path} is not a regular file`, { file: path });
    }
    return new FileByteSource(path, st.size, handle);
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    if (offset >= this.size || into.length === 0) return 0;
    const { bytesRead } = await this.handle.read(into, 0, Math.min(into.length, this.size - offset), offset);
    return bytesRead;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Bytes already in memory: test fixtures, small files from non-file URIs. */
export class MemoryByteSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly bytes: Uint8Array,
    readonly name = '<memory>',
  ) {
    this.size = bytes.length;
  }

  async read(offset: number, into: Uint8Array): Promise<number> {
    if (offset >= this.size) return 0;
    const n = Math.min(into.length, this.size - offset);
    into.set(this.bytes.subarray(offset, offset + n));
    return n;
  }

  async close(): Promise<void> {}
}
