/**
 * Per-model cache of tensor statistics on disk, so that reopening an analysed model fills the
 * table at once. Keyed by the model's files with their sizes and modification times: a file that
 * changed invalidates the entry. Only summaries are kept (histograms are recomputed per tensor on
 * demand: 256 numbers × 100,000 tensors would be a 200 MB cache). No `vscode` import.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StatsSummary } from '../../shared/protocol';

/** Bumped when the cached statistics' definition changes. */
const CACHE_VERSION = 1;
/** Largest cache file read back (CWE-770: a corrupted or planted cache file). */
export const STATS_CACHE_MAX_BYTES = 256 << 20;

export interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
}

interface CacheFile {
  version: number;
  bins: number;
  files: FileStamp[];
  /** Summaries by tensor name. */
  stats: Record<string, StatsSummary>;
}

export async function stampFiles(paths: readonly string[]): Promise<FileStamp[]> {
  return Promise.all(
    paths.map(async (path) => {
      const st = await stat(path);
      return { path, size: st.size, mtimeMs: st.mtimeMs };
    }),
  );
}

export class StatsCache {
  constructor(private readonly dir: string) {}

  private fileFor(files: readonly FileStamp[], bins: number): string {
    const key = createHash('sha256').update(JSON.stringify([files.map((f) => f.path), bins])).digest('hex').slice(0, 32);
    return join(this.dir, `${key}.json`);
  }

  /** The cached summaries for exactly these files (same sizes and mtimes), or an empty map. */
  async load(files: readonly FileStamp[], bins: number): Promise<Map<string, StatsSummary>> {
    try {
      const path = this.fileFor(files, bins);
      if ((await stat(path)).size > STATS_CACHE_MAX_BYTES) return new Map();
      const data = JSON.parse(await readFile(path, 'utf8')) as CacheFile;
      if (data.version !== CACHE_VERSION || data.bins !== bins || !sameFiles(data.files, files)) return new Map();
      return new Map(Object.entries(data.stats));
    } catch {
      return new Map(); // no cache yet, or unreadable: recompute
    }
  }

  /** Writes the summaries (atomically: a temporary file renamed over the old one). */
  async save(files: readonly FileStamp[], bins: number, stats: ReadonlyMap<string, StatsSummary>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const path = this.fileFor(files, bins);
    const data: CacheFile = { version: CACHE_VERSION, bins, files: [...files], stats: Object.fromEntries(stats) };
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(data));
    await rename(tmp, path);
  }
}

function sameFiles(a: readonly FileStamp[], b: readonly FileStamp[]): boolean {
  return a.length === b.length && a.every((f, i) => f.path === b[i].path && f.size === b[i].size && f.mtimeMs === b[i].mtimeMs);
}
