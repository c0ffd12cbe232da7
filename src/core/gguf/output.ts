/**
 * Writes a GGUF model to one file or to split files as llama-gguf-split lays them out: the first
 * split holds every key/value, each split holds its own tensors, and every split ends its key/values
 * with `split.no` (u16), `split.tensors.count` (i32) and `split.count` (u16). All files are written
 * to temp files and renamed together when complete (AtomicOutput), so a failure leaves nothing.
 */
import { AtomicOutput } from '../atomic-output';
import type { DType } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import type { MetadataValue } from '../model';
import { GGUF_ALIGNMENT_KEY, GGUF_DEFAULT_ALIGNMENT } from '../readers/gguf-metadata';
import { encodeGgufHeader, ggufPadding, ggufTensorByteLength, layoutGgufTensorData } from './write';

/** The keys writeGgufOutput gives each split file: a model read back drops its own before being written again. */
const SPLIT_KEYS: readonly string[] = ['split.no', 'split.count', 'split.tensors.count'];

/** A read model's metadata without its split keys, in order. */
export function withoutSplitKeys(metadata: Record<string, MetadataValue>): Record<string, MetadataValue> {
  return Object.fromEntries(Object.entries(metadata).filter(([k]) => !SPLIT_KEYS.includes(k)));
}

/** The alignment metadata declares: `general.alignment` when a u32, else GGUF's default. */
export function declaredAlignment(metadata: Record<string, MetadataValue>): number {
  const a = metadata[GGUF_ALIGNMENT_KEY];
  return a?.type === 'u32' ? a.value : GGUF_DEFAULT_ALIGNMENT;
}

export interface GgufOutputTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** Writes exactly the tensor's bytes (padding is added after it). */
  write(sink: (bytes: Uint8Array) => Promise<void>): Promise<void>;
}

export interface SplitLimits {
  /** At most this many tensors per file (`--split-max-tensors`). */
  maxTensors?: number;
  /** At most this many bytes of padded tensor data per file (`--split-max-size`). */
  maxBytes?: number;
}

/** `<prefix>-00001-of-00003.gguf`, as llama_split_path names splits. */
export function splitPath(output: string, index: number, count: number): string {
  const prefix = output.replace(/\.gguf$/, '');
  return `${prefix}-${String(index + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.gguf`;
}

/** Which tensors go to which file: llama-gguf-split's strategy (a new split when the next tensor would exceed a limit). */
export function planSplits(tensors: ReadonlyArray<{ dtype: DType; shape: readonly number[] }>, alignment: number, limits: SplitLimits): number[][] {
  const groups: number[][] = [[]];
  let size = 0;
  tensors.forEach((t, i) => {
    const bytes = ggufTensorByteLength(t.dtype, t.shape);
    const padded = bytes + ggufPadding(bytes, alignment);
    const current = groups[groups.length - 1];
    const overTensors = limits.maxTensors !== undefined && current.length >= limits.maxTensors;
    const overBytes = limits.maxBytes !== undefined && current.length > 0 && size + padded > limits.maxBytes;
    if (overTensors || overBytes) {
      groups.push([i]);
      size = padded;
    } else {
      current.push(i);
      size += padded;
    }
  });
  return groups;
}

export async function writeGgufOutput(options: {
  output: string;
  metadata: Record<string, MetadataValue>;
  alignment: number;
  tensors: GgufOutputTensor[];
  split?: SplitLimits;
  signal?: AbortSignal;
  /** Called before each tensor is written. */
  onTensor?: (index: number) => void;
}): Promise<string[]> {
  const { tensors, alignment } = options;
  const groups = options.split ? planSplits(tensors, alignment, options.split) : [tensors.map((_, i) => i)];
  if (groups.length > 0xffff) throw new QuantLensError('USAGE', `${groups.length} splits: GGUF counts splits in 16 bits`);
  const paths = groups.length === 1 && !options.split ? [options.output] : groups.map((_, i) => splitPath(options.output, i, groups.length));
  const outputs: AtomicOutput[] = [];
  try {
    for (const [g, group] of groups.entries()) {
      const metadata: Record<string, MetadataValue> = g === 0 ? { ...options.metadata } : {};
      if (options.split) {
        // llama-gguf-split sets split.count again once it knows it, which moves it last.
        metadata['split.no'] = { type: 'u16', value: g };
        metadata['split.tensors.count'] = { type: 'i32', value: tensors.length };
        metadata['split.count'] = { type: 'u16', value: groups.length };
      }
      const specs = group.map((i) => tensors[i]);
      const { offsets, dataBytes } = layoutGgufTensorData(specs, alignment);
      const header = encodeGgufHeader({ version: 3, metadata, alignment, tensors: specs.map((t, k) => ({ name: t.name, dtype: t.dtype, shape: t.shape, offset: offsets[k] })) });
      const out = await AtomicOutput.create(paths[g], header.length + dataBytes);
      outputs.push(out);
      await out.write(header);
      for (const i of group) {
        throwIfAborted(options.signal);
        options.onTensor?.(i);
        const t = tensors[i];
        const before = out.bytesWritten;
        await t.write((bytes) => out.write(bytes));
        const written = out.bytesWritten - before;
        const expected = ggufTensorByteLength(t.dtype, t.shape);
        if (written !== expected) throw new QuantLensError('INTERNAL', `${t.name}: wrote ${written} bytes, ${t.dtype} ${JSON.stringify(t.shape)} needs ${expected}`, { tensor: t.name });
        await out.write(new Uint8Array(ggufPadding(written, alignment)));
      }
    }
    for (const out of outputs) await out.commit();
    return paths;
  } catch (err) {
    for (const out of outputs) await out.discard();
    throw err;
  }
}
