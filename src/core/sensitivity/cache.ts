/**
 * Sweep results cached as JSON files in a folder the caller owns (the extension's global storage, the
 * CLI's cache folder), one per model and settings. The key holds every file of the model with its
 * size and modification time, and the settings' hash: touching the model or changing a setting misses.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SensitivityResult, SensitivitySettings } from './types';

/** Bumped when the result's shape or its meaning changes, so old entries miss. */
const CACHE_VERSION = 1;

export interface FileIdentity {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface CacheKey {
  version: number;
  files: FileIdentity[];
  settingsHash: string;
}

/** A file as the cache tells versions apart: its path, size and modification time. */
export async function fileIdentity(path: string): Promise<FileIdentity> {
  const s = await stat(path);
  return { path, size: s.size, mtimeMs: s.mtimeMs };
}

function hash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** The cache key of a model's files under `settings`. */
export async function cacheKeyOf(files: readonly string[], settings: SensitivitySettings): Promise<CacheKey> {
  return { version: CACHE_VERSION, files: await Promise.all(files.map(fileIdentity)), settingsHash: hash(settings) };
}

function entryPath(cacheDir: string, key: CacheKey): string {
  return join(cacheDir, `sensitivity-${hash(key).slice(0, 32)}.json`);
}

/** The cached result for this key, or null (absent, unreadable or for another key). */
export async function readCachedSensitivity(cacheDir: string, key: CacheKey): Promise<SensitivityResult | null> {
  try {
    const entry = JSON.parse(await readFile(entryPath(cacheDir, key), 'utf8')) as { key: CacheKey; result: SensitivityResult };
    return JSON.stringify(entry.key) === JSON.stringify(key) ? entry.result : null;
  } catch {
    // A missing or corrupt entry is a miss; the sweep runs again and rewrites it.
    return null;
  }
}

/** Stores a result (written to a temporary file, then renamed into place). */
export async function writeCachedSensitivity(cacheDir: string, key: CacheKey, result: SensitivityResult): Promise<void> {
  await mkdir(cacheDir, { recursive: true });
  const path = entryPath(cacheDir, key);
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    // Every figure is finite (non-finite weights are skipped), and JSON keeps finite doubles exactly.
    await writeFile(temp, JSON.stringify({ key, result }));
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
