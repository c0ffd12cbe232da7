import { basename, join } from 'node:path';
import { QuantLensError, throwIfAborted, toQuantLensError } from '../errors';
import type { ModelInfo } from '../model';
import { nodeFileAccess } from './node-files';
import type { CheckpointReader, FileAccess, ReadOptions } from './types';

/** Every format, loaded on first use; the order is the order candidates are tried in. */
const READERS: ReadonlyArray<() => Promise<CheckpointReader>> = [
  async () => (await import('./safetensors')).safetensorsReader,
  async () => (await import('./gguf')).ggufReader,
  async () => (await import('./onnx')).onnxReader,
  async () => (await import('./pytorch')).pytorchReader,
];

const HEAD_BYTES = 64;

/** Files that make a folder a checkpoint, in order of preference. */
const FOLDER_ENTRIES = [/\.safetensors\.index\.json$/, /^pytorch_model\.bin\.index\.json$/, /\.safetensors$/, /\.gguf$/, /\.onnx$/, /\.(pt|pth|bin)$/];

/**
 * Opens a checkpoint: a file, a sharded index, or a folder holding one. Tries every reader whose
 * sniff accepts the file; when all fail, the error lists each candidate's reason.
 */
export async function openModel(path: string, options: ReadOptions & { files?: FileAccess } = {}): Promise<ModelInfo> {
  const files = options.files ?? nodeFileAccess;
  throwIfAborted(options.signal);
  const entry = (await files.isDirectory(path)) ? await folderEntry(path, files) : path;
  const head = await readHead(entry, files);
  const readers = await Promise.all(READERS.map((load) => load()));
  const candidates = readers.filter((r) => r.sniff(entry, head));
  if (candidates.length === 0) {
    throw new QuantLensError('UNKNOWN_FORMAT', `${basename(entry)} is not a checkpoint QuantLens reads (safetensors, GGUF, ONNX, PyTorch)`, { file: entry });
  }
  const failures: QuantLensError[] = [];
  for (const reader of candidates) {
    try {
      const model = await reader.read(entry, files, options);
      // quantized layouts (compressed-tensors, GPTQ, AWQ, bitsandbytes) become one logical tensor per weight
      return model.format === 'safetensors' ? await (await import('./quantized-layouts')).recogniseQuantizedLayouts(model, files, options) : model;
    } catch (err) {
      const e = toQuantLensError(err);
      if (e.code === 'CANCELLED' || candidates.length === 1) throw e;
      failures.push(e);
    }
  }
  // Several readers claimed the file and all refused it: report the most specific reason first.
  const first = failures[0];
  throw new QuantLensError(first.code, candidates.map((r, i) => `${r.label}: ${failures[i].message}`).join('; '), {
    offset: first.offset,
    tensor: first.tensor,
    file: entry,
  });
}

async function folderEntry(dir: string, files: FileAccess): Promise<string> {
  const names = (await files.list(dir)).sort();
  for (const re of FOLDER_ENTRIES) {
    const hits = names.filter((n) => re.test(n));
    if (hits.length === 1 || (hits.length > 1 && re.source.includes('index'))) return join(dir, hits[0]);
    if (hits.length > 1) {
      // Several model files and no index: the first split/shard is the entry (GGUF split, numbered shards).
      const first = hits.find((n) => /-0*1-of-\d+\./.test(n));
      if (first) return join(dir, first);
      throw new QuantLensError('UNKNOWN_FORMAT', `${dir} holds ${hits.length} checkpoint files and no index: open one of them`, { file: dir });
    }
  }
  throw new QuantLensError('UNKNOWN_FORMAT', `${dir} holds no checkpoint QuantLens reads`, { file: dir });
}

async function readHead(path: string, files: FileAccess): Promise<Uint8Array> {
  const src = await files.open(path);
  try {
    const head = new Uint8Array(Math.min(HEAD_BYTES, src.size));
    let done = 0;
    while (done < head.length) {
      const n = await src.read(done, head.subarray(done));
      if (n <= 0) break;
      done += n;
    }
    return head.subarray(0, done);
  } finally {
    await src.close();
  }
}
