/**
 * llama.cpp importance matrices: the mean squared activation of every input column of every matmul
 * weight, collected by `llama-imatrix`. Two file formats, as llama.cpp reads them
 * (tools/imatrix/imatrix.cpp, tools/quantize/quantize.cpp `load_imatrix`):
 * - GGUF (`general.type = imatrix`): per weight `<name>.in_sum2` (Σ x², [matrices, columns]) and
 *   `<name>.counts` ([matrices] tokens seen); weight = in_sum2 / count, 1 where a count is 0.
 * - legacy `.dat`: int32 n_entries; per entry int32 name length, name, int32 ncall, int32 nval,
 *   f32 values[nval] (already mean × ncall); then optionally int32 last_call, int32 length and the
 *   dataset name. weight = value / ncall (value itself when ncall ≤ 0).
 * Entry names are llama.cpp (GGUF) tensor names; `importanceFor` maps any tensor name through the name map.
 */
import { basename } from 'node:path';
import { readExact, type ByteSource } from './bytesource';
import { QuantLensError, throwIfAborted } from './errors';
import { IMATRIX_MAX_ENTRIES, IMATRIX_MAX_NAME_BYTES } from './limits';
import { elementCount } from './model';
import { describeTensor } from './names';
import { openModel } from './readers';
import type { FileAccess } from './readers/types';
import { nodeFileAccess } from './readers/node-files';
import { readTensorBytes } from './tensordata';

export interface ImportanceEntry {
  /** The llama.cpp tensor name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  /** Input columns: the weight's row length. */
  columns: number;
  /** Matrices sharing the entry (experts of a merged MoE tensor); 1 for a dense weight. */
  matrices: number;
  /** Mean squared activation per column, matrices × columns. */
  weights: Float32Array;
}

export interface ImportanceMatrix {
  format: 'gguf' | 'dat';
  file: string;
  entries: Map<string, ImportanceEntry>;
  datasets: string[];
  /** Chunks of calibration text the statistics were collected over, when the file says. */
  chunkCount: number | null;
}

const GGUF_MAGIC = [0x47, 0x47, 0x55, 0x46];

/** Reads an importance matrix in either format (told apart by the GGUF magic). */
export async function readImportanceMatrix(path: string, options: { signal?: AbortSignal; files?: FileAccess } = {}): Promise<ImportanceMatrix> {
  const files = options.files ?? nodeFileAccess;
  const src = await files.open(path);
  let isGguf: boolean;
  try {
    const head = await readExact(src, 0, Math.min(4, src.size));
    isGguf = head.length === 4 && GGUF_MAGIC.every((b, i) => head[i] === b);
    if (!isGguf) return await readLegacy(src, path, options.signal);
  } finally {
    await src.close();
  }
  return readGgufImatrix(path, files, options.signal);
}

async function readGgufImatrix(path: string, files: FileAccess, signal: AbortSignal | undefined): Promise<ImportanceMatrix> {
  const model = await openModel(path, { signal, files });
  const type = model.metadata['general.type'];
  if (type && type.type === 'string' && type.value !== 'imatrix') {
    throw new QuantLensError('INVALID_HEADER', `${basename(path)} is a GGUF ${type.value}, not an importance matrix`, { file: path });
  }
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  const entries = new Map<string, ImportanceEntry>();
  for (const sums of model.tensors) {
    if (!sums.name.endsWith('.in_sum2')) continue;
    throwIfAborted(signal);
    const name = sums.name.slice(0, -'.in_sum2'.length);
    const counts = byName.get(`${name}.counts`);
    if (!counts) throw new QuantLensError('INVALID_HEADER', `${sums.name} has no ${name}.counts beside it`, { file: path, tensor: sums.name });
    if (sums.dtype !== 'F32' || counts.dtype !== 'F32') {
      throw new QuantLensError('INVALID_DTYPE', `importance statistics must be F32, got ${sums.dtype}/${counts.dtype}`, { file: path, tensor: name });
    }
    const n = elementCount(sums.shape);
    const matrices = elementCount(counts.shape);
    if (matrices === 0 || n === 0 || n % matrices !== 0) {
      throw new QuantLensError('INVALID_SHAPE', `${n} sums do not split over ${matrices} counts`, { file: path, tensor: name });
    }
    const sumValues = f32(await readTensorBytes(model, sums, files));
    const countValues = f32(await readTensorBytes(model, counts, files));
    const columns = n / matrices;
    const weights = new Float32Array(n);
    for (let m = 0; m < matrices; m++) {
      const c = countValues[m];
      for (let j = 0; j < columns; j++) weights[m * columns + j] = c > 0 ? sumValues[m * columns + j] / c : 1;
    }
    entries.set(name, { name, columns, matrices, weights });
  }
  const ds = model.metadata['imatrix.datasets'];
  const chunks = model.metadata['imatrix.chunk_count'];
  return {
    format: 'gguf',
    file: path,
    entries,
    datasets: ds && ds.type === 'array' && ds.itemType === 'string' ? (ds.value as string[]) : [],
    chunkCount: chunks && typeof chunks.value === 'number' ? chunks.value : null,
  };
}

function f32(bytes: Uint8Array): Float32Array {
  const copy = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(copy.buffer, copy.byteOffset, copy.length / 4);
}

/** Sequential reads with every length checked against what the file has left. */
class Cursor {
  offset = 0;
  constructor(
    private readonly src: ByteSource,
    private readonly path: string,
  ) {}

  get left(): number {
    return this.src.size - this.offset;
  }

  async bytes(length: number, what: string): Promise<Uint8Array> {
    if (length > this.left) {
      throw new QuantLensError('TRUNCATED', `${what}: needs ${length} bytes, ${this.left} left`, { file: this.path, offset: this.offset });
    }
    const b = await readExact(this.src, this.offset, length);
    this.offset += length;
    return b;
  }

  async i32(what: string): Promise<number> {
    const b = await this.bytes(4, what);
    return new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
  }
}

async function readLegacy(src: ByteSource, path: string, signal: AbortSignal | undefined): Promise<ImportanceMatrix> {
  const c = new Cursor(src, path);
  const count = await c.i32('entry count');
  if (count < 1 || count > IMATRIX_MAX_ENTRIES) {
    throw new QuantLensError(count < 1 ? 'INVALID_HEADER' : 'LIMIT_EXCEEDED', `imatrix .dat entry count ${count} (1…${IMATRIX_MAX_ENTRIES})`, { file: path, offset: 0 });
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const entries = new Map<string, ImportanceEntry>();
  for (let i = 0; i < count; i++) {
    throwIfAborted(signal);
    const at = c.offset;
    const len = await c.i32('name length');
    if (len < 1 || len > IMATRIX_MAX_NAME_BYTES) {
      throw new QuantLensError('INVALID_HEADER', `entry ${i}: name length ${len} (1…${IMATRIX_MAX_NAME_BYTES})`, { file: path, offset: at });
    }
    let name: string;
    try {
      name = decoder.decode(await c.bytes(len, `entry ${i} name`));
    } catch (err) {
      if (err instanceof QuantLensError) throw err;
      throw new QuantLensError('INVALID_UTF8', `entry ${i}: name is not UTF-8`, { file: path, offset: at + 4 });
    }
    const ncall = await c.i32('ncall');
    const nval = await c.i32('nval');
    // A value count the file cannot hold is refused before anything is allocated.
    if (nval < 1 || nval * 4 > c.left) {
      throw new QuantLensError(nval < 1 ? 'INVALID_HEADER' : 'TRUNCATED', `entry ${name}: ${nval} values, ${c.left} bytes left`, { file: path, tensor: name, offset: c.offset });
    }
    if (entries.has(name)) throw new QuantLensError('DUPLICATE_NAME', `entry ${name} appears twice`, { file: path, tensor: name, offset: at });
    const values = f32(await c.bytes(nval * 4, `entry ${name} values`));
    const weights = new Float32Array(nval);
    for (let j = 0; j < nval; j++) weights[j] = ncall > 0 ? values[j] / ncall : values[j];
    entries.set(name, { name, columns: nval, matrices: 1, weights });
  }
  // Optional trailer: the number of chunks, then the dataset's name.
  let chunkCount: number | null = null;
  const datasets: string[] = [];
  if (c.left >= 4) chunkCount = await c.i32('last call');
  if (c.left >= 4) {
    const len = await c.i32('dataset name length');
    if (len > 0 && len <= Math.min(c.left, IMATRIX_MAX_NAME_BYTES)) {
      try {
        datasets.push(decoder.decode(await c.bytes(len, 'dataset name')));
      } catch {
        // A garbled dataset name does not make the statistics unusable.
      }
    }
  }
  return { format: 'dat', file: path, entries, datasets, chunkCount };
}

/** The entry for a tensor under any naming scheme the name map knows (entries use llama.cpp names). */
export function importanceFor(imatrix: ImportanceMatrix, tensorName: string): ImportanceEntry | undefined {
  return imatrix.entries.get(tensorName) ?? imatrix.entries.get(describeTensor(tensorName).canonical ?? '');
}
