/**
 * Calibration as `llama-imatrix` runs it (tools/imatrix/imatrix.cpp): the text is tokenized once (BOS
 * first), cut into whole chunks of `ctx` tokens, each run from position 0 with its first token replaced
 * by BOS. For every linear layer of the blocks, the per-column sum of squares of its input over every
 * token, and the token count, go into llama.cpp's imatrix GGUF (`<weight>.in_sum2`, `<weight>.counts`,
 * sums kept in f32 in token order as llama.cpp keeps them).
 * Beside that, activation statistics per site (each block's residual stream, attention output, MLP
 * output and each linear's input): a histogram of bf16 codes (mergeable across chunks and runs), the
 * exact absolute maximum, and per-channel absolute maxima and mean squares for the outlier-channel view.
 */
import { QuantLensError, throwIfAborted } from '../errors';
import { encodeGgufHeader, layoutGgufTensorData } from '../gguf/write';
import type { ImportanceEntry, ImportanceMatrix } from '../imatrix';
import type { MetadataValue } from '../model';
import { fround } from '../quant/ggml-float';
import { DEFAULT_HISTOGRAM_BINS, statsFromCodeTable, type TensorStats } from '../stats/stats';
import { chunkBos, chunkInput, chunkPlan, evalTokens, logSoftmax, type EvalText } from './eval';
import type { ActivationSite, LlamaModel, MatmulBackend, NumericMode } from './llama';

export interface CalibrateOptions {
  ctx?: number;
  chunks?: number;
  mode?: NumericMode;
  /** Histogram bins of the site summaries (default 256). */
  bins?: number;
  /** Collect `output.weight`'s input too (llama-imatrix --process-output). */
  processOutput?: boolean;
  /** Runs the exact mode's matrix products (e.g. in a kernel); plain TypeScript when absent. */
  backend?: MatmulBackend;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

/** The key of an activation site: `blk.3.attn_in` (q/k/v input), `blk.3.attn_output.input`, `blk.3.ffn_in`, `blk.3.ffn_down.input`, `blk.3.attn_out`, `blk.3.ffn_out`, `blk.3.residual`, `output.input`. */
export function siteKey(site: ActivationSite): string {
  if (site.kind !== 'linear-input') return `blk.${site.layer}.${site.kind === 'attn-out' ? 'attn_out' : site.kind === 'ffn-out' ? 'ffn_out' : 'residual'}`;
  const first = site.weights[0];
  if (site.layer === null) return `${first.replace(/\.weight$/, '')}.input`;
  if (first.endsWith('.attn_q.weight')) return `blk.${site.layer}.attn_in`;
  if (first.endsWith('.ffn_gate.weight')) return `blk.${site.layer}.ffn_in`;
  return `${first.replace(/\.weight$/, '')}.input`;
}

/** Running statistics of one site, mergeable: every field is a sum, a max or a count. */
export class SiteAccumulator {
  readonly bf16Codes = new Float64Array(65536);
  readonly channelAbsMax: Float32Array;
  readonly channelSumSquares: Float64Array;
  tokens = 0;
  absMax = 0;

  constructor(
    readonly key: string,
    readonly kind: ActivationSite['kind'],
    readonly layer: number | null,
    readonly weights: string[],
    readonly channels: number,
  ) {
    this.channelAbsMax = new Float32Array(channels);
    this.channelSumSquares = new Float64Array(channels);
  }

  add(values: Float32Array, rows: number): void {
    const bits = new Uint32Array(values.buffer, values.byteOffset, rows * this.channels);
    const codes = this.bf16Codes;
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i];
      // f32 → bf16 code, round to nearest even (NaN kept a NaN): fp16.ts f32ToBf16 inlined on the raw bits.
      const code = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      codes[code & 0xffff]++;
    }
    for (let t = 0; t < rows; t++) {
      const o = t * this.channels;
      for (let c = 0; c < this.channels; c++) {
        const v = values[o + c];
        const a = Math.abs(v);
        if (a > this.channelAbsMax[c]) this.channelAbsMax[c] = a;
        this.channelSumSquares[c] += v * v;
      }
    }
    for (let c = 0; c < this.channels; c++) this.absMax = Math.max(this.absMax, this.channelAbsMax[c]);
    this.tokens += rows;
  }

  merge(other: SiteAccumulator): void {
    if (other.channels !== this.channels) throw new QuantLensError('USAGE', `cannot merge ${other.key} (${other.channels} channels) into ${this.key} (${this.channels})`);
    for (let i = 0; i < 65536; i++) this.bf16Codes[i] += other.bf16Codes[i];
    for (let c = 0; c < this.channels; c++) {
      this.channelAbsMax[c] = Math.max(this.channelAbsMax[c], other.channelAbsMax[c]);
      this.channelSumSquares[c] += other.channelSumSquares[c];
    }
    this.tokens += other.tokens;
    this.absMax = Math.max(this.absMax, other.absMax);
  }

  summary(bins = DEFAULT_HISTOGRAM_BINS): ActivationSiteStats {
    const stats = statsFromCodeTable('BF16', this.bf16Codes, bins);
    const rms = Array.from(this.channelSumSquares, (s) => Math.sqrt(s / Math.max(1, this.tokens)));
    const sorted = Float32Array.from(this.channelAbsMax).sort();
    const median = sorted[sorted.length >> 1];
    const outlierChannels = Array.from(this.channelAbsMax, (absMax, channel) => ({ channel, absMax, ratio: median > 0 ? absMax / median : 0 }))
      .filter((c) => c.ratio >= OUTLIER_CHANNEL_RATIO)
      .sort((a, b) => b.ratio - a.ratio)
      .slice(0, MAX_OUTLIER_CHANNELS);
    return {
      key: this.key,
      kind: this.kind,
      layer: this.layer,
      weights: this.weights,
      channels: this.channels,
      tokens: this.tokens,
      stats: { ...stats, absMax: this.absMax },
      channelAbsMax: Array.from(this.channelAbsMax),
      channelRms: rms,
      medianChannelAbsMax: median,
      outlierChannels,
    };
  }
}

/** A channel is an outlier when its absolute maximum is this many times the median channel's (LLM.int8's "emergent features"). */
export const OUTLIER_CHANNEL_RATIO = 6;
const MAX_OUTLIER_CHANNELS = 32;

/** What the Activations view draws for one site. */
export interface ActivationSiteStats {
  key: string;
  kind: ActivationSite['kind'];
  layer: number | null;
  /** For linear inputs: the llama.cpp names of the weights reading this input. */
  weights: string[];
  channels: number;
  tokens: number;
  /** Summary and histogram (values rounded to bf16 for counting; absMax exact). */
  stats: TensorStats;
  channelAbsMax: number[];
  channelRms: number[];
  medianChannelAbsMax: number;
  /** Channels whose absolute maximum is ≥ OUTLIER_CHANNEL_RATIO × the median channel's, largest first. */
  outlierChannels: Array<{ channel: number; absMax: number; ratio: number }>;
}

/** Per weight: Σ x² per input column and the tokens seen, as llama-imatrix collects them. */
export interface ImatrixEntry {
  sum2: Float32Array;
  count: number;
}

export interface CalibrationResult {
  ctx: number;
  chunks: number;
  tokens: number;
  /** Perplexity over the second half of each chunk, as llama-imatrix prints it. */
  ppl: number;
  imatrix: Map<string, ImatrixEntry>;
  sites: Map<string, SiteAccumulator>;
}

/** Runs the text through the model chunk by chunk, collecting the importance matrix and activation statistics. */
export async function calibrate(model: LlamaModel, text: EvalText, options: CalibrateOptions = {}): Promise<CalibrationResult> {
  const ctx = options.ctx ?? 512;
  const mode = options.mode ?? 'exact';
  const tokens = evalTokens(model, text);
  const nChunks = chunkPlan(tokens.length, ctx, options.chunks);
  const bos = chunkBos(model);
  const sums = new Map<string, { sum2: Float32Array; count: number; weights: string[] }>();
  const sites = new Map<string, SiteAccumulator>();
  const observer = (site: ActivationSite, values: Float32Array, rows: number, cols: number): void => {
    const key = siteKey(site);
    let acc = sites.get(key);
    if (!acc) {
      acc = new SiteAccumulator(key, site.kind, site.layer, site.kind === 'linear-input' ? site.weights : [], cols);
      sites.set(key, acc);
    }
    acc.add(values, rows);
    if (site.kind !== 'linear-input' || (site.layer === null && !options.processOutput)) return;
    let s = sums.get(key);
    if (!s) {
      s = { sum2: new Float32Array(cols), count: 0, weights: site.weights };
      sums.set(key, s);
    }
    const sum2 = s.sum2;
    for (let t = 0; t < rows; t++) {
      const o = t * cols;
      for (let c = 0; c < cols; c++) sum2[c] = fround(sum2[c] + fround(values[o + c] * values[o + c]));
    }
    s.count += rows;
  };
  const first = ctx >> 1;
  const vocab = model.config.vocabSize;
  let nll = 0;
  let count = 0;
  for (let c = 0; c < nChunks; c++) {
    throwIfAborted(options.signal);
    const logits = await model.forward(chunkInput(tokens, c, ctx, bos), { mode, observer, logitsFrom: first, backend: options.backend, signal: options.signal });
    for (let j = first; j < ctx - 1; j++) {
      nll += logSoftmax(logits, (j - first) * vocab, vocab, tokens[c * ctx + j + 1]).nll;
      count++;
    }
    options.onProgress?.(c + 1, nChunks);
  }
  const imatrix = new Map<string, ImatrixEntry>();
  for (const s of sums.values()) for (const w of s.weights) imatrix.set(w, { sum2: s.sum2, count: s.count });
  return { ctx, chunks: nChunks, tokens: tokens.length, ppl: Math.exp(nll / count), imatrix, sites };
}

/**
 * The importance matrix as llama-imatrix writes it (save_imatrix): `general.type = imatrix`,
 * `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`, then per weight in name order
 * `<name>.in_sum2` (f32, one row) and `<name>.counts` (f32, one value).
 */
export function encodeImatrixGguf(imatrix: Map<string, ImatrixEntry>, info: { datasets: string[]; chunkCount: number; chunkSize: number }): Uint8Array {
  const names = [...imatrix.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const tensors: Array<{ name: string; dtype: 'F32'; shape: number[]; data: Float32Array }> = [];
  for (const name of names) {
    const e = imatrix.get(name)!;
    tensors.push({ name: `${name}.in_sum2`, dtype: 'F32', shape: [e.sum2.length], data: e.sum2 });
    tensors.push({ name: `${name}.counts`, dtype: 'F32', shape: [1], data: Float32Array.of(e.count) });
  }
  const metadata: Record<string, MetadataValue> = {
    'general.type': { type: 'string', value: 'imatrix' },
    'imatrix.datasets': { type: 'array', itemType: 'string', value: info.datasets },
    'imatrix.chunk_count': { type: 'u32', value: info.chunkCount },
    'imatrix.chunk_size': { type: 'u32', value: info.chunkSize },
  };
  const alignment = 32;
  const layout = layoutGgufTensorData(tensors, alignment);
  const header = encodeGgufHeader({ version: 3, metadata, alignment, tensors: tensors.map((t, i) => ({ name: t.name, dtype: t.dtype, shape: t.shape, offset: layout.offsets[i] })) });
  const out = new Uint8Array(header.length + layout.dataBytes);
  out.set(header);
  tensors.forEach((t, i) => out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), header.length + layout.offsets[i]));
  return out;
}

/**
 * A calibration's importance matrix in the form the sensitivity sweep and the quantizers read from
 * imatrix files: mean squared activation per column (Σx² ÷ tokens).
 */
export function toImportanceMatrix(imatrix: ReadonlyMap<string, ImatrixEntry>, info: { file: string; datasets: string[]; chunkCount: number }): ImportanceMatrix {
  const entries = new Map<string, ImportanceEntry>();
  for (const [name, e] of imatrix) {
    const weights = new Float32Array(e.sum2.length);
    // As the imatrix file reader: no tokens seen → uniform weights.
    for (let i = 0; i < weights.length; i++) weights[i] = e.count > 0 ? e.sum2[i] / e.count : 1;
    entries.set(name, { name, columns: e.sum2.length, matrices: 1, weights });
  }
  return { format: 'gguf', file: info.file, entries, datasets: info.datasets, chunkCount: info.chunkCount };
}
