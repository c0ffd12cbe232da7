import * as vscode from 'vscode';
import { MemoryByteSource, type ByteSource } from '../core/bytesource';
import { QuantLensError } from '../core/errors';
import { WORKSPACE_FS_MAX_BYTES } from '../core/limits';
import type { Diagnostic } from '../core/model';
import { nodeFileAccess } from '../core/readers/node-files';
import type { FileAccess } from '../core/readers/types';

/** How the readers reach a document's bytes: a path and the FileAccess that resolves it. */
export interface DocumentFiles {
  path: string;
  files: FileAccess;
  /** Size of a file named by a path of this access (for the overview's file list). */
  sizeOf(path: string): Promise<number>;
  /** Told to the user once the model is open (e.g. that workspace.fs had to read whole files). */
  diagnostics: Diagnostic[];
}

/**
 * `file:` URIs go through Node `fs` (ranged reads; the extension runs in the workspace's extension
 * host, remote included). Other schemes go through `workspace.fs`, which in VS Code 1.100 can only
 * read whole files, so each file is capped at WORKSPACE_FS_MAX_BYTES.
 */
export function documentFiles(uri: vscode.Uri): DocumentFiles {
  if (uri.scheme === 'file') {
    return {
      path: uri.fsPath,
      files: nodeFileAccess,
      sizeOf: async (path) => {
        const src = await nodeFileAccess.open(path);
        await src.close();
        return src.size;
      },
      diagnostics: [],
    };
  }
  const toUri = (path: string): vscode.Uri => uri.with({ path: path.replace(/\\/g, '/') });
  const diagnostics: Diagnostic[] = [
    {
      severity: 'info',
      code: 'WORKSPACE_FS',
      message: `${uri.scheme}: files are read whole through VS Code's file system API (no ranged reads), up to ${WORKSPACE_FS_MAX_BYTES} bytes each`,
    },
  ];
  const stat = async (path: string): Promise<vscode.FileStat | undefined> => {
    try {
      return await vscode.workspace.fs.stat(toUri(path));
    } catch {
      return undefined;
    }
  };
  const files: FileAccess = {
    async open(path: string): Promise<ByteSource> {
      const st = await stat(path);
      if (!st) throw new QuantLensError('IO', `cannot open ${path}`, { file: path });
      if (st.size > WORKSPACE_FS_MAX_BYTES) {
        throw new QuantLensError(
          'LIMIT_EXCEEDED',
          `${path} has ${st.size} bytes; files of the ${uri.scheme}: scheme are read whole and capped at ${WORKSPACE_FS_MAX_BYTES} bytes`,
          { file: path },
        );
      }
      try {
        return new MemoryByteSource(await vscode.workspace.fs.readFile(toUri(path)), path);
      } catch (err) {
        throw new QuantLensError('IO', `cannot read ${path}: ${(err as Error).message}`, { file: path, cause: err });
      }
    },
    exists: async (path) => (await stat(path)) !== undefined,
    isDirectory: async (path) => ((await stat(path))?.type ?? 0) === vscode.FileType.Directory,
    async list(dir: string): Promise<string[]> {
      try {
        return (await vscode.workspace.fs.readDirectory(toUri(dir))).map(([name]) => name).sort();
      } catch (err) {
        throw new QuantLensError('IO', `cannot list ${dir}: ${(err as Error).message}`, { file: dir, cause: err });
      }
    },
  };
  return { path: uri.path, files, sizeOf: async (path) => (await stat(path))?.size ?? 0, diagnostics };
}
