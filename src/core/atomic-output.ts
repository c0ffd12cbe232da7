import { open, rename, rm, statfs, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { QuantLensError } from './errors';

/**
 * An output written to a temporary file beside its final path and renamed into place only when
 * complete: a cancelled or failed job leaves neither output nor temp file, and never overwrites
 * an existing file (the caller chooses a fresh path; `commit` refuses to replace one).
 */
export class AtomicOutput {
  private handle: FileHandle | undefined;
  private position = 0;
  private closed = false;

  private constructor(
    readonly path: string,
    readonly tempPath: string,
    handle: FileHandle,
  ) {
    this.handle = handle;
  }

  /** Creates the temp file; checks the folder is writable and has room for `expectedBytes`. */
  static async create(path: string, expectedBytes = 0): Promise<AtomicOutput> {
    const dir = dirname(path);
    const tempPath = join(dir, `.${basename(path)}.${randomBytes(4).toString('hex')}.quantlens-tmp`);
    let handle: FileHandle;
    try {
      handle = await open(tempPath, 'wx');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' ? `the folder ${dir} is not writable` : e.message;
      throw new QuantLensError('OUTPUT', `cannot write ${path}: ${why}`, { file: path, cause: err });
    }
    const output = new AtomicOutput(path, tempPath, handle);
    try {
      await checkFreeSpace(dir, expectedBytes);
    } catch (err) {
      await output.discard();
      throw err;
    }
    return output;
  }

  get bytesWritten(): number {
    return this.position;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (!this.handle) throw new QuantLensError('INTERNAL', 'write after close', { file: this.path });
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, this.position);
      done += bytesWritten;
      this.position += bytesWritten;
    }
  }

  /** Writes at an absolute offset (a header patched after the data). */
  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    if (!this.handle) throw new QuantLensError('INTERNAL', 'write after close', { file: this.path });
    let done = 0;
    while (done < bytes.length) done += (await this.handle.write(bytes, done, bytes.length - done, offset + done)).bytesWritten;
  }

  /** Flushes, closes and renames the temp file to the final path. Refuses to replace an existing file. */
  async commit(): Promise<void> {
    if (!this.handle) throw new QuantLensError('INTERNAL', 'commit after close', { file: this.path });
    await this.handle.sync();
    await this.handle.close();
    this.handle = undefined;
    try {
      // A hard link fails if the target exists, so a file that appeared meanwhile is never replaced.
      await linkNoReplace(this.tempPath, this.path);
    } catch (err) {
      await this.discard();
      throw err;
    }
    await rm(this.tempPath, { force: true });
    this.closed = true;
  }

  /** Removes the temp file; safe to call more than once and after commit. */
  async discard(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.handle) {
      await this.handle.close().catch(() => undefined);
      this.handle = undefined;
    }
    await rm(this.tempPath, { force: true });
  }
}

async function linkNoReplace(from: string, to: string): Promise<void> {
  const { link } = await import('node:fs/promises');
  try {
    await link(from, to);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new QuantLensError('OUTPUT', `${to} already exists; QuantLens never overwrites a file`, { file: to });
    // File systems without hard links: rename (the existence check above is then best effort).
    if (e.code === 'EPERM' || e.code === 'ENOTSUP' || e.code === 'EXDEV') {
      await rename(from, to);
      return;
    }
    throw new QuantLensError('OUTPUT', `cannot create ${to}: ${e.message}`, { file: to, cause: err });
  }
}

/** Refuses to start a job that cannot fit: the free space must exceed the expected output plus a margin. */
export async function checkFreeSpace(dir: string, expectedBytes: number): Promise<void> {
  let free: number;
  try {
    const s = await statfs(dir);
    free = s.bavail * s.bsize;
  } catch (err) {
    throw new QuantLensError('OUTPUT', `cannot write into ${dir}: ${(err as Error).message}`, { file: dir, cause: err });
  }
  const margin = 16 << 20;
  if (expectedBytes + margin > free) {
    throw new QuantLensError('OUTPUT', `${dir} has ${free.toLocaleString('en-US')} bytes free; the output needs about ${expectedBytes.toLocaleString('en-US')}`, { file: dir });
  }
}
