/**
 * The LLM side of the Activations view: a Llama-family checkpoint run over calibration text
 * (src/core/model/calibrate.ts, llama-imatrix's chunking) inside a kernel worker (the `calibrate` job).
 * Keeps what the view asks for afterwards: each site's statistics and channel profile, the
 * checkpoint's weights for their histograms, and the importance matrix for the sensitivity sidebar.
 */
import { basename } from 'node:path';
import { QuantLensError } from '../../core/errors';
import { encodeImatrixGguf, OUTLIER_CHANNEL_RATIO, type ActivationSiteStats } from '../../core/model/calibrate';
import { readEvalText } from '../../core/model/eval';
import { LlamaModel } from '../../core/model/llama';
import type { TensorInfo } from '../../core/model';
import { imatrixOfReply } from '../../kernel/model-jobs';
import type { KernelPool } from '../../kernel/pool';
import { computeTensorStats } from '../../kernel/tensor-stats';
import type { ActivationSiteView, ActivationsResultView, ChannelProfileView, SiteDetailReply } from '../../shared/protocol';

export interface LlmCalibrationInput {
  /** the text's bytes and the name it goes by in the imatrix file */
  text: Uint8Array;
  textName: string;
  ctx: number;
  chunks: number | null;
}

/** Reads the chosen text file (or the bundled default at `defaultPath`). */
export async function llmCalibrationText(textPath: string | null, defaultPath: string): Promise<{ text: Uint8Array; textName: string }> {
  const path = textPath ?? defaultPath;
  return { text: await readEvalText(path), textName: basename(path) };
}

/** Weights shown beside a site: the ones reading it (linear inputs) or the one writing it (block outputs). */
function siteWeights(s: ActivationSiteStats): string[] {
  if (s.kind === 'linear-input') return s.weights;
  if (s.layer === null) return [];
  if (s.kind === 'attn-out') return [`blk.${s.layer}.attn_output.weight`];
  if (s.kind === 'ffn-out') return [`blk.${s.layer}.ffn_down.weight`];
  return [];
}

const KIND_LABEL: Record<ActivationSiteStats['kind'], string> = {
  'linear-input': 'linear input',
  'attn-out': 'attention out',
  'ffn-out': 'MLP out',
  residual: 'residual',
};

/** One finished LLM calibration. */
export class LlmActivations {
  private readonly sites = new Map<string, ActivationSiteStats>();
  private readonly weightStats = new Map<string, Promise<SiteDetailReply['weight']>>();

  private constructor(
    private readonly model: LlamaModel,
    readonly view: ActivationsResultView,
    summaries: ActivationSiteStats[],
    /** the importance matrix as llama-imatrix writes it */
    readonly imatrixGguf: Uint8Array,
  ) {
    for (const s of summaries) this.sites.set(s.key, s);
  }

  /** Runs the text through the checkpoint in a kernel worker (the `calibrate` job; cancellable through `signal`). */
  static async run(
    path: string,
    input: LlmCalibrationInput,
    pool: KernelPool,
    signal: AbortSignal,
    onProgress: (done: number, total: number) => void,
  ): Promise<LlmActivations> {
    const started = performance.now();
    const r = await pool.run(
      'calibrate',
      { model: path, text: { bytes: input.text }, ctx: input.ctx, ...(input.chunks !== null ? { chunks: input.chunks } : {}) },
      { signal, onPartial: ({ done, total }) => onProgress(done, total) },
    );
    // the checkpoint's header and names, for the weight histograms (no forward pass here)
    const model = await LlamaModel.load(path, { signal });
    const summaries = r.sites;
    const sites: ActivationSiteView[] = summaries.map((s) => ({
      id: s.key,
      label: s.key,
      op: KIND_LABEL[s.kind],
      absMax: s.stats.absMax,
      std: s.stats.std,
      kurtosis: s.stats.kurtosis,
      outlierShare: s.stats.outlierShare,
      outlierChannels: s.channelAbsMax.filter((a) => s.medianChannelAbsMax > 0 && a / s.medianChannelAbsMax >= OUTLIER_CHANNEL_RATIO).length,
      weights: siteWeights(s),
      hasChannels: s.channels > 1,
    }));
    const imatrixGguf = encodeImatrixGguf(imatrixOfReply(r), { datasets: [input.textName], chunkCount: r.chunks, chunkSize: r.ctx });
    const view: ActivationsResultView = {
      summary: `${r.chunks} chunks of ${r.ctx} tokens from ${input.textName} (${r.tokens} tokens in all), exact f32 forward pass`,
      synthetic: false,
      sites,
      seconds: (performance.now() - started) / 1000,
      ppl: r.ppl,
      imatrixWeights: r.imatrix.length,
      notes: [],
    };
    return new LlmActivations(model, view, summaries, imatrixGguf);
  }

  async detail(id: string, weightName: string | undefined, pool: KernelPool, signal: AbortSignal): Promise<SiteDetailReply> {
    const s = this.sites.get(id);
    if (!s) throw new QuantLensError('USAGE', `no activation site ${id}`);
    const weights = siteWeights(s);
    const name = weightName && weights.includes(weightName) ? weightName : weights[0];
    let weight: SiteDetailReply['weight'] = null;
    let weightNote: string | null = name ? null : 'This site is not read or written by a single weight (residual stream).';
    if (name) {
      const tensor = this.weightTensor(name);
      if (!tensor) weightNote = `${name} is not stored in the checkpoint.`;
      else {
        let pending = this.weightStats.get(name);
        if (!pending) {
          pending = computeTensorStats(pool, this.model.info, [tensor], { signal }).then(([stats]) => ({ name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, stats: stats! }));
          this.weightStats.set(name, pending);
          pending.catch(() => this.weightStats.delete(name));
        }
        weight = await pending;
      }
    }
    return { id, activation: { label: `${s.key} (${KIND_LABEL[s.kind]}, ${s.tokens} tokens × ${s.channels} channels)`, stats: s.stats }, weight, weightNote, channels: channelProfile(s) };
  }

  /** A tied output head reads the token embedding. */
  private weightTensor(name: string): TensorInfo | undefined {
    return this.model.tensorInfo(name) ?? (name === 'output.weight' ? this.model.tensorInfo('token_embd.weight') : undefined);
  }
}

function channelProfile(s: ActivationSiteStats): ChannelProfileView | null {
  if (s.channels <= 1) return null;
  const median = s.medianChannelAbsMax;
  const outliers: number[] = [];
  s.channelAbsMax.forEach((a, c) => {
    if (median > 0 && a / median >= OUTLIER_CHANNEL_RATIO) outliers.push(c);
  });
  return { input: s.key, axis: 1, absMax: s.channelAbsMax, median, ratio: OUTLIER_CHANNEL_RATIO, outliers };
}
