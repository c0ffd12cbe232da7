/**
 * Quantized ONNX models that ONNX Runtime runs:
 * - `int8-qdq`: every Conv/MatMul/Gemm weight (initializer or Constant node) stored as INT8 with one
 *   scale per output channel (symmetric, zero-point 0: rtn.ts `int8-ch-sym`; or `int8-ch-asym` with
 *   a zero-point per channel) behind a
 *   DequantizeLinear (axis = the output-channel axis); with `activations`, each such node's
 *   activation input also passes QuantizeLinear → DequantizeLinear (UINT8, asymmetric, per tensor)
 *   with a range from calibration: min/max, a percentile, or the range of least expected squared
 *   error on the calibration histogram. Needs opset 13 (per-channel `axis`): older models are
 *   upgraded (opset.ts).
 * - `int4-matmulnbits`: MatMul nodes with a constant [K, N] weight become com.microsoft MatMulNBits
 *   (4 bits, blocks of `blockSize` along K, one f32 scale per block, symmetric: zero-point 8, the
 *   operator's default; or asymmetric with packed 4-bit zero-points): ONNX Runtime's weight-only
 *   4-bit format. Block b of column n holds B[b·bs … b·bs + bs − 1, n]; value 2j in the low nibble
 *   of byte j, 2j + 1 in the high nibble; B is [N][blocks][bs / 2] bytes (onnxruntime
 *   contrib_ops/cpu/quantization/matmul_nbits.cc and its op doc, ContribOperators.md).
 * Weights a plan keeps in float stay as they are. The input file is never modified; the output is
 * written to a temporary file and renamed when complete.
 */
import { AtomicOutput } from '../atomic-output';
import { FileByteSource } from '../bytesource';
import { QuantLensError, throwIfAborted } from '../errors';
import { openModel } from '../readers';
import { nodeFileAccess } from '../readers/node-files';
import {
  onnxAttribute, onnxModelBuilder, onnxNode, onnxTensor, OnnxDataType, readOnnxModel, type OnnxModel, type OnnxNode, type OnnxTensor,
} from '../readers/onnx';
import { stat } from 'node:fs/promises';
import { writeMessage, type ByteSink } from '../protobuf/encoder';
import { quantizeRtn } from '../quant/rtn';
import { parseScheme } from '../quant/scheme';
import type { Histogram } from '../stats/stats';
import type { OnnxCalibration } from './calibrate';
import { activationInputOf, constantSources, findWeights, isDefaultDomain, nodeLabel, readWeightF32, weightRows, type WeightRef } from './graph-edit';
import { defaultOpset, upgradeToQdqOpset } from './opset';

export type OnnxQuantType = 'int8-qdq' | 'int4-matmulnbits';
export const ONNX_QUANT_TYPES: readonly OnnxQuantType[] = ['int8-qdq', 'int4-matmulnbits'];

export type RangeMethod = 'minmax' | 'percentile' | 'mse';

export interface OnnxQuantizeOptions {
  type: OnnxQuantType;
  /** int8-qdq: also quantize the activation inputs of the quantized nodes (W8A8); needs `calibration` */
  activations?: boolean;
  calibration?: OnnxCalibration;
  rangeMethod?: RangeMethod;
  /** percentile of the two tails kept (default 99.99) */
  percentile?: number;
  /** weights (by value name) left in float, e.g. from a plan */
  keepFloat?: ReadonlySet<string>;
  /** int4-matmulnbits: values per block along K (a power of two ≥ 16; default 32) */
  blockSize?: number;
  /** asymmetric weights with zero-points: per channel (int8-qdq) or per block (int4-matmulnbits); default symmetric, as ONNX Runtime's quantizer */
  asymmetric?: boolean;
  signal?: AbortSignal;
  /** steps done / total: one per weight, one for writing the model */
  onProgress?: (done: number, total: number) => void;
}

export interface QuantizedWeight {
  name: string;
  node: string;
  opType: string;
  format: string;
}

export interface ActivationRange {
  name: string;
  min: number;
  max: number;
  scale: number;
  zeroPoint: number;
}

export interface OnnxQuantizeResult {
  input: string;
  output: string;
  type: OnnxQuantType;
  opsetFrom: number;
  opsetTo: number;
  quantized: QuantizedWeight[];
  keptFloat: string[];
  activationRanges: ActivationRange[];
  rangeMethod: RangeMethod | null;
  bytes: number;
}

// ---------------------------------------------------------------------------------------------
// Activation ranges

/** Range [lo, hi] of a histogram holding `tail` of the mass outside it on each side. */
function percentileRange(h: Histogram, percentile: number): [number, number] {
  const total = h.counts.reduce((a, b) => a + b, 0);
  const lo0 = h.min!;
  const width = (h.max! - lo0) / h.counts.length;
  const tail = (total * (100 - percentile)) / 100;
  let acc = 0;
  let lo = lo0;
  for (let i = 0; i < h.counts.length; i++) {
    acc += h.counts[i]!;
    if (acc > tail) {
      lo = lo0 + i * width;
      break;
    }
  }
  acc = 0;
  let hi = h.max!;
  for (let i = h.counts.length - 1; i >= 0; i--) {
    acc += h.counts[i]!;
    if (acc > tail) {
      hi = lo0 + (i + 1) * width;
      break;
    }
  }
  return [lo, hi];
}

/** UINT8 asymmetric parameters of a range (always containing 0, as ONNX Runtime's). */
export function uint8Params(lo: number, hi: number): { scale: number; zeroPoint: number } {
  const l = Math.min(lo, 0);
  const h = Math.max(hi, 0);
  const scale = Math.fround(h > l ? (h - l) / 255 : 1);
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-l / scale)));
  return { scale, zeroPoint };
}

/** Expected squared error of UINT8 fake-quantization with `range` over the histogram's bin centres (plus the in-range rounding noise s²/12). */
function histogramMse(h: Histogram, lo: number, hi: number): number {
  const { scale, zeroPoint } = uint8Params(lo, hi);
  const width = (h.max! - h.min!) / h.counts.length;
  let err = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const c = h.counts[i]!;
    if (c === 0) continue;
    const x = h.min! + (i + 0.5) * width;
    const q = Math.min(255, Math.max(0, Math.round(x / scale) + zeroPoint));
    const d = x - (q - zeroPoint) * scale;
    err += c * (d * d + (q > 0 && q < 255 ? (scale * scale) / 12 : 0));
  }
  return err;
}

const MSE_PERCENTILES = [100, 99.9999, 99.999, 99.99, 99.9, 99.5, 99, 98];
const MSE_RATIOS = Array.from({ length: 20 }, (_, k) => 1 - (0.5 * k) / 19);

/** The calibrated range of one activation by `method`. */
export function activationRange(h: Histogram, method: RangeMethod, percentile: number): [number, number] {
  if (h.min === null || h.max === null) return [0, 0];
  if (method === 'minmax') return [h.min, h.max];
  if (method === 'percentile') return percentileRange(h, percentile);
  let best: [number, number] = [h.min, h.max];
  let bestErr = histogramMse(h, h.min, h.max);
  const candidates: Array<[number, number]> = [
    ...MSE_PERCENTILES.map((p) => percentileRange(h, p)),
    ...MSE_RATIOS.map((r): [number, number] => [h.min! * r, h.max! * r]),
  ];
  for (const [lo, hi] of candidates) {
    const e = histogramMse(h, lo, hi);
    if (e < bestErr) {
      bestErr = e;
      best = [lo, hi];
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// Graph rewriting

function rawOf(a: Float32Array | Int8Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Removes a weight's definition (initializer, graph input entry, or Constant node) from the top-level graph. */
function removeDefinition(model: OnnxModel, weight: WeightRef): void {
  const g = model.graph;
  g.initializers = g.initializers.filter((t) => t.name !== weight.name);
  g.inputs = g.inputs.filter((v) => v.name !== weight.name);
  g.nodes = g.nodes.filter((n) => !(n.opType === 'Constant' && isDefaultDomain(n) && n.outputs[0] === weight.name));
}

/** int8 values of `rows` transposed back to the weight's layout (channels on axis 1 for MatMul/Gemm without transB). */
function levelsInWeightLayout(weight: WeightRef, q: Int8Array): Int8Array {
  if (weight.channelAxis === 0) return q;
  const [k, n] = [weight.dims[0]!, weight.dims[1]!];
  const out = new Int8Array(q.length);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[i * n + j] = q[j * k + i]!;
  return out;
}

interface Rewrite {
  /** nodes placed at the start of the graph (DequantizeLinear of weights: their inputs are initializers) */
  prologue: OnnxNode[];
  initializers: OnnxTensor[];
  /** node index → replacement nodes */
  replace: Map<number, OnnxNode[]>;
}

function int8QdqWeight(weight: WeightRef, values: Float32Array, scheme: string, rw: Rewrite): void {
  const { rows, cols, data } = weightRows(weight, values);
  const t = quantizeRtn(data, rows, cols, parseScheme(scheme));
  const base = weight.name;
  const qName = `${base}_quantized`;
  const sName = `${base}_scale`;
  const zName = `${base}_zero_point`;
  rw.initializers.push(
    onnxTensor(qName, OnnxDataType.INT8, weight.dims, rawOf(levelsInWeightLayout(weight, t.q as Int8Array))),
    onnxTensor(sName, OnnxDataType.FLOAT, [rows], rawOf(t.scales)),
    onnxTensor(zName, OnnxDataType.INT8, [rows], t.zeroPoints ? rawOf(t.zeroPoints) : new Uint8Array(rows)),
  );
  rw.prologue.push(
    onnxNode('DequantizeLinear', [qName, sName, zName], [base], { name: `${base}_DequantizeLinear`, attributes: [onnxAttribute.int('axis', weight.channelAxis)] }),
  );
}

const DEFAULT_NBITS_BLOCK = 32;

function matMulNBits(weight: WeightRef, node: OnnxNode, values: Float32Array, blockSize: number, asymmetric: boolean, rw: Rewrite): void {
  const { rows: n, cols: k, data } = weightRows(weight, values); // [N, K]
  const blocks = Math.ceil(k / blockSize);
  const t = quantizeRtn(data, n, k, parseScheme(`int4-g${blockSize}-${asymmetric ? 'asym' : 'sym'}`));
  const q = t.q as Int8Array;
  const packed = new Uint8Array(n * blocks * (blockSize / 2));
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < blocks; b++) {
      const zero = t.zeroPoints ? t.zeroPoints[r * blocks + b]! : 0;
      for (let j = 0; j < blockSize; j++) {
        const col = b * blockSize + j;
        // stored level = signed level + 8; padding past K stores the zero-point (dequantizes to 0)
        const u = (col < k ? q[r * k + col]! : zero) + 8;
        const at = (r * blocks + b) * (blockSize / 2) + (j >> 1);
        packed[at] = packed[at]! | ((u & 15) << ((j & 1) * 4));
      }
    }
  }
  const base = weight.name;
  const inputs = [node.inputs[0]!, `${base}_Q4`, `${base}_scales`];
  rw.initializers.push(onnxTensor(`${base}_Q4`, OnnxDataType.UINT8, [n, blocks, blockSize / 2], packed));
  rw.initializers.push(onnxTensor(`${base}_scales`, OnnxDataType.FLOAT, [n * blocks], rawOf(t.scales)));
  if (t.zeroPoints) {
    const zp = new Uint8Array(n * Math.ceil(blocks / 2));
    for (let r = 0; r < n; r++) {
      for (let b = 0; b < blocks; b++) {
        const at = r * Math.ceil(blocks / 2) + (b >> 1);
        zp[at] = zp[at]! | (((t.zeroPoints[r * blocks + b]! + 8) & 15) << ((b & 1) * 4));
      }
    }
    rw.initializers.push(onnxTensor(`${base}_zero_points`, OnnxDataType.UINT8, [zp.length], zp));
    inputs.push(`${base}_zero_points`);
  }
  const replacement = onnxNode('MatMulNBits', inputs, [...node.outputs], {
    name: `${node.name || base}_Q4`,
    domain: 'com.microsoft',
    attributes: [
      onnxAttribute.int('K', k),
      onnxAttribute.int('N', n),
      onnxAttribute.int('bits', 4),
      onnxAttribute.int('block_size', blockSize),
    ],
  });
  rw.replace.set(weight.nodeIndex, [replacement]);
}

/** Quantizes the model at `input` into a new file at `output` (see the file comment). */
export async function quantizeOnnx(input: string, output: string, options: OnnxQuantizeOptions): Promise<OnnxQuantizeResult> {
  checkQuantizeOptions(options);
  let size: number;
  try {
    size = (await stat(input)).size;
  } catch (err) {
    throw new QuantLensError('IO', `cannot read ${input}: ${(err as Error).message}`, { file: input, cause: err });
  }
  const out = await AtomicOutput.create(output, size);
  try {
    const result = await writeQuantizedOnnx(input, out, options);
    await out.commit();
    return { ...result, output };
  } catch (err) {
    await out.discard();
    throw err;
  }
}

function checkQuantizeOptions(options: OnnxQuantizeOptions): void {
  const blockSize = options.blockSize ?? DEFAULT_NBITS_BLOCK;
  if (options.type === 'int4-matmulnbits' && (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0)) {
    throw new QuantLensError('USAGE', `MatMulNBits block size must be a power of two ≥ 16, got ${blockSize}`);
  }
  if (options.activations && options.type !== 'int8-qdq') throw new QuantLensError('USAGE', 'activation quantization goes with --type int8-qdq');
  if (options.activations && !options.calibration) throw new QuantLensError('USAGE', 'activation quantization needs calibration inputs (--inputs)');
}

/**
 * The quantized model written into `sink`, which its caller creates and commits or discards (a
 * kernel worker writes into a temporary file its host owns: src/kernel/onnx-quantize-job.ts).
 */
export async function writeQuantizedOnnx(input: string, sink: ByteSink, options: OnnxQuantizeOptions): Promise<Omit<OnnxQuantizeResult, 'output'>> {
  checkQuantizeOptions(options);
  const blockSize = options.blockSize ?? DEFAULT_NBITS_BLOCK;
  const info = await openModel(input, { signal: options.signal });
  const source = await FileByteSource.open(input);
  try {
    const model = await readOnnxModel(source, { signal: options.signal });
    const opsetFrom = defaultOpset(model);
    const keep = options.keepFloat ?? new Set<string>();
    const all = findWeights(model);
    const weights = all.filter((w) => !keep.has(w.name) && (options.type === 'int8-qdq' || (w.opType === 'MatMul' && w.dims.length === 2)));
    const keptFloat = all.filter((w) => !weights.includes(w)).map((w) => w.name);
    if (weights.length === 0) {
      throw new QuantLensError('UNSUPPORTED', options.type === 'int4-matmulnbits' ? 'the model has no MatMul with a constant 2-D weight to quantize' : 'the model has no Conv/MatMul/Gemm weight to quantize');
    }
    const rw: Rewrite = { prologue: [], initializers: [], replace: new Map() };
    const quantized: QuantizedWeight[] = [];
    const steps = weights.length + 1;
    options.onProgress?.(0, steps);
    for (const w of weights) {
      throwIfAborted(options.signal);
      const values = await readWeightF32(info, nodeFileAccess, w);
      if (options.type === 'int8-qdq') {
        const scheme = options.asymmetric ? 'int8-ch-asym' : 'int8-ch-sym';
        int8QdqWeight(w, values, scheme, rw);
        quantized.push({ name: w.name, node: w.node, opType: w.opType, format: scheme });
      } else {
        matMulNBits(w, model.graph.nodes[w.nodeIndex]!, values, blockSize, options.asymmetric ?? false, rw);
        quantized.push({ name: w.name, node: w.node, opType: w.opType, format: `int4-g${blockSize}-${options.asymmetric ? 'asym' : 'sym'}` });
      }
      options.onProgress?.(quantized.length, steps);
    }

    const activationRanges: ActivationRange[] = [];
    const rangeMethod = options.activations ? (options.rangeMethod ?? 'minmax') : null;
    if (options.activations && options.calibration && rangeMethod) {
      const histograms = new Map(options.calibration.activations.filter((a) => a.rangeHistogram).map((a) => [a.name, a.rangeHistogram!]));
      const constants = constantSources(model.graph);
      const quantizedNodes = new Set(weights.map((w) => w.nodeIndex));
      const qdqOf = new Map<string, string>();
      for (const [index, node] of model.graph.nodes.entries()) {
        if (!quantizedNodes.has(index)) continue;
        const act = activationInputOf(node);
        if (!act || constants.has(act.name)) continue;
        let dq = qdqOf.get(act.name);
        if (!dq) {
          const h = histograms.get(act.name);
          if (!h) throw new QuantLensError('USAGE', `no calibration histogram for ${act.name}, the input of ${nodeLabel(node, index)}`);
          const [lo, hi] = activationRange(h, rangeMethod, options.percentile ?? 99.99);
          const { scale, zeroPoint } = uint8Params(lo, hi);
          activationRanges.push({ name: act.name, min: lo, max: hi, scale, zeroPoint });
          const s = `${act.name}_act_scale`;
          const z = `${act.name}_act_zero_point`;
          const q = `${act.name}_QuantizeLinear`;
          dq = `${act.name}_DequantizeLinear`;
          rw.initializers.push(onnxTensor(s, OnnxDataType.FLOAT, [], rawOf(Float32Array.of(scale))), onnxTensor(z, OnnxDataType.UINT8, [], Uint8Array.of(zeroPoint)));
          const pair = [
            onnxNode('QuantizeLinear', [act.name, s, z], [q], { name: `${q}_node` }),
            onnxNode('DequantizeLinear', [q, s, z], [dq], { name: `${dq}_node` }),
          ];
          // the pair goes right before its first consumer: the activation is computed by then
          rw.replace.set(index, [...pair, ...(rw.replace.get(index) ?? [node])]);
          qdqOf.set(act.name, dq);
        }
        const current = rw.replace.get(index) ?? [node];
        const consumer = current[current.length - 1]!;
        consumer.inputs = consumer.inputs.map((name, i) => (i === act.inputIndex ? dq! : name));
        if (!rw.replace.has(index)) rw.replace.set(index, current);
      }
    }

    // The rewritten copy: replacements in place (indices of the graph as read), DequantizeLinear of
    // weights first, then the weights' float definitions removed where nothing uses them any more.
    const originalIndex = new Map(model.graph.nodes.map((n, i) => [n, i]));
    model.graph.nodes = [...rw.prologue, ...model.graph.nodes.flatMap((n) => rw.replace.get(originalIndex.get(n)!) ?? [n])];
    for (const w of weights) {
      const stillUsed = model.graph.nodes.some((n) => n.inputs.includes(w.name) && !(n.opType === 'DequantizeLinear' && n.outputs[0] === w.name));
      if (options.type === 'int8-qdq' || !stillUsed) removeDefinition(model, w);
    }
    if (options.type === 'int4-matmulnbits' && !model.opsetImports.some((o) => o.domain === 'com.microsoft')) {
      model.opsetImports.push({ domain: 'com.microsoft', version: 1n });
    }
    model.graph.initializers.push(...rw.initializers);
    if (options.type === 'int8-qdq') upgradeToQdqOpset(model);
    throwIfAborted(options.signal);

    const bytes = await writeMessage(onnxModelBuilder(model, source), sink, { signal: options.signal });
    options.onProgress?.(steps, steps);
    return {
      input,
      type: options.type,
      opsetFrom,
      opsetTo: defaultOpset(model),
      quantized,
      keptFloat,
      activationRanges,
      rangeMethod,
      bytes,
    };
  } finally {
    await source.close();
  }
}
