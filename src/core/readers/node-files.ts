import { readdir, stat } from 'node:fs/promises';
import { FileByteSource, type ByteSource } from '../bytesource';
import { QuantLensError } from '../errors';
import type { FileAccess } from './types';

/** FileAccess on the local disk through Node `fs` (ranged reads, no whole-file reads). */
export const nodeFileAccess: FileAccess = {
  open(path: string): Promise<ByteSource> {
    return FileByteSource.open(path);
  },

  async exists(path: string): Promise<boolean> {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  },

  async list(dir: string): Promise<string[]> {
    try {
      return (await readdir(dir)).sort();
    } catch (err) {
      throw new QuantLensError('IO', `cannot list ${dir}: ${(err as Error).message}`, { file: dir, cause: err });
    }
  },

  async isDirectory(path: string): Promise<boolean> {
    try {
      return (await stat(path)).isDirectory();
    } catch {
      return false;
    }
  },
};
