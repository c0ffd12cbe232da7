/**
 * Perplexity and KL divergence the way `llama-perplexity` computes them (tools/perplexity/perplexity.cpp):
 * the text is tokenized once (BOS first), cut into chunks of `ctx` tokens (whole chunks only); each chunk
 * runs from position 0 with its first token replaced by BOS, and only the second half is scored
 * (logits of rows ctx/2 … ctx−2 predicting the next token). With a base model, every scored row also
 * gives the KL divergence of this model's next-token distribution from the base's, the change of the
 * correct token's probability, and whether the top tokens agree. In the llama.cpp-compatible mode the
 * base distribution goes through the same 16-bit log-probability store llama.cpp keeps between its runs.
 */
import { QuantLensError, throwIfAborted } from '../errors';
import { EVAL_TEXT_MAX_BYTES } from '../limits';
import { fround, nearestInt } from '../quant/ggml-float';
import type { ActivationObserver, LlamaModel, MatmulBackend, NumericMode } from './llama';

export interface EvalOptions {
  ctx?: number;
  /** At most this many chunks (default: all whole chunks). */
  chunks?: number;
  mode?: NumericMode;
  /** Runs the exact mode's matrix products (e.g. in a kernel); plain TypeScript when absent. */
  backend?: MatmulBackend;
  /** Replacement values of some weights in the evaluated model (ForwardOptions.weightOverrides). */
  weightOverrides?: ReadonlyMap<string, Float32Array>;
  /** Per chunk, where its forward pass may resume (ForwardOptions.resumeAt); from the start when it returns undefined. */
  resumeAt?(chunk: number): { layer: number; residual: Float32Array } | undefined;
  /** Per chunk, what sees its forward pass's activations (ForwardOptions.observer). */
  observer?(chunk: number): ActivationObserver | undefined;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

export interface KldStats {
  meanKld: number;
  meanKldUncertainty: number;
  medianKld: number;
  p999Kld: number;
  maxKld: number;
  /** Root mean square of p(correct token) − p_base(correct token), in percent. */
  rmsDeltaP: number;
  /** Percent of scored rows where both models put the same token first. */
  sameTopP: number;
  basePpl: number;
}

export interface EvalResult {
  ppl: number;
  pplUncertainty: number;
  tokens: number;
  chunks: number;
  ctx: number;
  scored: number;
  kld?: KldStats;
}

/** A text to run: its bytes (UTF-8) or string, or the tokens evalTokens made of it with the same model. */
export type EvalText = Uint8Array | string | Int32Array;

/** Tokenizes for evaluation: the model's tokenizer, BOS first (tokens already made are returned as they are). */
export function evalTokens(model: LlamaModel, text: EvalText): Int32Array {
  if (!model.tokenizer) throw new QuantLensError('USAGE', 'the model has no tokenizer (tokenizer.model or GGUF tokenizer.ggml.*): cannot tokenize text');
  return text instanceof Int32Array ? text : model.tokenizer.encode(text, { addBos: true });
}

/** The token that replaces the first of every chunk: BOS when the vocabulary adds it (llama-perplexity). */
export function chunkBos(model: LlamaModel): number | null {
  return model.tokenizer?.vocab.addBos ? model.tokenizer.vocab.bosId : null;
}

/** Sets up chunks as llama.cpp does: whole chunks of ctx tokens, at least two of them in the text. */
export function chunkPlan(tokens: number, ctx: number, chunks?: number): number {
  if (!(Number.isInteger(ctx) && ctx >= 4)) throw new QuantLensError('USAGE', `--ctx ${ctx}: needs an integer of at least 4`);
  if (tokens < 2 * ctx) throw new QuantLensError('USAGE', `the text has ${tokens} tokens: at least ${2 * ctx} are needed for a context of ${ctx}`);
  const max = Math.floor(tokens / ctx);
  return chunks === undefined || chunks < 0 ? max : Math.min(chunks, max);
}

/** The tokens one chunk runs on: ctx tokens from chunk·ctx, the first replaced by BOS. */
export function chunkInput(tokens: Int32Array, chunk: number, ctx: number, bos: number | null): Int32Array {
  const input = tokens.slice(chunk * ctx, (chunk + 1) * ctx);
  if (bos !== null) input[0] = bos;
  return input;
}

export interface LogSoftmax {
  nll: number;
  argmax: number;
  logSumExp: number;
  max: number;
}

/** The next-token NLL of one row of logits as llama.cpp's log_softmax computes it (f32 exponentials, summed in double). */
export function logSoftmax(logits: Float32Array, o: number, vocab: number, target: number): LogSoftmax {
  let max = logits[o];
  let argmax = 0;
  for (let i = 1; i < vocab; i++) {
    if (logits[o + i] > max) {
      max = logits[o + i];
      argmax = i;
    }
  }
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += fround(Math.exp(fround(logits[o + i] - max)));
  const logSumExp = Math.log(sum);
  return { nll: max + logSumExp - logits[o + target], argmax, logSumExp, max };
}

/**
 * The base model's log-probabilities of one row as llama.cpp stores them (perplexity.cpp log_softmax
 * with a uint16 output): 16-bit steps between the row's minimum (at most 16 below the maximum) and maximum.
 */
function storedBaseLogProbs(logits: Float32Array, o: number, vocab: number, out: Float32Array): void {
  let max = logits[o];
  let min = logits[o];
  for (let i = 1; i < vocab; i++) {
    max = Math.max(max, logits[o + i]);
    min = Math.min(min, logits[o + i]);
  }
  min = Math.max(min, fround(max - 16));
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += fround(Math.exp(fround(logits[o + i] - max)));
  const logSumExp = fround(Math.log(sum));
  const minLogProb = fround(fround(min - max) - logSumExp);
  const scale = fround(fround(max - min) / 65535);
  const inv = scale ? fround(1 / scale) : 0;
  for (let i = 0; i < vocab; i++) {
    const q = scale && logits[o + i] > min ? nearestInt(fround(inv * fround(logits[o + i] - min))) : 0;
    out[i] = fround(fround(scale * q) + minLogProb);
  }
}

function exactBaseLogProbs(logits: Float32Array, o: number, vocab: number, out: Float32Array): void {
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) max = Math.max(max, logits[o + i]);
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[o + i] - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < vocab; i++) out[i] = logits[o + i] - lse;
}

/** mean and its standard error, as llama.cpp's mean_and_uncertainty. */
function meanAndUncertainty(sum: number, sum2: number, count: number): [number, number] {
  if (count < 1) return [0, 0];
  const f = sum / count;
  const df = sum2 / count - f * f;
  return [f, df > 0 && count > 10 ? Math.sqrt(df / (count - 1)) : 0];
}

function percentile(sorted: Float64Array, fraction: number): number {
  if (fraction <= 0) return sorted[0];
  if (fraction >= 1) return sorted[sorted.length - 1];
  let p = fraction * (sorted.length - 1);
  const ip = Math.floor(p);
  p -= ip;
  return (1 - p) * sorted[ip] + p * sorted[Math.min(ip + 1, sorted.length - 1)];
}

/** A base model's logits of the scored rows of every chunk, computed once for several comparisons. */
export interface ScoredLogits {
  tokens: Int32Array;
  ctx: number;
  mode: NumericMode;
  vocabSize: number;
  /** Per chunk: [ctx − ctx/2, vocab] logits from row ctx/2 on. */
  chunks: Float32Array[];
}

/** Runs `model` over the chunks of `text` and keeps the logits llama-perplexity scores. */
export async function scoredLogits(model: LlamaModel, text: EvalText, options: EvalOptions = {}): Promise<ScoredLogits> {
  const ctx = options.ctx ?? 512;
  const mode = options.mode ?? 'exact';
  const tokens = evalTokens(model, text);
  const nChunks = chunkPlan(tokens.length, ctx, options.chunks);
  const bos = chunkBos(model);
  const chunks: Float32Array[] = [];
  for (let c = 0; c < nChunks; c++) {
    const forward = { mode, logitsFrom: ctx >> 1, backend: options.backend, observer: options.observer?.(c), signal: options.signal };
    chunks.push(await model.forward(chunkInput(tokens, c, ctx, bos), forward));
    options.onProgress?.(c + 1, nChunks);
  }
  return { tokens, ctx, mode, vocabSize: model.config.vocabSize, chunks };
}

/** Perplexity of `model` on `text`; with `base` (a model or its precomputed logits), KL divergence statistics against it. */
export async function evaluate(model: LlamaModel, text: EvalText, base: LlamaModel | ScoredLogits | null, options: EvalOptions = {}): Promise<EvalResult> {
  const ctx = options.ctx ?? 512;
  const mode = options.mode ?? 'exact';
  const tokens = evalTokens(model, text);
  let baseRef: ScoredLogits | null = null;
  if (base) {
    baseRef = 'forward' in base ? await scoredLogits(base, text, { ...options, weightOverrides: undefined, resumeAt: undefined, observer: undefined, onProgress: undefined }) : base;
    if (baseRef.ctx !== ctx || baseRef.mode !== mode) throw new QuantLensError('USAGE', 'the base logits were computed with another context size or numeric mode');
    if (baseRef.tokens.length !== tokens.length || baseRef.tokens.some((t, i) => t !== tokens[i])) {
      throw new QuantLensError('USAGE', 'the base model tokenizes the text differently: KL divergence needs the same vocabulary');
    }
    if (baseRef.vocabSize !== model.config.vocabSize) throw new QuantLensError('USAGE', `vocabularies differ (${model.config.vocabSize} vs ${baseRef.vocabSize})`);
  }
  const nChunks = chunkPlan(tokens.length, ctx, options.chunks);
  if (baseRef && baseRef.chunks.length < nChunks) throw new QuantLensError('USAGE', `the base logits cover ${baseRef.chunks.length} chunks, ${nChunks} are scored`);
  const first = ctx >> 1;
  const vocab = model.config.vocabSize;
  const bos = chunkBos(model);
  let nll = 0;
  let nll2 = 0;
  let count = 0;
  const kld = { sumNllBase: 0, sum: 0, sum2: 0, pDiff2: 0, pDiff4: 0, sameTop: 0 };
  const kldValues: number[] = [];
  const baseLogProbs = new Float32Array(vocab);
  for (let c = 0; c < nChunks; c++) {
    throwIfAborted(options.signal);
    const input = chunkInput(tokens, c, ctx, bos);
    const logits = await model.forward(input, {
      mode,
      logitsFrom: first,
      backend: options.backend,
      weightOverrides: options.weightOverrides,
      resumeAt: options.resumeAt?.(c),
      observer: options.observer?.(c),
      signal: options.signal,
    });
    const baseLogits = baseRef ? baseRef.chunks[c] : null;
    for (let j = first; j < ctx - 1; j++) {
      const row = (j - first) * vocab;
      const target = tokens[c * ctx + j + 1];
      const r = logSoftmax(logits, row, vocab, target);
      nll += r.nll;
      nll2 += r.nll * r.nll;
      count++;
      if (!baseLogits) continue;
      if (mode === 'llama.cpp') storedBaseLogProbs(baseLogits, row, vocab, baseLogProbs);
      else exactBaseLogProbs(baseLogits, row, vocab, baseLogProbs);
      const shift = r.max + r.logSumExp;
      let sum = 0;
      let baseArgmax = 0;
      for (let i = 0; i < vocab; i++) {
        const lb = baseLogProbs[i];
        if (lb > baseLogProbs[baseArgmax]) baseArgmax = i;
        if (lb > -16) sum += Math.exp(lb) * (lb - logits[row + i] + shift);
      }
      kld.sum += sum;
      kld.sum2 += sum * sum;
      kldValues.push(sum);
      if (baseArgmax === r.argmax) kld.sameTop++;
      const nllBase = -baseLogProbs[target];
      kld.sumNllBase += nllBase;
      const pDiff = Math.exp(-r.nll) - Math.exp(-nllBase);
      kld.pDiff2 += pDiff * pDiff;
      kld.pDiff4 += pDiff ** 4;
    }
    options.onProgress?.(c + 1, nChunks);
  }
  const [meanNll, nllUnc] = meanAndUncertainty(nll, nll2, count);
  const ppl = Math.exp(meanNll);
  const result: EvalResult = { ppl, pplUncertainty: ppl * nllUnc, tokens: tokens.length, chunks: nChunks, ctx, scored: count };
  if (base) {
    const sorted = Float64Array.from(kldValues).sort();
    const n = sorted.length;
    const [meanKld, meanKldUncertainty] = meanAndUncertainty(kld.sum, kld.sum2, count);
    const [mse] = meanAndUncertainty(kld.pDiff2, kld.pDiff4, count);
    result.kld = {
      meanKld,
      meanKldUncertainty,
      medianKld: n % 2 === 0 ? 0.5 * (sorted[n / 2] + sorted[n / 2 - 1]) : sorted[(n - 1) / 2],
      p999Kld: percentile(sorted, 0.999),
      maxKld: sorted[n - 1],
      rmsDeltaP: 100 * Math.sqrt(mse),
      sameTopP: (100 * kld.sameTop) / count,
      basePpl: Math.exp(kld.sumNllBase / count),
    };
  }
  return result;
}

/** Reads a calibration or evaluation text as bytes (tokenized as UTF-8), bounded in size. */
export async function readEvalText(path: string): Promise<Uint8Array> {
  const { stat, readFile } = await import('node:fs/promises');
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new QuantLensError('IO', `cannot read ${path}: ${(err as Error).message}`, { file: path, cause: err });
  }
  if (size > EVAL_TEXT_MAX_BYTES) throw new QuantLensError('LIMIT_EXCEEDED', `${path} has ${size} bytes, more than the ${EVAL_TEXT_MAX_BYTES} a text may have`, { file: path });
  return new Uint8Array(await readFile(path));
}
