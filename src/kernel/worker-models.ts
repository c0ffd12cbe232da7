/**
 * Models a kernel worker has opened, most recent last, so that the jobs of one comparison or one
 * sweep open each checkpoint once per worker. Keyed by path, checked against size and mtime.
 */
import { stat } from 'node:fs/promises';
import { QuantLensError } from '../core/errors';
import type { ModelInfo, TensorInfo } from '../core/model';
import { openModel } from '../core/readers';

const MODEL_CACHE_SIZE = 4;

interface OpenedModel {
  path: string;
  size: number;
  mtimeMs: number;
  model: ModelInfo;
  byName: Map<string, TensorInfo>;
}

const opened: OpenedModel[] = [];

async function openedModel(path: string, signal: AbortSignal): Promise<OpenedModel> {
  const s = await stat(path).catch((err: Error) => {
    throw new QuantLensError('IO', `cannot open ${path}: ${err.message}`, { file: path, cause: err });
  });
  const i = opened.findIndex((m) => m.path === path);
  if (i >= 0) {
    const [hit] = opened.splice(i, 1);
    if (hit.size === s.size && hit.mtimeMs === s.mtimeMs) {
      opened.push(hit);
      return hit;
    }
  }
  const model = await openModel(path, { signal });
  const entry = { path, size: s.size, mtimeMs: s.mtimeMs, model, byName: new Map(model.tensors.map((t) => [t.name, t])) };
  opened.push(entry);
  if (opened.length > MODEL_CACHE_SIZE) opened.shift();
  return entry;
}

/** The model at `path` (a file, index or folder, opened once per worker while unchanged) and a tensor of it by name. */
export async function workerTensor(path: string, name: string, signal: AbortSignal): Promise<{ model: ModelInfo; tensor: TensorInfo }> {
  const m = await openedModel(path, signal);
  const tensor = m.byName.get(name);
  if (!tensor) throw new QuantLensError('TENSOR_NOT_FOUND', `no tensor ${name} in ${path}`, { tensor: name, file: path });
  return { model: m.model, tensor };
}
