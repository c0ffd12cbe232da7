/**
 * The `*.index.json` of a sharded checkpoint (`model.safetensors.index.json`,
 * `pytorch_model.bin.index.json`): its `weight_map` of tensor → shard file, each shard checked to
 * stay inside the index's folder. Both readers open the shards themselves, a few at a time (mapLimited).
 */
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { readExact } from '../bytesource';
import { QuantLensError } from '../errors';
import { MAX_JSON_SIDE_FILE_BYTES, MAX_SHARDS } from '../limits';
import type { Diagnostic, TensorInfo } from '../model';
import type { FileAccess } from './types';

export interface ShardIndex {
  /** The parsed JSON (for `metadata.total_size`). */
  json: unknown;
  /** The index's folder. */
  dir: string;
  /** Tensor name → absolute shard path, as the weight_map says. */
  expectedShard: Map<string, string>;
  /** The distinct shards, sorted. */
  shards: string[];
}

export async function readShardIndex(indexPath: string, files: FileAccess): Promise<ShardIndex> {
  const json = await readJsonSideFile(indexPath, files);
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new QuantLensError('INVALID_HEADER', 'index has no "weight_map" object', { file: indexPath });
  }
  const dir = dirname(indexPath);
  const expectedShard = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string') {
      throw new QuantLensError('INVALID_HEADER', `weight_map entry is a ${typeof shard}, must be a file name`, { file: indexPath, tensor });
    }
    expectedShard.set(tensor, shardPath(dir, shard, indexPath));
  }
  const shards = [...new Set(expectedShard.values())].sort();
  if (shards.length > MAX_SHARDS) {
    throw new QuantLensError('LIMIT_EXCEEDED', `index names ${shards.length} shards, the limit is ${MAX_SHARDS}`, { file: indexPath });
  }
  return { json, dir, expectedShard, shards };
}

/** Runs `work` over `items` with at most `limit` in flight, results in input order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!, i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/** A warning for every tensor a shard holds that the weight_map does not name. */
export function notInWeightMap(index: ShardIndex, tensors: readonly TensorInfo[]): Diagnostic[] {
  return tensors
    .filter((t) => !index.expectedShard.has(t.name))
    .map((t) => ({
      severity: 'warning',
      code: 'NOT_IN_WEIGHT_MAP',
      message: `tensor is in ${relative(index.dir, t.file)} but not in the index's weight_map`,
      tensor: t.name,
      file: t.file,
    }));
}

async function readJsonSideFile(path: string, files: FileAccess): Promise<unknown> {
  const src = await files.open(path);
  try {
    if (src.size > MAX_JSON_SIDE_FILE_BYTES) {
      throw new QuantLensError('LIMIT_EXCEEDED', `${src.size} bytes exceed the ${MAX_JSON_SIDE_FILE_BYTES}-byte limit for JSON files`, { file: path });
    }
    const bytes = await readExact(src, 0, src.size);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new QuantLensError('INVALID_UTF8', 'index is not valid UTF-8', { file: path });
    }
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new QuantLensError('INVALID_JSON', `index is not valid JSON: ${(err as Error).message}`, { file: path });
    }
  } finally {
    await src.close();
  }
}

/** A shard named by an index must stay inside the index's folder. */
function shardPath(dir: string, name: string, indexPath: string): string {
  const full = resolve(dir, name);
  const rel = relative(dir, full);
  if (name === '' || isAbsolute(name) || rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new QuantLensError('UNSAFE_PATH', `shard "${name}" is outside the index's folder`, { file: indexPath });
  }
  return full;
}
