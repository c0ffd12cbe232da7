/**
 * Sensitivity measured end to end (`kld` mode): one unit at a time — a tensor, a layer's tensors, or
 * one role across every layer — is quantized and dequantized to each candidate format, the model runs
 * on calibration text with those values in place of the originals, and the mean KL divergence of its
 * next-token distributions from the original model's is the unit's error (llama-perplexity's chunking
 * and scoring; the original's logits are computed once). The planner then minimises the sum of these.
 *
 * For units of several tensors, the unit's KLD is shared among its tensors in proportion to their
 * Σ params × relMSE at that format, so per-tensor figures add back up to the measured one.
 */
import { createHash } from 'node:crypto';
import { DTYPES } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import { importanceFor, readImportanceMatrix, type ImportanceMatrix } from '../imatrix';
import { elementCount } from '../model';
import { calibrate, toImportanceMatrix } from '../model/calibrate';
import { chunkPlan, evalTokens, evaluate, scoredLogits, type ScoredLogits } from '../model/eval';
import { LlamaModel, type ActivationObserver, type MatmulBackend, type NumericMode } from '../model/llama';
import { describeTensor, isQuantCompanion } from '../names';
import { isDequantizable } from '../quant/dequant';
import { matrixShape } from '../tensor-rows';
import { aggregateSensitivity, sqnrDbOf } from './aggregate';
import { cacheKeyOf, fileIdentity, readCachedSensitivity, writeCachedSensitivity } from './cache';
import { candidateFormatsFor, defaultFormats, quantFormat, type QuantFormat, type QuantTarget } from './formats';
import { reconstructWithTwins, rowErrors } from './quant-error';
import { compareRankings } from './rank';
import { sweepSensitivity } from './sweep';
import type { FormatError, KldGroup, KldUnit, SensitivityResult, SensitivitySettings, TensorSensitivity } from './types';

/** Chunks evaluated by default: every unit × format runs them all, so a few. */
export const KLD_DEFAULT_CHUNKS = 8;
export const KLD_DEFAULT_CTX = 512;

export interface KldProgress {
  /** Evaluations (unit × format) done and in all. */
  done: number;
  total: number;
  /** The unit and format being evaluated. */
  label: string;
}

export interface KldSweepOptions {
  target?: QuantTarget;
  /** Candidate formats (default: the target's, as the weights sweep chooses them per tensor). */
  types?: string[];
  by?: KldUnit;
  ctx?: number;
  /** At most this many chunks of the text (default KLD_DEFAULT_CHUNKS). */
  chunks?: number;
  numericMode?: NumericMode;
  /** Quantize with these importance weights where the format uses them (as llama-quantize --imatrix). */
  imatrix?: ImportanceMatrix | null;
  imatrixIdentity?: SensitivitySettings['imatrix'];
  backend?: MatmulBackend;
  signal?: AbortSignal;
  onProgress?(p: KldProgress): void;
}

interface Measured {
  canonical: string;
  /** The block the tensor belongs to; the block count for the output head. */
  layer: number;
  result: TensorSensitivity;
  formats: QuantFormat[];
}

/** The settings a kld sweep's results depend on (its cache key). */
export function kldSettings(text: Uint8Array, options: KldSweepOptions, chunks: number): SensitivitySettings {
  const target = options.target ?? 'gguf';
  const types = (options.types ?? defaultFormats(target).map((f) => f.name)).map((t) => quantFormat(t, target).name);
  return {
    target,
    types,
    mode: 'kld',
    sampleElements: null,
    seed: 0,
    imatrix: options.imatrixIdentity ?? null,
    kld: {
      by: options.by ?? 'tensor',
      ctx: options.ctx ?? KLD_DEFAULT_CTX,
      chunks,
      numericMode: options.numericMode ?? 'exact',
      textHash: createHash('sha256').update(text).digest('hex'),
    },
  };
}

/** Measures the KL divergence of every unit of `model` at every candidate format on `text`. */
export async function sweepKld(model: LlamaModel, text: Uint8Array, options: KldSweepOptions = {}): Promise<SensitivityResult> {
  const started = performance.now();
  const ctx = options.ctx ?? KLD_DEFAULT_CTX;
  const numericMode = options.numericMode ?? 'exact';
  const evalOptions = { ctx, chunks: options.chunks ?? KLD_DEFAULT_CHUNKS, mode: numericMode, backend: options.backend, signal: options.signal };
  // Tokenized once: every unit × format evaluation runs on the same tokens.
  const tokens = evalTokens(model, text);
  const { base, residuals } = await baseRun(model, tokens, evalOptions);
  const settings = kldSettings(text, options, base.chunks.length);
  const formats = settings.types.map((t) => quantFormat(t, settings.target));
  const explicit = options.types !== undefined;

  const tensors: TensorSensitivity[] = [];
  const measured: Measured[] = [];
  for (const t of model.info.tensors) {
    if (isQuantCompanion(t.name)) continue;
    const d = describeTensor(t.name);
    const params = elementCount(t.shape);
    const { rows } = matrixShape(t.shape);
    // Only the matrices the forward pass can take replacement values for.
    const canonical = d.canonical !== null && model.tensorInfo(d.canonical) === t && isForwardMatrix(d.canonical) ? d.canonical : null;
    const decodable = DTYPES[t.dtype].kind === 'float' || isDequantizable(t.dtype);
    const applicable = canonical && decodable && t.shape.length === 2 ? candidateFormatsFor(t.shape, formats, explicit) : [];
    const result: TensorSensitivity = {
      name: t.name,
      params,
      layer: d.layer,
      role: d.role,
      shape: t.shape,
      dtype: t.dtype,
      keptBytes: (params / DTYPES[t.dtype].blockSize) * DTYPES[t.dtype].bytesPerBlock,
      quantizable: applicable.length > 0,
      sampledRows: applicable.length > 0 ? rows : 0,
      rows,
      errors: Object.fromEntries(formats.map((f) => [f.name, null])),
    };
    tensors.push(result);
    if (canonical && applicable.length > 0) measured.push({ canonical, layer: d.layer ?? (canonical === 'output.weight' ? model.config.layers : 0), result, formats: applicable });
  }
  if (measured.length === 0) throw new QuantLensError('USAGE', 'no weight of the model fits any candidate format: nothing to measure');

  const units = groupUnits(measured, settings.kld!.by);
  const total = units.reduce((s, u) => s + formats.filter((f) => u.some((m) => m.formats.includes(f))).length, 0);
  let done = 0;
  let basePpl: number | undefined;
  const groups: KldGroup[] = [];
  for (const unit of units) {
    const first = unit[0].result;
    const group: KldGroup = {
      layer: settings.kld!.by === 'layer' ? first.layer : null,
      role: settings.kld!.by === 'layer' ? 'all' : first.role,
      tensors: unit.map((m) => m.result.name),
      kld: {},
      ppl: {},
    };
    for (const format of formats) {
      const members = unit.filter((m) => m.formats.includes(format));
      group.kld[format.name] = null;
      group.ppl[format.name] = null;
      if (members.length === 0) continue;
      throwIfAborted(options.signal);
      options.onProgress?.({ done, total, label: `${unitLabel(group)} at ${format.name}` });
      const overrides = new Map<string, Float32Array>();
      for (const m of members) overrides.set(m.canonical, await quantizedCopy(model, m, format, options.imatrix ?? null));
      // Blocks before the first quantized one compute what the base run did: start from its residual stream.
      const from = members.some((m) => m.canonical === 'token_embd.weight') ? 0 : Math.min(...members.map((m) => m.layer));
      const resumeAt = residuals && from > 0 ? (chunk: number) => ({ layer: from, residual: residuals[chunk][from - 1] }) : undefined;
      const r = await evaluate(model, tokens, base, { ...evalOptions, weightOverrides: overrides, resumeAt });
      basePpl ??= r.kld!.basePpl;
      group.kld[format.name] = r.kld!.meanKld;
      group.ppl[format.name] = r.ppl;
      shareAmongTensors(members.map((m) => m.result.errors[format.name]!), members.map((m) => m.result.params), r.kld!.meanKld);
      done++;
    }
    groups.push(group);
  }
  options.onProgress?.({ done, total, label: 'done' });
  return {
    mode: 'kld',
    target: settings.target,
    types: settings.types,
    settings,
    tensors,
    ...aggregateSensitivity(tensors, settings.types),
    imatrixMissing: options.imatrix ? measured.filter((m) => !importanceOf(options.imatrix!, m)).map((m) => m.result.name) : [],
    seconds: (performance.now() - started) / 1000,
    kldGroups: groups,
    basePpl,
  };
}

/** Residual streams kept from the base run for resuming (chunks × blocks × ctx × dim f32) at most; beyond, every run starts at the embedding. */
const KLD_RESIDUAL_CACHE_MAX_BYTES = 512 << 20;

/**
 * The original model's scored logits (scoredLogits) and, when they fit, the residual
 * stream after every block of every chunk: residuals[chunk][l] enters block l + 1.
 */
async function baseRun(
  model: LlamaModel,
  tokens: Int32Array,
  options: { ctx: number; chunks: number; mode: NumericMode; backend?: MatmulBackend; signal?: AbortSignal },
): Promise<{ base: ScoredLogits; residuals: Float32Array[][] | null }> {
  const nChunks = chunkPlan(tokens.length, options.ctx, options.chunks);
  const keep = nChunks * model.config.layers * options.ctx * model.config.dim * 4 <= KLD_RESIDUAL_CACHE_MAX_BYTES;
  const residuals: Float32Array[][] = [];
  const observer = (chunk: number): ActivationObserver => {
    const streams: Float32Array[] = (residuals[chunk] = []);
    return (site, values) => void (site.kind === 'residual' && (streams[site.layer] = values.slice()));
  };
  const base = await scoredLogits(model, tokens, { ...options, observer: keep ? observer : undefined });
  return { base, residuals: keep ? residuals : null };
}

function isForwardMatrix(canonical: string): boolean {
  return canonical === 'token_embd.weight' || canonical === 'output.weight' || /^blk\.\d+\.(attn_[qkv]|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$/.test(canonical);
}

function groupUnits(measured: Measured[], by: KldUnit): Measured[][] {
  if (by === 'tensor') return measured.map((m) => [m]);
  const units = new Map<string, Measured[]>();
  for (const m of measured) {
    const key = by === 'layer' ? String(m.result.layer) : m.result.role;
    units.set(key, [...(units.get(key) ?? []), m]);
  }
  return [...units.values()];
}

function unitLabel(g: KldGroup): string {
  if (g.tensors.length === 1) return g.tensors[0];
  return g.role === 'all' ? (g.layer === null ? 'tensors outside layers' : `layer ${g.layer}`) : `${g.role} of every layer`;
}

function importanceOf(imatrix: ImportanceMatrix, m: Measured): Float32Array | undefined {
  const e = importanceFor(imatrix, m.canonical);
  return e && e.matrices === 1 && e.columns === m.result.shape[1] ? e.weights : undefined;
}

/** The tensor quantized to `format` and back, its weight-error figures recorded on the way. */
async function quantizedCopy(model: LlamaModel, m: Measured, format: QuantFormat, imatrix: ImportanceMatrix | null): Promise<Float32Array> {
  const w = await model.matrix(m.canonical);
  const values = await w.values();
  const importance = imatrix ? importanceOf(imatrix, m) : undefined;
  const copy = reconstructWithTwins(values, w.rows, w.cols, format, importance);
  const errs = rowErrors(values, copy, w.rows, w.cols, undefined);
  let err = 0;
  let norm = 0;
  for (let r = 0; r < w.rows; r++) err += errs.sqErr[r];
  for (const v of values) if (Number.isFinite(v)) norm += v * v;
  const relMse = norm > 0 ? err / norm : 0;
  const e: FormatError = { relMse, sqnrDb: sqnrDbOf(relMse), maxAbsErr: errs.maxAbsErr, relMseBound: 0 };
  m.result.errors[format.name] = e;
  return copy;
}

/** Splits a unit's measured KLD over its tensors by Σ params × relMSE (by params when every error is 0). */
function shareAmongTensors(errors: FormatError[], params: number[], kld: number): void {
  const weight = errors.map((e, i) => params[i] * e.relMse);
  let total = weight.reduce((s, w) => s + w, 0);
  const shares = total > 0 ? weight : params;
  total = shares.reduce((s, w) => s + w, 0);
  errors.forEach((e, i) => (e.kld = (kld * shares[i]) / total));
}

export interface KldRunOptions extends Omit<KldSweepOptions, 'imatrix' | 'imatrixIdentity'> {
  /** A llama.cpp importance matrix to quantize with (and to rank with when comparing). */
  imatrixPath?: string;
  /**
   * Also sweep the `weights` and `imatrix` estimates (every row) and store their rank agreement with
   * the measured KLD. Without `imatrixPath`, the importance matrix comes from calibrating on the same text.
   */
  compare?: boolean;
  /** Folder for cached results; no caching without it. */
  cacheDir?: string;
}

/** The kld sweep of the model at `path` on `text`, from the cache when the files and settings are unchanged. */
export async function runKldSensitivity(path: string, text: Uint8Array, options: KldRunOptions = {}): Promise<SensitivityResult & { cached: boolean }> {
  const model = await LlamaModel.load(path, { signal: options.signal });
  const imatrix = options.imatrixPath ? await readImportanceMatrix(options.imatrixPath, { signal: options.signal }) : null;
  const imatrixIdentity = options.imatrixPath ? await fileIdentity(options.imatrixPath) : null;
  const sweep: KldSweepOptions = { ...options, imatrix, imatrixIdentity };
  // The chunk count is part of the key: resolve it as the sweep will.
  const chunks = chunkPlan(evalTokens(model, text).length, options.ctx ?? KLD_DEFAULT_CTX, options.chunks ?? KLD_DEFAULT_CHUNKS);
  const settings = { ...kldSettings(text, sweep, chunks), compare: options.compare === true };
  const key = options.cacheDir ? await cacheKeyOf(model.info.files, settings) : null;
  if (options.cacheDir && key) {
    const hit = await readCachedSensitivity(options.cacheDir, key);
    if (hit) return { ...hit, cached: true };
  }
  const result = await sweepKld(model, text, sweep);
  if (options.compare) result.rankCorrelation = await rankAgainstEstimates(model, text, result, imatrix, options);
  if (options.cacheDir && key) await writeCachedSensitivity(options.cacheDir, key, result);
  return { ...result, cached: false };
}

/** Sweeps the weights and imatrix estimates of the same tensors and formats, and ranks them against `kld`. */
export async function rankAgainstEstimates(
  model: LlamaModel,
  text: Uint8Array,
  kld: SensitivityResult,
  imatrix: ImportanceMatrix | null,
  options: Pick<KldSweepOptions, 'signal' | 'backend'> = {},
): Promise<NonNullable<SensitivityResult['rankCorrelation']>> {
  const k = kld.settings.kld!;
  const importance =
    imatrix ??
    toImportanceMatrix((await calibrate(model, text, { ctx: k.ctx, chunks: k.chunks, mode: k.numericMode, backend: options.backend, signal: options.signal })).imatrix, {
      file: '(calibration text)',
      datasets: [],
      chunkCount: k.chunks,
    });
  const common = { target: kld.target, types: kld.types, sampleElements: null, signal: options.signal };
  const weights = await sweepSensitivity(model.info, common);
  const weighted = await sweepSensitivity(model.info, { ...common, imatrix: importance });
  return [...compareRankings(kld, weights), ...compareRankings(kld, weighted)];
}
