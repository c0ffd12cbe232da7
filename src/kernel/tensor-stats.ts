/**
 * Main-thread entry points for statistics: turn tensors of a model into kernel jobs on a pool.
 * Raw tensors are read by the workers themselves (only the path, offset and length cross);
 * other encodings are read and decoded here (readTensorBytes) and their bytes transferred; quantized
 * layouts (GPTQ, AWQ, compressed-tensors, bitsandbytes) are dequantized here and sent as F32.
 */
import type { DType } from '../core/dtypes';
import { elementCount, type ModelInfo, type TensorInfo } from '../core/model';
import { nodeFileAccess } from '../core/readers/node-files';
import type { FileAccess } from '../core/readers/types';
import { DEFAULT_HISTOGRAM_BINS, type TensorStats } from '../core/stats/stats';
import { tensorRowsF32 } from '../core/tensor-rows';
import { readTensorBytes } from '../core/tensordata';
import type { AbsMaxProfile, ByteInput } from './jobs';
import type { KernelPool } from './pool';

export interface StatsOptions {
  /** Histogram bins (default 256). */
  bins?: number;
  signal?: AbortSignal;
  /** Bytes of tensor data processed over all the tensors asked for. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** How files are opened for encodings the main thread decodes (default: Node fs). */
  files?: FileAccess;
}

/** A job's input and the dtype its bytes hold (quantized layouts are dequantized here to F32). */
async function inputOf(model: ModelInfo, tensor: TensorInfo, files: FileAccess, signal?: AbortSignal): Promise<{ input: ByteInput; dtype: DType; transfer?: ArrayBuffer[] }> {
  if (tensor.encoding === 'raw') return { input: { file: tensor.file, offset: tensor.byteOffset, length: tensor.byteLength }, dtype: tensor.dtype };
  if (tensor.encoding === 'quantized') {
    const values = new Float32Array(elementCount(tensor.shape));
    let at = 0;
    for await (const chunk of tensorRowsF32(model, tensor, files, { signal })) {
      values.set(chunk.values, at);
      at += chunk.values.length;
    }
    const bytes = new Uint8Array(values.buffer);
    return { input: { bytes }, dtype: 'F32', transfer: [values.buffer] };
  }
  const bytes = await readTensorBytes(model, tensor, files);
  return { input: { bytes }, dtype: tensor.dtype, transfer: [bytes.buffer as ArrayBuffer] };
}

/**
 * Statistics and histogram of each tensor, in the order given. Jobs are queued largest first so the
 * workers finish together; at most two per worker are prepared at once (bounding the memory the
 * main thread holds for non-raw encodings).
 */
export async function computeTensorStats(pool: KernelPool, model: ModelInfo, tensors: readonly TensorInfo[], options: StatsOptions = {}): Promise<TensorStats[]> {
  const files = options.files ?? nodeFileAccess;
  const bins = options.bins ?? DEFAULT_HISTOGRAM_BINS;
  const total = tensors.reduce((sum, t) => sum + t.byteLength, 0);
  const done = new Float64Array(tensors.length);
  let doneSum = 0;
  const report = (i: number, bytesDone: number, bytesTotal: number): void => {
    const now = bytesTotal > 0 ? (bytesDone / bytesTotal) * tensors[i]!.byteLength : tensors[i]!.byteLength;
    doneSum += now - done[i]!;
    done[i] = now;
    options.onProgress?.(doneSum, total);
  };
  const order = tensors.map((_, i) => i).sort((a, b) => tensors[b]!.byteLength - tensors[a]!.byteLength);
  const units = batchSmallTensors(order, tensors);
  const results = new Array<TensorStats>(tensors.length);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (next < units.length && !failed) {
      const unit = units[next++]!;
      try {
        const jobs = await Promise.all(
          unit.map(async (i) => {
            const tensor = tensors[i]!;
            const { input, dtype, transfer } = await inputOf(model, tensor, files, options.signal);
            return { item: { name: tensor.name, dtype, count: elementCount(tensor.shape), input, bins }, transfer: transfer ?? [] };
          }),
        );
        if (unit.length === 1) {
          const i = unit[0]!;
          results[i] = await pool.run('stats', jobs[0]!.item, { signal: options.signal, transfer: jobs[0]!.transfer, onProgress: (d, t) => report(i, d, t) });
        } else {
          const replies = await pool.run('statsBatch', { items: jobs.map((j) => j.item) }, { signal: options.signal, transfer: jobs.flatMap((j) => j.transfer) });
          unit.forEach((i, k) => (results[i] = replies[k]!));
        }
      } catch (err) {
        failed = true; // the other lanes stop taking tensors
        throw err;
      }
      for (const i of unit) report(i, 1, 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(units.length, pool.size * 2) }, lane));
  return results;
}

/** Tensors below this size share a job with others (a job round trip costs more than their statistics). */
const SMALL_TENSOR_BYTES = 256 << 10;
const BATCH_BYTES = 8 << 20;
const BATCH_TENSORS = 256;

/** Jobs to run: each large tensor alone, small ones (the tail of the largest-first order) in batches. */
function batchSmallTensors(order: number[], tensors: readonly TensorInfo[]): number[][] {
  const units: number[][] = [];
  let batch: number[] = [];
  let bytes = 0;
  for (const i of order) {
    const size = tensors[i]!.byteLength;
    if (size >= SMALL_TENSOR_BYTES) {
      units.push([i]);
      continue;
    }
    if (batch.length >= BATCH_TENSORS || bytes + size > BATCH_BYTES) {
      units.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(i);
    bytes += size;
  }
  if (batch.length) units.push(batch);
  return units;
}

/** Per-row and per-column absmax of a tensor seen as [shape[0], product of the rest]. */
export async function computeAbsMaxProfile(pool: KernelPool, model: ModelInfo, tensor: TensorInfo, options: Omit<StatsOptions, 'bins'> = {}): Promise<AbsMaxProfile> {
  const rows = tensor.shape.length === 0 ? 1 : tensor.shape[0]!;
  const count = elementCount(tensor.shape);
  const cols = rows === 0 ? 0 : count / rows;
  const { input, dtype, transfer } = await inputOf(model, tensor, options.files ?? nodeFileAccess, options.signal);
  return pool.run('absMaxProfile', { name: tensor.name, dtype, rows, cols, input }, { signal: options.signal, transfer, onProgress: options.onProgress });
}
