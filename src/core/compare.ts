/**
 * Compares two checkpoints tensor by tensor: rows matched through the name map (HF ↔ GGUF ↔ Meta,
 * the rotary q/k row order undone), values decoded or dequantized to f32 and streamed, error
 * accumulated in f64.
 */
import { dirname, join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { throwIfAborted } from './errors';
import { metadataNumber, type ModelInfo, type TensorInfo } from './model';
import { describeTensor, detectScheme, hfRowToMetaRow, invertRowMap, type NameScheme } from './names';
import type { FileAccess } from './readers/types';
import { summarizeModel } from './summary';
import { matrixShape, tensorRowsF32 } from './tensor-rows';

/**
 * Figures over the positions where both values are finite. A position where one side is NaN or ±Inf
 * and the other is not the same value is a non-finite mismatch: its error is infinite, so mse, relMse
 * and maxAbsErr are +Infinity and sqnrDb −Infinity (JSON null; `nonFiniteMismatch` tells them apart).
 */
export interface TensorError {
  count: number;
  /** Mean squared error. */
  mse: number;
  /** ‖a − b‖² / ‖a‖². */
  relMse: number | null;
  /** 10·log10(‖a‖² / ‖a − b‖²); null only when the two are equal (−Infinity when a is all zeros and b is not). */
  sqnrDb: number | null;
  maxAbsErr: number;
  cosine: number | null;
  /** Positions where one side is NaN or ±Inf and the other is not that same value. */
  nonFiniteMismatch: number;
}

export interface TensorComparison extends TensorError {
  name: string;
  nameB: string;
  dtypeA: string;
  dtypeB: string;
  layer: number | null;
  role: string;
}

export interface ComparisonSummary {
  bytesA: number;
  bytesB: number;
  bitsPerWeightA: number | null;
  bitsPerWeightB: number | null;
  matched: number;
  onlyInA: string[];
  onlyInB: string[];
  /** Matched names whose shapes differ (not compared). */
  shapeMismatch: string[];
}

export interface TensorPair {
  a: TensorInfo;
  b: TensorInfo;
  /** Rows of b to take, in a's order (rotary permutation), when the two name schemes store q/k differently. */
  rowMapB?: Int32Array;
  /** The map permutes within groups of this many rows (one attention head): ranges of whole groups can be compared alone. */
  rowGroup?: number;
}

/** Accumulates error figures over chunks of both tensors' values. */
export class ErrorAccumulator {
  private n = 0;
  private sumA2 = 0;
  private sumB2 = 0;
  private sumAB = 0;
  private sumE2 = 0;
  private maxAbs = 0;
  private mismatch = 0;

  add(a: Float32Array, b: Float32Array): void {
    let sa = 0, sb = 0, sab = 0, se = 0, mx = this.maxAbs;
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      const y = b[i];
      const d = x - y;
      sa += x * x;
      sb += y * y;
      sab += x * y;
      se += d * d;
      const ad = Math.abs(d);
      if (ad > mx) mx = ad;
    }
    // Squares of f32 values cannot overflow f64: a non-finite sum means a NaN or ±Inf in the chunk.
    if (!Number.isFinite(sa + sb)) {
      this.addWithNonFinite(a, b);
      return;
    }
    this.n += a.length;
    this.sumA2 += sa;
    this.sumB2 += sb;
    this.sumAB += sab;
    this.sumE2 += se;
    this.maxAbs = mx;
  }

  /** The slow path: finite pairs accumulate, equal non-finite pairs agree, the rest are counted as mismatches. */
  private addWithNonFinite(a: Float32Array, b: Float32Array): void {
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      const y = b[i];
      if (Number.isFinite(x) && Number.isFinite(y)) {
        const d = x - y;
        this.sumA2 += x * x;
        this.sumB2 += y * y;
        this.sumAB += x * y;
        this.sumE2 += d * d;
        const ad = Math.abs(d);
        if (ad > this.maxAbs) this.maxAbs = ad;
      } else if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) {
        this.mismatch++;
      }
    }
    this.n += a.length;
  }

  result(): TensorError {
    const { n, sumA2, sumB2, sumAB, sumE2, mismatch } = this;
    const cosine = sumA2 > 0 && sumB2 > 0 ? sumAB / Math.sqrt(sumA2 * sumB2) : null;
    if (mismatch > 0) {
      return { count: n, mse: Infinity, relMse: Infinity, sqnrDb: -Infinity, maxAbsErr: Infinity, cosine, nonFiniteMismatch: mismatch };
    }
    return {
      count: n,
      mse: n ? sumE2 / n : 0,
      relMse: sumA2 > 0 ? sumE2 / sumA2 : null,
      sqnrDb: sumE2 > 0 ? (sumA2 > 0 ? 10 * Math.log10(sumA2 / sumE2) : -Infinity) : null,
      maxAbsErr: this.maxAbs,
      cosine,
      nonFiniteMismatch: 0,
    };
  }
}

interface Heads {
  heads: number;
  kvHeads: number;
}

/** Pairs the tensors of two models by llama.cpp name (or plain name outside the name map). */
export async function matchTensors(a: ModelInfo, b: ModelInfo): Promise<{ pairs: TensorPair[]; summary: ComparisonSummary }> {
  const key = (t: TensorInfo) => describeTensor(t.name).canonical ?? t.name;
  const bByKey = new Map(b.tensors.map((t) => [key(t), t]));
  const schemeA = detectScheme(a.tensors.map((t) => t.name));
  const schemeB = detectScheme(b.tensors.map((t) => t.name));
  const permute = (schemeA === 'hf') !== (schemeB === 'hf') && schemeA !== null && schemeB !== null;
  const heads = permute ? ((await headCounts(a)) ?? (await headCounts(b))) : undefined;
  const pairs: TensorPair[] = [];
  const onlyInA: string[] = [];
  const shapeMismatch: string[] = [];
  const seen = new Set<string>();
  for (const ta of a.tensors) {
    const k = key(ta);
    const tb = bByKey.get(k);
    if (!tb) {
      onlyInA.push(ta.name);
      continue;
    }
    seen.add(k);
    if (ta.shape.join() !== tb.shape.join()) {
      shapeMismatch.push(ta.name);
      continue;
    }
    const rowMapB = heads && rowMapFor(ta, schemeA!, heads);
    pairs.push(rowMapB ? { a: ta, b: tb, ...rowMapB } : { a: ta, b: tb });
  }
  const onlyInB = b.tensors.filter((t) => !seen.has(key(t))).map((t) => t.name);
  const ta = summarizeModel(a);
  const tb = summarizeModel(b);
  return {
    pairs,
    summary: { bytesA: ta.bytes, bytesB: tb.bytes, bitsPerWeightA: ta.bitsPerWeight, bitsPerWeightB: tb.bitsPerWeight, matched: pairs.length, onlyInA, onlyInB, shapeMismatch },
  };
}

/** For a q/k projection: b's row for each of a's rows, when one side stores the HF rotary order. */
function rowMapFor(ta: TensorInfo, schemeA: NameScheme, h: Heads): { rowMapB: Int32Array; rowGroup: number } | undefined {
  const role = describeTensor(ta.name).role;
  if ((role !== 'attn_q' && role !== 'attn_k') || ta.shape.length !== 2) return undefined;
  const rows = ta.shape[0];
  const heads = role === 'attn_q' ? h.heads : h.kvHeads;
  if (rows % heads !== 0 || (rows / heads) % 2 !== 0) return undefined;
  const hfToMeta = hfRowToMetaRow(rows, heads);
  if (schemeA === 'hf') return { rowMapB: hfToMeta, rowGroup: rows / heads }; // a's row r (HF) is b's row hfToMeta[r] (Meta/GGUF)
  return { rowMapB: invertRowMap(hfToMeta), rowGroup: rows / heads };
}

/** Attention head counts from GGUF metadata or a config.json beside the checkpoint. */
async function headCounts(m: ModelInfo): Promise<Heads | undefined> {
  const arch = m.metadata['general.architecture'];
  if (arch?.type === 'string') {
    const heads = metadataNumber(m.metadata, `${arch.value}.attention.head_count`);
    if (heads !== undefined) return { heads, kvHeads: metadataNumber(m.metadata, `${arch.value}.attention.head_count_kv`) ?? heads };
  }
  try {
    const config = JSON.parse(await readFile(join(dirname(m.files[0]), 'config.json'), 'utf8')) as Record<string, unknown>;
    const heads = Number(config.num_attention_heads ?? config.n_heads);
    const kvHeads = Number(config.num_key_value_heads ?? config.n_kv_heads ?? heads);
    if (Number.isInteger(heads) && heads > 0) return { heads, kvHeads: Number.isInteger(kvHeads) && kvHeads > 0 ? kvHeads : heads };
  } catch {
    // No config.json: q/k of HF checkpoints are then compared in stored order (and will show as different).
  }
  return undefined;
}

/** Computes one pair's error figures: on this thread (the twin below) or in the kernel pool (src/kernel/pool-compare.ts). */
export interface PairComparer {
  /** Pairs worth comparing at once (the pool's workers). */
  parallelism: number;
  compare(a: ModelInfo, b: ModelInfo, pair: TensorPair, files: FileAccess, signal?: AbortSignal): Promise<TensorError>;
}

export const twinPairComparer: PairComparer = { parallelism: 1, compare: compareTensorPair };

/** Error figures of one matched pair, streamed in row chunks (whole tensor when rows are permuted). */
export async function compareTensorPair(
  a: ModelInfo,
  b: ModelInfo,
  pair: TensorPair,
  files: FileAccess,
  signal?: AbortSignal,
): Promise<TensorError> {
  const acc = new ErrorAccumulator();
  const { cols } = matrixShape(pair.a.shape);
  if (pair.rowMapB) {
    const va = await collect(tensorRowsF32(a, pair.a, files, { signal, maxElements: Infinity }));
    const vb = await collect(tensorRowsF32(b, pair.b, files, { signal, maxElements: Infinity }));
    const reordered = new Float32Array(vb.length);
    for (let r = 0; r < pair.rowMapB.length; r++) reordered.set(vb.subarray(pair.rowMapB[r] * cols, (pair.rowMapB[r] + 1) * cols), r * cols);
    acc.add(va, reordered);
    return acc.result();
  }
  const ia = tensorRowsF32(a, pair.a, files, { signal });
  const ib = tensorRowsF32(b, pair.b, files, { signal });
  // Both sides chunk by the same row count (same shape), so chunks line up.
  for (;;) {
    throwIfAborted(signal);
    const [ca, cb] = await Promise.all([ia.next(), ib.next()]);
    if (ca.done || cb.done) break;
    acc.add(ca.value.values, cb.value.values);
  }
  return acc.result();
}

async function collect(it: AsyncGenerator<{ values: Float32Array }>): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for await (const c of it) parts.push(c.values);
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface CompareProgress {
  done: number;
  total: number;
  tensor: string;
}

/** Compares every matched pair, reporting each result as it is ready. */
export async function compareModels(
  a: ModelInfo,
  b: ModelInfo,
  files: FileAccess,
  options: { signal?: AbortSignal; comparer?: PairComparer; onTensor?: (row: TensorComparison, p: CompareProgress) => void } = {},
): Promise<{ summary: ComparisonSummary; tensors: TensorComparison[] }> {
  const { pairs, summary } = await matchTensors(a, b);
  const comparer = options.comparer ?? twinPairComparer;
  const tensors: TensorComparison[] = [];
  const started: Array<Promise<TensorError>> = [];
  const start = (i: number) => {
    const p = comparer.compare(a, b, pairs[i], files, options.signal);
    p.catch(() => undefined); // awaited in order below
    started.push(p);
  };
  // Up to `parallelism` pairs in flight; rows are reported in pair order.
  for (let i = 0; i < Math.min(comparer.parallelism, pairs.length); i++) start(i);
  for (const [i, pair] of pairs.entries()) {
    throwIfAborted(options.signal);
    const err = await started[i];
    if (started.length < pairs.length) start(started.length);
    const d = describeTensor(pair.a.name);
    const row: TensorComparison = { name: pair.a.name, nameB: pair.b.name, dtypeA: pair.a.dtype, dtypeB: pair.b.dtype, layer: d.layer, role: d.role, ...err };
    tensors.push(row);
    options.onTensor?.(row, { done: i + 1, total: pairs.length, tensor: pair.a.name });
  }
  return { summary, tensors };
}
