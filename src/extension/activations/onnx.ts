/**
 * The ONNX side of the Activations view: calibration samples built against the model's input
 * signature (src/core/onnx/samples.ts), node activations captured through ONNX Runtime in the
 * kernel pool (calibrateOnnx, poolOnnxRunner), then int8 QDQ quantization with the calibrated
 * ranges (in a kernel worker, as is the decoding of calibration files), the quantized model's outputs against the original's, and per-layer output sensitivity.
 */
import { basename, dirname, extname, join } from 'node:path';
import { existsSync } from 'node:fs';
import { FileByteSource } from '../../core/bytesource';
import { QuantLensError } from '../../core/errors';
import type { ModelInfo } from '../../core/model';
import { calibrateOnnx, OUTLIER_CHANNEL_RATIO, type OnnxCalibration } from '../../core/onnx/calibrate';
import { evaluateOnnx } from '../../core/onnx/evaluate';
import { inputSignature, type InputSpec } from '../../core/onnx/feeds';
import { findWeights, QUANTIZABLE_OPS } from '../../core/onnx/graph-edit';
import type { OnnxQuantizeResult, RangeMethod } from '../../core/onnx/quantize';
import { DEFAULT_IMAGE_OPTIONS, syntheticSamples, type CalibrationSet, type SampleOptions } from '../../core/onnx/samples';
import { onnxOutputSensitivity, type OnnxSensitivityResult } from '../../core/onnx/sensitivity';
import { openModel } from '../../core/readers';
import { readOnnxModel } from '../../core/readers/onnx';
import { loadCalibrationSetInPool, poolOnnxRunner, quantizeOnnxInPool } from '../../kernel/onnx';
import type { KernelPool } from '../../kernel/pool';
import { computeTensorStats } from '../../kernel/tensor-stats';
import type {
  ActivationSiteView, ActivationsResultView, CalibrationRequest, ImageNormalisationView, OnnxEvaluationView, OnnxInputView, SiteDetailReply,
} from '../../shared/protocol';

export const DEFAULT_IMAGE_NORMALISATION: ImageNormalisationView = {
  scale: DEFAULT_IMAGE_OPTIONS.scale,
  mean: [...DEFAULT_IMAGE_OPTIONS.mean],
  std: [...DEFAULT_IMAGE_OPTIONS.std],
  channelOrder: DEFAULT_IMAGE_OPTIONS.channelOrder,
  resize: DEFAULT_IMAGE_OPTIONS.resize,
};

const SOURCE_NAMES: Record<CalibrationSet['sources'][number], string> = { npy: '.npy', npz: '.npz', images: 'image', audio: '.wav', synthetic: 'synthetic' };

/** What the panel needs to know before calibrating: the inputs and the symbolic dims to ask for. */
export interface OnnxModelFacts {
  signature: InputSpec[];
  inputs: OnnxInputView[];
  symbolicDims: string[];
  /** node index → the constant weight of that Conv/MatMul/Gemm */
  weightOfNode: Map<number, string>;
}

export async function readOnnxFacts(path: string, signal: AbortSignal): Promise<OnnxModelFacts> {
  const src = await FileByteSource.open(path);
  try {
    const model = await readOnnxModel(src, { signal });
    const signature = inputSignature(model.graph);
    const weightOfNode = new Map(findWeights(model).map((w) => [w.nodeIndex, w.name]));
    // a weight shared by several nodes is listed once by findWeights: give every user its weight
    for (const [i, node] of model.graph.nodes.entries()) {
      if (QUANTIZABLE_OPS.has(node.opType) && !weightOfNode.has(i) && node.inputs[1] && [...weightOfNode.values()].includes(node.inputs[1])) weightOfNode.set(i, node.inputs[1]);
    }
    return { signature, inputs: signature.map((s) => ({ name: s.name, type: s.type, dims: s.dims })), symbolicDims: symbolicDimsOf(signature), weightOfNode };
  } finally {
    await src.close();
  }
}

/**
 * The symbolic dims a user must give: every symbol, and `<input>:<axis>` for unnamed unknowns,
 * except a leading dim (the batch, 1 wherever its symbol appears: feeds.ts withBatchDefaults).
 */
export function symbolicDimsOf(signature: readonly InputSpec[]): string[] {
  const batch = new Set(signature.map((s) => s.dims[0]).filter((d): d is string => typeof d === 'string'));
  const out: string[] = [];
  for (const spec of signature) {
    spec.dims.forEach((d, axis) => {
      if (axis === 0 || typeof d === 'number') return;
      const key = d ?? `${spec.name}:${axis}`;
      if (!batch.has(key) && !out.includes(key)) out.push(key);
    });
  }
  return out;
}

/** The calibration set of a request: files (read and decoded in a kernel worker: images, arrays, audio) or synthetic values. */
export async function onnxCalibrationSet(
  facts: OnnxModelFacts,
  request: Extract<CalibrationRequest, { kind: 'onnx' }>,
  pool: KernelPool,
  signal: AbortSignal,
  onProgress?: (filesDone: number, filesTotal: number) => void,
): Promise<CalibrationSet> {
  for (const name of facts.symbolicDims) {
    const v = request.dims[name];
    if (v === undefined || !Number.isSafeInteger(v) || v <= 0) throw new QuantLensError('USAGE', `give the size of the symbolic dimension ${name}`);
  }
  const options: SampleOptions = { dims: new Map(Object.entries(request.dims)), image: { ...request.image }, signal };
  if (request.source === 'synthetic') {
    if (!Number.isSafeInteger(request.samples) || request.samples < 1) throw new QuantLensError('USAGE', 'give the number of synthetic samples (at least 1)');
    return syntheticSamples(facts.signature, request.samples, options);
  }
  if (!request.path) throw new QuantLensError('USAGE', 'choose the calibration files first');
  return loadCalibrationSetInPool(pool, facts.signature, [request.path], { ...options, onProgress });
}

export interface QuantizeChoice {
  activations: boolean;
  rangeMethod: RangeMethod;
}

/** A path next to `input` that does not exist yet: model-int8-qdq.onnx, model-int8-qdq-2.onnx, … */
export function quantizedPathFor(input: string): string {
  const stem = basename(input, extname(input));
  for (let k = 1; ; k++) {
    const candidate = join(dirname(input), `${stem}-int8-qdq${k > 1 ? `-${k}` : ''}.onnx`);
    if (!existsSync(candidate)) return candidate;
  }
}

/** One finished ONNX calibration and what can be done with it. */
export class OnnxActivations {
  private info: Promise<ModelInfo> | undefined;
  private readonly weightStats = new Map<string, Promise<SiteDetailReply['weight']>>();
  private readonly byId = new Map<string, { index: number; node: string; opType: string }>();

  private constructor(
    readonly path: string,
    readonly facts: OnnxModelFacts,
    readonly set: CalibrationSet,
    readonly calibration: OnnxCalibration,
    readonly view: ActivationsResultView,
  ) {
    for (const l of calibration.layers) if (l.output) this.byId.set(l.output, { index: l.index, node: l.node, opType: l.opType });
  }

  static async run(path: string, facts: OnnxModelFacts, set: CalibrationSet, pool: KernelPool, signal: AbortSignal, onProgress: (stage: string, done: number, total: number) => void): Promise<OnnxActivations> {
    const started = performance.now();
    const calibration = await calibrateOnnx(path, set, poolOnnxRunner(pool), {
      signal,
      onProgress: (stage, done, total) => onProgress(stage === 'scan' ? 'pass 1 of 2: ranges' : 'pass 2 of 2: histograms', done, total),
    });
    const channelsOf = new Map(calibration.channelOutliers.map((c) => [c.nodeIndex, c]));
    const sites: ActivationSiteView[] = calibration.layers
      .filter((l) => l.output !== null)
      .map((l) => {
        const weight = facts.weightOfNode.get(l.index);
        const channels = channelsOf.get(l.index);
        return {
          id: l.output!,
          label: l.node,
          op: l.opType,
          absMax: l.absMax,
          std: l.std,
          kurtosis: l.kurtosis,
          outlierShare: l.outlierShare,
          outlierChannels: channels?.outliers.length ?? 0,
          weights: weight ? [weight] : [],
          hasChannels: channels !== undefined,
        };
      });
    const notes: string[] = [];
    if (calibration.filledInputs.length) notes.push(`Inputs filled with zeros or constants: ${calibration.filledInputs.join(', ')}.`);
    if (calibration.subgraphNodes.length) notes.push(`Values inside the subgraphs of ${calibration.subgraphNodes.join(', ')} are not captured.`);
    if (calibration.skipped.length) notes.push(`${calibration.skipped.length} non-float values have no statistics.`);
    const view: ActivationsResultView = {
      summary: `${calibration.samples} samples from ${set.synthetic ? 'synthetic inputs' : `${set.files.length} ${set.sources.map((s) => SOURCE_NAMES[s]).join(' + ')} file${set.files.length === 1 ? '' : 's'}`}; ${sites.length} node outputs, ${calibration.channelOutliers.length} Conv/MatMul/Gemm inputs profiled`,
      synthetic: set.synthetic,
      sites,
      seconds: (performance.now() - started) / 1000,
      ppl: null,
      imatrixWeights: null,
      notes,
    };
    return new OnnxActivations(path, facts, set, calibration, view);
  }

  async detail(id: string, pool: KernelPool, signal: AbortSignal): Promise<SiteDetailReply> {
    const node = this.byId.get(id);
    const act = this.calibration.activations.find((a) => a.name === id);
    if (!node || !act) throw new QuantLensError('USAGE', `no captured activation ${id}`);
    const channels = this.calibration.channelOutliers.find((c) => c.nodeIndex === node.index);
    const weightName = this.facts.weightOfNode.get(node.index);
    let weight: SiteDetailReply['weight'] = null;
    let weightNote: string | null = weightName ? null : `${node.opType} has no constant weight.`;
    if (weightName) {
      let pending = this.weightStats.get(weightName);
      if (!pending) {
        pending = this.weightOf(weightName, pool, signal);
        this.weightStats.set(weightName, pending);
        pending.catch(() => this.weightStats.delete(weightName));
      }
      weight = await pending;
      if (!weight) weightNote = `${weightName} is not a tensor the reader lists.`;
    }
    return {
      id,
      activation: { label: `${node.node} (${node.opType}) → ${id} [${act.dims.join(', ')}]${act.variableShape ? ', shape varies' : ''}`, stats: act.stats },
      weight,
      weightNote,
      channels: channels
        ? { input: channels.input, axis: channels.axis, absMax: channels.absMax, median: channels.medianAbsMax, ratio: OUTLIER_CHANNEL_RATIO, outliers: channels.outliers.map((o) => o.channel) }
        : null,
    };
  }

  private async weightOf(name: string, pool: KernelPool, signal: AbortSignal): Promise<SiteDetailReply['weight']> {
    this.info ??= openModel(this.path, { signal });
    const info = await this.info;
    const tensor = info.tensors.find((t) => t.name === name);
    if (!tensor) return null;
    const [stats] = await computeTensorStats(pool, info, [tensor], { signal });
    return { name, dtype: tensor.dtype, shape: tensor.shape, stats: stats! };
  }

  /**
   * Writes an int8 QDQ model (weights per channel; with `activations`, inputs of the quantized nodes
   * from the calibrated ranges) in a kernel worker; progress in steps (weights, then writing).
   */
  quantize(output: string, choice: QuantizeChoice, pool: KernelPool, signal: AbortSignal, onProgress?: (done: number, total: number) => void): Promise<OnnxQuantizeResult> {
    return quantizeOnnxInPool(pool, this.path, output, {
      type: 'int8-qdq',
      activations: choice.activations,
      calibration: this.calibration,
      rangeMethod: choice.rangeMethod,
      signal,
      onProgress,
    });
  }

  async evaluate(candidate: string, pool: KernelPool, signal: AbortSignal, onProgress: (done: number, total: number) => void): Promise<OnnxEvaluationView> {
    const r = await evaluateOnnx(this.path, candidate, this.set, poolOnnxRunner(pool), { signal, onProgress });
    return {
      candidate: basename(candidate),
      samples: r.samples,
      synthetic: r.synthetic,
      outputs: r.outputs.map((o) => ({ name: o.name, sqnrDb: o.sqnrDb, relMse: o.relMse, top1Agreement: o.top1Agreement, rows: o.rows })),
    };
  }

  outputSensitivity(pool: KernelPool, signal: AbortSignal, onProgress: (done: number, total: number, label: string) => void): Promise<OnnxSensitivityResult> {
    return onnxOutputSensitivity(this.path, this.set, poolOnnxRunner(pool), { signal, onProgress });
  }
}
