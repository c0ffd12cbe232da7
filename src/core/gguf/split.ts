import type { FileAccess } from '../readers/types';
import { QuantLensError } from '../errors';
import { openModel } from '../readers';
import { nodeFileAccess } from '../readers/node-files';
import { readTensorBytes } from '../tensordata';
import { declaredAlignment, withoutSplitKeys, writeGgufOutput, type SplitLimits } from './output';

/** llama-gguf-split --split: the same tensors in the same order, in files of limited size or tensor count. */
export async function splitGguf(input: string, output: string, limits: SplitLimits, options: { files?: FileAccess; signal?: AbortSignal } = {}): Promise<string[]> {
  const files = options.files ?? nodeFileAccess;
  const model = await openModel(input, { files, signal: options.signal });
  if (model.format !== 'gguf') throw new QuantLensError('USAGE', `${input} is ${model.format}; split takes a GGUF file`);
  const metadata = withoutSplitKeys(model.metadata);
  return writeGgufOutput({
    output,
    metadata,
    alignment: declaredAlignment(metadata),
    split: limits,
    signal: options.signal,
    tensors: model.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, write: async (sink) => sink(await readTensorBytes(model, t, files)) })),
  });
}

/** `500M`, `2G` (llama-gguf-split's units: M = 1000², G = 1000³), or plain bytes. */
export function parseSplitSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([MG]?)$/i.exec(s.trim());
  if (!m) throw new QuantLensError('USAGE', `--split-max-size wants a number with M or G, got ${s}`);
  const n = Number(m[1]) * (m[2].toUpperCase() === 'G' ? 1e9 : m[2].toUpperCase() === 'M' ? 1e6 : 1);
  if (!(n > 0)) throw new QuantLensError('USAGE', `--split-max-size must be positive, got ${s}`);
  return Math.floor(n);
}
