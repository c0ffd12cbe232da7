/**
 * Worker side of the `calibrate`, `evaluate` and `kldSensitivity` jobs: the whole forward pass of a Llama-family model
 * runs inside one kernel worker (core calibrate()/evaluate(), the exact mode's products in that
 * worker's own kernel), so the extension host never runs it. Each chunk done is streamed as a
 * partial (`ModelJobProgress`); cancelling the job stops the worker (pool.ts).
 */
import { QuantLensError } from '../core/errors';
import { calibrate, type ActivationSiteStats, type ImatrixEntry } from '../core/model/calibrate';
import { evaluate, readEvalText, scoredLogits, type EvalResult } from '../core/model/eval';
import { LlamaModel, type NumericMode } from '../core/model/llama';
import { runKldSensitivity, type KldProgress, type KldRunOptions } from '../core/sensitivity/kld';
import type { SensitivityResult } from '../core/sensitivity/types';
import { Transfer } from '../shared/rpc';
import type { StreamingJobContext } from './jobs';
import { KernelMatmul } from './kernel-matmul';

/** Calibration or evaluation text: a file the worker reads (bounded like `--text`), or the text itself. */
export type TextInput = { path: string } | { text: string } | { bytes: Uint8Array };

export interface CalibrateJob {
  /** The model: a Hugging Face folder, a GGUF (first shard) or a .pt. */
  model: string;
  text: TextInput;
  /** Tokens per chunk (default 512). */
  ctx?: number;
  /** At most this many chunks (default: every whole chunk). */
  chunks?: number;
  mode?: NumericMode;
  /** Histogram bins of the site summaries (default 256). */
  bins?: number;
  /** Collect `output.weight`'s input too (llama-imatrix --process-output). */
  processOutput?: boolean;
}

/** One weight's importance statistics, as llama-imatrix collects them (encodeImatrixGguf writes them). */
export interface ImatrixJobEntry {
  name: string;
  /** Σ x² per input column, f32. */
  sum2: Float32Array;
  /** Tokens seen. */
  count: number;
}

export interface CalibrateJobReply {
  ctx: number;
  chunks: number;
  tokens: number;
  ppl: number;
  mode: NumericMode;
  /** Sorted by name. Weights reading the same input (q/k/v, gate/up) carry equal copies. */
  imatrix: ImatrixJobEntry[];
  /** One per activation site, in the order the forward pass meets them. */
  sites: ActivationSiteStats[];
}

export interface EvaluateJob {
  model: string;
  /** With a base model: KL divergence statistics against it (same vocabulary). */
  base?: string;
  text: TextInput;
  ctx?: number;
  chunks?: number;
  mode?: NumericMode;
}

export type EvaluateJobReply = EvalResult;

/** Chunks run so far and in all (with a base model, its chunks count too: 2 × chunks). */
export interface ModelJobProgress {
  done: number;
  total: number;
}

async function textOf(input: TextInput): Promise<Uint8Array | string> {
  if ('path' in input) return readEvalText(input.path);
  if ('bytes' in input) return input.bytes;
  if (typeof input.text !== 'string') throw new QuantLensError('USAGE', 'text input must be a path, a string or bytes');
  return input.text;
}

export async function runCalibrateJob(job: CalibrateJob, ctx: StreamingJobContext<ModelJobProgress>): Promise<Transfer<CalibrateJobReply>> {
  const text = await textOf(job.text);
  const model = await LlamaModel.load(job.model, { signal: ctx.signal });
  const mode = job.mode ?? 'exact';
  const r = await calibrate(model, text, {
    ctx: job.ctx,
    chunks: job.chunks,
    mode,
    bins: job.bins,
    processOutput: job.processOutput,
    backend: new KernelMatmul(ctx.kernel, ctx.arena),
    signal: ctx.signal,
    onProgress: (done, total) => ctx.partial({ done, total }),
  });
  const imatrix = [...r.imatrix]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, e]) => ({ name, sum2: e.sum2.slice(), count: e.count }));
  const sites = [...r.sites.values()].map((s) => s.summary(job.bins));
  const reply: CalibrateJobReply = { ctx: r.ctx, chunks: r.chunks, tokens: r.tokens, ppl: r.ppl, mode, imatrix, sites };
  return new Transfer(reply, imatrix.map((e) => e.sum2.buffer as ArrayBuffer));
}

export async function runEvaluateJob(job: EvaluateJob, ctx: StreamingJobContext<ModelJobProgress>): Promise<EvaluateJobReply> {
  const text = await textOf(job.text);
  const backend = new KernelMatmul(ctx.kernel, ctx.arena);
  const options = { ctx: job.ctx, chunks: job.chunks, mode: job.mode, backend, signal: ctx.signal };
  let baseLogits = null;
  let offset = 0;
  let stages = 1;
  if (job.base) {
    stages = 2;
    const base = await LlamaModel.load(job.base, { signal: ctx.signal });
    baseLogits = await scoredLogits(base, text, { ...options, onProgress: (done, total) => ctx.partial({ done, total: 2 * total }) });
    offset = baseLogits.chunks.length;
  }
  const model = await LlamaModel.load(job.model, { signal: ctx.signal });
  return evaluate(model, text, baseLogits, { ...options, onProgress: (done, total) => ctx.partial({ done: offset + done, total: stages * total }) });
}

/** A `kld` sensitivity sweep (src/core/sensitivity/kld.ts) of a model on calibration text. */
export interface KldSensitivityJob extends Omit<KldRunOptions, 'backend' | 'signal' | 'onProgress' | 'cacheDir'> {
  model: string;
  text: TextInput;
}

export async function runKldSensitivityJob(job: KldSensitivityJob, ctx: StreamingJobContext<KldProgress>): Promise<SensitivityResult> {
  const { model, text, ...options } = job;
  const bytes = await textOf(text);
  return runKldSensitivity(model, typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes, {
    ...options,
    backend: new KernelMatmul(ctx.kernel, ctx.arena),
    signal: ctx.signal,
    onProgress: (p) => ctx.partial(p),
  });
}

/** The reply's importance statistics as core's map (for encodeImatrixGguf, toImportanceMatrix). */
export function imatrixOfReply(reply: Pick<CalibrateJobReply, 'imatrix'>): Map<string, ImatrixEntry> {
  return new Map(reply.imatrix.map((e) => [e.name, { sum2: e.sum2, count: e.count }]));
}
