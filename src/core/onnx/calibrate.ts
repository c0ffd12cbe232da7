/**
 * Calibration of an ONNX model: every activation of the top-level graph captured by running a copy
 * of the model whose graph outputs list every node output (the user's file is never changed), over
 * the calibration samples, in two passes (activation-stats.ts). The result is what the views show:
 * per-activation statistics and histograms, the channel profile of each Conv/MatMul/Gemm input with
 * its outlier channels, and a strip of the nodes in execution order.
 */
import { FileByteSource } from '../bytesource';
import { throwIfAborted } from '../errors';
import { readOnnxModel, encodeOnnxModel, type OnnxModel } from '../readers/onnx';
import { DEFAULT_HISTOGRAM_BINS, type Histogram, type TensorStats } from '../stats/stats';
import {
  finishActivationStats, momentParams, momentsActivation, newMomentAccumulator, newScanAccumulator, scanActivation, type MomentAccumulator, type MomentParams, type ScanAccumulator,
} from './activation-stats';
import type { Sample } from './feeds';
import { activationInputOf, captureModel, findWeights, isDefaultDomain, nodeLabel, QUANTIZABLE_OPS } from './graph-edit';
import { modelBytes, type OnnxRunner } from './runner';
import type { CalibrationSet } from './samples';

/** Bins of the finer histogram kept for range calibration of quantized-op inputs (percentile, MSE). */
export const RANGE_HISTOGRAM_BINS = 2048;
/** A channel whose absmax exceeds this many times the median channel's is an outlier channel. */
export const OUTLIER_CHANNEL_RATIO = 6;

export interface ActivationSummary {
  /** the value's name in the graph */
  name: string;
  /** producing node (graph inputs: '(input)', index −1) */
  node: string;
  opType: string;
  index: number;
  /** the first sample's dims; variableShape when samples differ */
  dims: number[];
  variableShape: boolean;
  stats: TensorStats;
  /** for inputs of Conv/MatMul/Gemm: a RANGE_HISTOGRAM_BINS histogram over [min, max], for range calibration */
  rangeHistogram?: Histogram;
}

export interface OutlierChannel {
  channel: number;
  absMax: number;
  /** absMax / the median channel's absmax */
  ratio: number;
}

/** The channel profile of one Conv/MatMul/Gemm activation input. */
export interface ChannelOutlierView {
  node: string;
  opType: string;
  nodeIndex: number;
  /** the activation's name */
  input: string;
  /** the channel axis in the activation (Conv: 1, MatMul: last, Gemm: 1 or 0 with transA) */
  axis: number;
  absMax: number[];
  medianAbsMax: number;
  /** channels above OUTLIER_CHANNEL_RATIO × median, largest first */
  outliers: OutlierChannel[];
}

/** One node of the strip, in execution order. */
export interface LayerStripEntry {
  index: number;
  node: string;
  opType: string;
  /** the node's first float output that was captured */
  output: string | null;
  absMax: number | null;
  std: number | null;
  kurtosis: number | null;
  outlierShare: number | null;
  /** Conv/MatMul/Gemm with a constant weight */
  hasWeights: boolean;
}

export interface OnnxCalibration {
  model: string;
  samples: number;
  sources: CalibrationSet['sources'];
  synthetic: boolean;
  filledInputs: string[];
  bins: number;
  activations: ActivationSummary[];
  channelOutliers: ChannelOutlierView[];
  layers: LayerStripEntry[];
  /** captured values with no statistics, and why (non-float outputs) */
  skipped: Array<{ name: string; reason: string }>;
  /** nodes with subgraphs (If/Loop/Scan): their inner values are not captured */
  subgraphNodes: string[];
}

export interface CalibrateOptions {
  bins?: number;
  signal?: AbortSignal;
  onProgress?: (stage: 'scan' | 'moments', done: number, total: number) => void;
}

/** Statistics of the graph inputs themselves, computed here from the samples. */
function inputStats(samples: readonly Sample[], names: readonly string[], channelAxes: Record<string, number>): Record<string, ScanAccumulator> {
  const scans: Record<string, ScanAccumulator> = {};
  for (const name of names) scans[name] = newScanAccumulator();
  for (const sample of samples) {
    for (const f of sample) {
      if (scans[f.name] && f.data instanceof Float32Array) scanActivation(scans[f.name]!, f.data, f.dims, channelAxes[f.name]);
    }
  }
  return scans;
}

function inputMoments(samples: readonly Sample[], params: Record<string, MomentParams>): Record<string, MomentAccumulator> {
  const out: Record<string, MomentAccumulator> = {};
  const start: Record<string, number> = {};
  for (const [name, p] of Object.entries(params)) {
    out[name] = newMomentAccumulator(p);
    start[name] = 0;
  }
  for (const sample of samples) {
    for (const f of sample) {
      const p = params[f.name];
      if (!p || !(f.data instanceof Float32Array)) continue;
      momentsActivation(out[f.name]!, p, f.data, start[f.name]!);
      start[f.name]! += f.data.length;
    }
  }
  return out;
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Calibrates the model at `path` over `set` (see the file comment). */
export async function calibrateOnnx(path: string, set: CalibrationSet, runner: OnnxRunner, options: CalibrateOptions = {}): Promise<OnnxCalibration> {
  const bins = options.bins ?? DEFAULT_HISTOGRAM_BINS;
  const source = await FileByteSource.open(path);
  let model: OnnxModel;
  let bytes: Uint8Array;
  let values: ReturnType<typeof captureModel>['values'];
  try {
    model = await readOnnxModel(source, { signal: options.signal });
    const captured = captureModel(model);
    values = captured.values;
    bytes = await encodeOnnxModel(captured.model, source);
  } finally {
    await source.close();
  }
  throwIfAborted(options.signal);
  const graph = model.graph;
  const weights = new Set(findWeights(model).map((w) => w.name));
  const constants = new Set([...graph.initializers.map((t) => t.name), ...weights]);
  const inputNames = set.samples[0]?.filter((f) => f.type === 'float32').map((f) => f.name) ?? [];

  // channel axes of the activation inputs of Conv/MatMul/Gemm
  const channelAxes: Record<string, number> = {};
  const quantInputs: Array<{ node: string; opType: string; nodeIndex: number; input: string; axis: number }> = [];
  for (const [i, node] of graph.nodes.entries()) {
    if (!QUANTIZABLE_OPS.has(node.opType) || !isDefaultDomain(node)) continue;
    const act = activationInputOf(node);
    if (!act || constants.has(act.name)) continue;
    channelAxes[act.name] ??= act.channelAxis;
    quantInputs.push({ node: nodeLabel(node, i), opType: node.opType, nodeIndex: i, input: act.name, axis: act.channelAxis });
  }

  const outputs = values.map((v) => v.name);
  const ref = modelBytes(bytes);
  const scanned = await runner.scan(ref, set.samples, outputs, channelAxes, {
    signal: options.signal,
    onProgress: (d, t) => options.onProgress?.('scan', d, t),
  });
  const inScans = inputStats(set.samples, inputNames, channelAxes);
  const scans: Record<string, ScanAccumulator> = { ...scanned.scans, ...inScans };

  const params: Record<string, MomentParams> = {};
  const perSample: Record<string, number> = {};
  for (const [name, acc] of Object.entries(scans)) {
    const p = momentParams(acc, bins, channelAxes[name] !== undefined ? RANGE_HISTOGRAM_BINS : 0);
    if (!p) continue;
    params[name] = p;
    if (!acc.variableShape) perSample[name] = acc.dims.reduce((a, b) => a * b, 1);
  }
  const graphParams: Record<string, MomentParams> = {};
  const localParams: Record<string, MomentParams> = {};
  for (const [name, p] of Object.entries(params)) (inScans[name] ? localParams : graphParams)[name] = p;
  const moments = await runner.moments(ref, set.samples, graphParams, perSample, {
    signal: options.signal,
    onProgress: (d, t) => options.onProgress?.('moments', d, t),
  });
  Object.assign(moments, inputMoments(set.samples, localParams));

  const producer = new Map(values.map((v) => [v.name, v]));
  const activations: ActivationSummary[] = [];
  const summaryOf = (name: string): ActivationSummary | undefined => {
    const acc = scans[name];
    if (!acc) return undefined;
    const v = producer.get(name);
    const m = moments[name];
    const p = params[name];
    const summary: ActivationSummary = {
      name,
      node: v?.node ?? '(input)',
      opType: v?.opType ?? 'Input',
      index: v?.index ?? -1,
      dims: acc.dims,
      variableShape: acc.variableShape,
      stats: finishActivationStats(acc, p, m, bins),
    };
    if (m?.rangeCounts && p) summary.rangeHistogram = { min: p.lo, max: p.hi, counts: Array.from(m.rangeCounts) };
    return summary;
  };
  for (const name of [...inputNames, ...outputs]) {
    const s = summaryOf(name);
    if (s) activations.push(s);
  }

  const channelOutliers: ChannelOutlierView[] = [];
  for (const q of quantInputs) {
    const acc = scans[q.input];
    if (!acc?.channelAbsMax) continue;
    const absMax = Array.from(acc.channelAbsMax);
    const med = median(absMax);
    const outliers = absMax
      .map((a, channel) => ({ channel, absMax: a, ratio: med > 0 ? a / med : a > 0 ? Infinity : 0 }))
      .filter((o) => o.ratio > OUTLIER_CHANNEL_RATIO)
      .sort((a, b) => b.ratio - a.ratio);
    channelOutliers.push({ node: q.node, opType: q.opType, nodeIndex: q.nodeIndex, input: q.input, axis: acc.channelAxis ?? q.axis, absMax, medianAbsMax: med, outliers });
  }

  const byName = new Map(activations.map((a) => [a.name, a]));
  const layers: LayerStripEntry[] = [];
  const subgraphNodes: string[] = [];
  for (const [index, node] of graph.nodes.entries()) {
    if (node.opType === 'Constant' && isDefaultDomain(node)) continue;
    const label = nodeLabel(node, index);
    if (node.attributes.some((a) => a.g || a.graphs?.length)) subgraphNodes.push(label);
    const out = node.outputs.map((o) => byName.get(o)).find((a) => a !== undefined);
    layers.push({
      index,
      node: label,
      opType: node.opType,
      output: out?.name ?? null,
      absMax: out?.stats.absMax ?? null,
      std: out?.stats.std ?? null,
      kurtosis: out?.stats.kurtosis ?? null,
      outlierShare: out?.stats.outlierShare ?? null,
      hasWeights: QUANTIZABLE_OPS.has(node.opType) && node.inputs[1] !== undefined && constants.has(node.inputs[1]),
    });
  }

  return {
    model: path,
    samples: set.samples.length,
    sources: set.sources,
    synthetic: set.synthetic,
    filledInputs: set.filledInputs,
    bins,
    activations,
    channelOutliers,
    layers,
    skipped: Object.entries(scanned.skipped).map(([name, type]) => ({ name, reason: `${type} values` })),
    subgraphNodes,
  };
}
