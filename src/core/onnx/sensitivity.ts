/**
 * Sensitivity mode `outputs` for ONNX models (AIMET QuantAnalyzer's per-layer analysis): one layer's
 * weights at a time are fake-quantized (quantized and dequantized with rtn.ts, written back as f32)
 * in an in-memory copy of the model, optionally with that layer's activation input fake-quantized to
 * UINT8 per tensor over its calibrated min/max; the copy runs on the calibration samples and its
 * outputs are compared with the float model's: output SQNR, relative MSE, top-1 agreement for
 * classifier-like outputs. The result is also a SensitivityResult in mode `outputs` (target
 * safetensors schemes; a weight's rows are its output channels) for the planner.
 */
import { FileByteSource } from '../bytesource';
import { QuantLensError, throwIfAborted } from '../errors';
import { openModel } from '../readers';
import { nodeFileAccess } from '../readers/node-files';
import { encodeOnnxModel, onnxNode, onnxTensor, OnnxDataType, readOnnxModel, type OnnxModel } from '../readers/onnx';
import { aggregateSensitivity, sqnrDbOf } from '../sensitivity/aggregate';
import { formatApplies, quantFormat, type QuantFormat } from '../sensitivity/formats';
import { reconstructWithTwins } from '../sensitivity/quant-error';
import type { FormatErrors, SensitivityResult, TensorSensitivity } from '../sensitivity/types';
import type { OnnxCalibration } from './calibrate';
import { compareOutputs, type OutputComparison } from './evaluate';
import type { OnnxFeed } from './feeds';
import { activationInputOf, cloneModel, findWeights, readWeightF32, replaceWeightValues, weightFromRows, weightRows } from './graph-edit';
import { upgradeToQdqOpset } from './opset';
import { uint8Params } from './quantize';
import { modelBytes, type OnnxRunner } from './runner';
import type { CalibrationSet } from './samples';

export const ONNX_DEFAULT_SENSITIVITY_TYPES: readonly string[] = ['int8-ch-sym', 'int4-g32-sym'];

export interface OnnxFormatSensitivity {
  /** the weight's own error */
  weightRelMse: number;
  weightSqnrDb: number | null;
  weightMaxAbsErr: number;
  /** the model's outputs (all graph outputs together: Σ‖Δ‖² / Σ‖y‖²) */
  outputRelMse: number | null;
  outputSqnrDb: number | null;
  /** share of classifier rows whose argmax is unchanged (null: no classifier-like output) */
  top1Agreement: number | null;
  perOutput: OutputComparison[];
}

export interface OnnxLayerSensitivity {
  weight: string;
  node: string;
  opType: string;
  nodeIndex: number;
  params: number;
  /** per format; null where the format does not apply (row length not a multiple of the group) */
  formats: Record<string, OnnxFormatSensitivity | null>;
}

export interface OnnxSensitivityResult {
  model: string;
  samples: number;
  synthetic: boolean;
  types: string[];
  activations: boolean;
  /** layers in execution order */
  layers: OnnxLayerSensitivity[];
  /** weight names, most sensitive first (lowest output SQNR at the first type) */
  ranking: string[];
  /** the planner's input */
  sweep: SensitivityResult;
}

export interface OnnxSensitivityOptions {
  types?: readonly string[];
  /** also fake-quantize each layer's activation input (UINT8 per tensor over the calibrated min/max); needs `calibration` */
  activations?: boolean;
  calibration?: OnnxCalibration;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number, label: string) => void;
}

function combined(perOutput: readonly OutputComparison[]): { relMse: number | null; top1: number | null } {
  let signal = 0;
  let noise = 0;
  let rows = 0;
  let agree = 0;
  for (const o of perOutput) {
    if (o.relMse === null) continue;
    const s = o.mse * o.count / o.relMse;
    signal += s;
    noise += o.mse * o.count;
    if (o.top1Agreement !== null) {
      rows += o.rows;
      agree += o.top1Agreement * o.rows;
    }
  }
  return { relMse: signal > 0 ? noise / signal : null, top1: rows > 0 ? agree / rows : null };
}

/** Inserts QuantizeLinear → DequantizeLinear (UINT8, per tensor) on the activation input of the weight's node. */
function fakeQuantizeActivation(copy: OnnxModel, nodeOutput: string, calibration: OnnxCalibration): void {
  const index = copy.graph.nodes.findIndex((n) => n.outputs[0] === nodeOutput);
  const node = copy.graph.nodes[index]!;
  const act = activationInputOf(node);
  if (!act) return;
  const stats = calibration.activations.find((a) => a.name === act.name)?.stats;
  if (!stats || stats.min === null || stats.max === null) throw new QuantLensError('USAGE', `no calibration range for ${act.name}`);
  const { scale, zeroPoint } = uint8Params(stats.min, stats.max);
  const s = `${act.name}__ql_scale`;
  const z = `${act.name}__ql_zero_point`;
  copy.graph.initializers.push(
    onnxTensor(s, OnnxDataType.FLOAT, [], new Uint8Array(Float32Array.of(scale).buffer)),
    onnxTensor(z, OnnxDataType.UINT8, [], Uint8Array.of(zeroPoint)),
  );
  const q = `${act.name}__ql_q`;
  const dq = `${act.name}__ql_dq`;
  node.inputs[act.inputIndex] = dq;
  copy.graph.nodes.splice(
    index,
    0,
    onnxNode('QuantizeLinear', [act.name, s, z], [q], { name: `${q}_node` }),
    onnxNode('DequantizeLinear', [q, s, z], [dq], { name: `${dq}_node` }),
  );
}

/** Measures every Conv/MatMul/Gemm weight at every type (see the file comment). */
export async function onnxOutputSensitivity(path: string, set: CalibrationSet, runner: OnnxRunner, options: OnnxSensitivityOptions = {}): Promise<OnnxSensitivityResult> {
  const t0 = Date.now();
  const formats = (options.types ?? ONNX_DEFAULT_SENSITIVITY_TYPES).map((t) => quantFormat(t, 'safetensors'));
  const types = formats.map((f) => f.name);
  if (options.activations && !options.calibration) throw new QuantLensError('USAGE', 'activation fake-quantization needs a calibration');
  const info = await openModel(path, { signal: options.signal });
  const source = await FileByteSource.open(path);
  try {
    const model = await readOnnxModel(source, { signal: options.signal });
    const weights = findWeights(model);
    if (weights.length === 0) throw new QuantLensError('UNSUPPORTED', 'the model has no Conv/MatMul/Gemm weight to measure');
    const baseBytes = await encodeOnnxModel(model, source);
    const base = await runner.run(modelBytes(baseBytes), set.samples, undefined, { signal: options.signal });

    const layers: OnnxLayerSensitivity[] = weights.map((w) => ({
      weight: w.name,
      node: w.node,
      opType: w.opType,
      nodeIndex: w.nodeIndex,
      params: w.dims.reduce((a, b) => a * b, 1),
      formats: {},
    }));
    const jobs: Array<{ layer: number; format: QuantFormat }> = [];
    for (let i = 0; i < weights.length; i++) for (const format of formats) jobs.push({ layer: i, format });
    const values = new Map<string, Float32Array>();
    let done = 0;
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < jobs.length) {
        const { layer, format } = jobs[next++]!;
        const type = format.name;
        throwIfAborted(options.signal);
        const w = weights[layer]!;
        let x = values.get(w.name);
        if (!x) {
          x = await readWeightF32(info, nodeFileAccess, w);
          values.set(w.name, x);
        }
        const { rows, cols, data } = weightRows(w, x);
        if (!formatApplies(format, [rows, cols])) {
          layers[layer]!.formats[type] = null;
        } else {
          const xhat = reconstructWithTwins(data, rows, cols, format, undefined);
          let e2 = 0;
          let s2 = 0;
          let maxAbsErr = 0;
          for (let i = 0; i < data.length; i++) {
            const d = data[i]! - xhat[i]!;
            e2 += d * d;
            s2 += data[i]! * data[i]!;
            maxAbsErr = Math.max(maxAbsErr, Math.abs(d));
          }
          const copy = cloneModel(model);
          replaceWeightValues(copy, w, weightFromRows(w, xhat));
          if (options.activations && options.calibration) {
            upgradeToQdqOpset(copy);
            fakeQuantizeActivation(copy, model.graph.nodes[w.nodeIndex]!.outputs[0]!, options.calibration);
          }
          const outputs: OnnxFeed[][] = await runner.run(modelBytes(await encodeOnnxModel(copy, source)), set.samples, undefined, { signal: options.signal });
          const perOutput = compareOutputs(base, outputs);
          const c = combined(perOutput);
          const weightRelMse = s2 > 0 ? e2 / s2 : 0;
          layers[layer]!.formats[type] = {
            weightRelMse,
            weightMaxAbsErr: maxAbsErr,
            weightSqnrDb: sqnrDbOf(weightRelMse),
            outputRelMse: c.relMse,
            outputSqnrDb: c.relMse === null ? null : sqnrDbOf(c.relMse),
            top1Agreement: c.top1,
            perOutput,
          };
        }
        options.onProgress?.(++done, jobs.length, `${w.node} ${type}`);
      }
    };
    await Promise.all([lane(), lane()]);

    const first = types[0]!;
    const sqnrAt = (l: OnnxLayerSensitivity) => l.formats[first]?.outputSqnrDb ?? Infinity;
    const ranking = [...layers].sort((a, b) => sqnrAt(a) - sqnrAt(b)).map((l) => l.weight);

    const tensors: TensorSensitivity[] = layers.map((l, i) => {
      const w = weights[i]!;
      const rows = w.dims[w.channelAxis]!;
      const errors: FormatErrors = {};
      for (const type of types) {
        const f = l.formats[type];
        errors[type] = f
          ? { relMse: f.weightRelMse, sqnrDb: f.weightSqnrDb, maxAbsErr: f.weightMaxAbsErr, relMseBound: 0, outputRelMse: f.outputRelMse ?? 0 }
          : null;
      }
      return {
        name: l.weight,
        params: l.params,
        layer: i,
        role: 'other',
        shape: [rows, l.params / rows],
        dtype: 'F32',
        keptBytes: l.params * 4,
        quantizable: Object.values(errors).some((e) => e !== null),
        sampledRows: rows,
        rows,
        errors,
      };
    });
    const sweep: SensitivityResult = {
      mode: 'outputs',
      target: 'safetensors',
      types,
      settings: { target: 'safetensors', types, mode: 'outputs', sampleElements: null, seed: 0, imatrix: null },
      tensors,
      ...aggregateSensitivity(tensors, types),
      imatrixMissing: [],
      seconds: (Date.now() - t0) / 1000,
    };
    return { model: path, samples: set.samples.length, synthetic: set.synthetic, types, activations: options.activations ?? false, layers, ranking, sweep };
  } finally {
    await source.close();
  }
}
