/**
 * Edits of an in-memory copy of an ONNX model (never the user's file): every node output added as a
 * graph output for activation capture, the weights of Conv/MatMul/Gemm located (initializers or
 * Constant nodes), weight values replaced.
 */
import { QuantLensError } from '../errors';
import { elementCount, type ModelInfo, type TensorInfo } from '../model';
import { onnxTensor, onnxValueInfo, OnnxDataType, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from '../readers/onnx';
import type { FileAccess } from '../readers/types';
import { readTensorBytes } from '../tensordata';

/** A deep copy (tensor values stay references to the source file's byte ranges). */
export function cloneModel(model: OnnxModel): OnnxModel {
  return structuredClone(model);
}

/** A node's display name: its own, or `<opType>_<index>` as the reader labels unnamed nodes. */
export function nodeLabel(node: OnnxNode, index: number): string {
  return node.name || `${node.opType}_${index}`;
}

export function isDefaultDomain(node: OnnxNode): boolean {
  return node.domain === '' || node.domain === 'ai.onnx';
}

/** A value of the top-level graph produced by a node, in execution order (ONNX graphs are topologically sorted). */
export interface CapturedValue {
  name: string;
  node: string;
  opType: string;
  /** index of the producing node in graph.nodes */
  index: number;
}

/**
 * A copy of `model` whose graph outputs also list every output of every top-level node but
 * Constants (their values are weights, not activations). Values inside If/Loop/Scan bodies cannot
 * be graph outputs of the outer graph in ONNX Runtime; they are not captured.
 */
export function captureModel(model: OnnxModel): { model: OnnxModel; values: CapturedValue[] } {
  const copy = cloneModel(model);
  const graph = copy.graph;
  const existing = new Set(graph.outputs.map((o) => o.name));
  const inputs = new Set(graph.inputs.map((i) => i.name));
  const values: CapturedValue[] = [];
  for (const [index, node] of graph.nodes.entries()) {
    if (node.opType === 'Constant' && isDefaultDomain(node)) continue;
    for (const name of node.outputs) {
      if (!name || inputs.has(name)) continue;
      values.push({ name, node: nodeLabel(node, index), opType: node.opType, index });
      if (!existing.has(name)) {
        graph.outputs.push(onnxValueInfo(name));
        existing.add(name);
      }
    }
  }
  return { model: copy, values };
}

/** Where a constant value of the top-level graph is defined. */
export type ConstantSource = { kind: 'initializer'; tensor: OnnxTensor } | { kind: 'constant'; node: OnnxNode; tensor: OnnxTensor };

/** Top-level initializers and Constant-node `value` tensors by name. */
export function constantSources(graph: OnnxGraph): Map<string, ConstantSource> {
  const out = new Map<string, ConstantSource>();
  for (const t of graph.initializers) out.set(t.name, { kind: 'initializer', tensor: t });
  for (const node of graph.nodes) {
    if (node.opType !== 'Constant' || !isDefaultDomain(node) || !node.outputs[0]) continue;
    const attr = node.attributes.find((a) => a.name === 'value' && a.t);
    if (attr?.t) out.set(node.outputs[0], { kind: 'constant', node, tensor: attr.t });
  }
  return out;
}

/** Ops whose weights QuantLens quantizes, and how they are laid out. */
export const QUANTIZABLE_OPS: ReadonlySet<string> = new Set(['Conv', 'MatMul', 'Gemm']);

/** A weight of a Conv/MatMul/Gemm node. */
export interface WeightRef {
  /** the weight's value name (initializer or Constant output) */
  name: string;
  node: string;
  opType: string;
  nodeIndex: number;
  /** which input of the node */
  inputIndex: number;
  dims: number[];
  /** the output-channel axis of the weight: Conv 0, MatMul 1 (B is [K, N]), Gemm 0 with transB else 1 */
  channelAxis: number;
  source: ConstantSource;
}

function intAttr(node: OnnxNode, name: string, fallback: number): number {
  const a = node.attributes.find((x) => x.name === name);
  return a?.i !== undefined ? Number(a.i) : fallback;
}

/**
 * The FLOAT weights of the top-level graph's Conv (input 1), MatMul (the constant side, input 1, of
 * rank 2) and Gemm (input 1) nodes, in execution order. A weight shared by several nodes is listed
 * once, at its first user.
 */
export function findWeights(model: OnnxModel): WeightRef[] {
  const graph = model.graph;
  const sources = constantSources(graph);
  const seen = new Set<string>();
  const weights: WeightRef[] = [];
  for (const [nodeIndex, node] of graph.nodes.entries()) {
    if (!QUANTIZABLE_OPS.has(node.opType) || !isDefaultDomain(node)) continue;
    const name = node.inputs[1];
    if (!name || seen.has(name)) continue;
    const source = sources.get(name);
    if (!source || source.tensor.dataType !== OnnxDataType.FLOAT) continue;
    const dims = source.tensor.dims;
    let channelAxis: number;
    if (node.opType === 'Conv') {
      if (dims.length < 3) continue;
      channelAxis = 0;
    } else if (node.opType === 'MatMul') {
      if (dims.length !== 2) continue;
      channelAxis = 1;
    } else {
      if (dims.length !== 2) continue;
      channelAxis = intAttr(node, 'transB', 0) ? 0 : 1;
    }
    seen.add(name);
    weights.push({ name, node: nodeLabel(node, nodeIndex), opType: node.opType, nodeIndex, inputIndex: 1, dims: [...dims], channelAxis, source });
  }
  return weights;
}

/** The activation input of a quantizable node and the axis of its channels (for the outlier view). */
export function activationInputOf(node: OnnxNode): { name: string; inputIndex: number; channelAxis: number } | undefined {
  const name = node.inputs[0];
  if (!name) return undefined;
  if (node.opType === 'Conv') return { name, inputIndex: 0, channelAxis: 1 };
  if (node.opType === 'MatMul') return { name, inputIndex: 0, channelAxis: -1 };
  if (node.opType === 'Gemm') return { name, inputIndex: 0, channelAxis: intAttr(node, 'transA', 0) ? 0 : 1 };
  return undefined;
}

/** A weight's values as f32, read through the reader's TensorInfo of the same name. */
export async function readWeightF32(info: ModelInfo, files: FileAccess, weight: WeightRef): Promise<Float32Array> {
  const tensor: TensorInfo | undefined = info.tensors.find((t) => t.name === weight.name);
  if (!tensor || tensor.dtype !== 'F32') {
    throw new QuantLensError('TENSOR_NOT_FOUND', `weight ${weight.name} is not an F32 tensor of the model`, { tensor: weight.name });
  }
  const bytes = await readTensorBytes(info, tensor, files);
  const n = elementCount(tensor.shape);
  const out = new Float32Array(n);
  new Uint8Array(out.buffer).set(bytes.subarray(0, n * 4));
  return out;
}

/** The weight as [rows = output channels, cols = the rest], the layout of the RTN schemes. */
export function weightRows(weight: WeightRef, values: Float32Array): { rows: number; cols: number; data: Float32Array } {
  const dims = weight.dims;
  if (weight.channelAxis === 0) {
    const rows = dims[0]!;
    return { rows, cols: rows === 0 ? 0 : values.length / rows, data: values };
  }
  // [K, N] with channels on axis 1: transpose to [N, K]
  const [k, n] = [dims[0]!, dims[1]!];
  const data = new Float32Array(values.length);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) data[j * k + i] = values[i * n + j]!;
  return { rows: n, cols: k, data };
}

/** Inverse of weightRows: [rows, cols] back to the weight's own layout. */
export function weightFromRows(weight: WeightRef, rowsData: Float32Array): Float32Array {
  if (weight.channelAxis === 0) return rowsData;
  const [k, n] = [weight.dims[0]!, weight.dims[1]!];
  const out = new Float32Array(rowsData.length);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[i * n + j] = rowsData[j * k + i]!;
  return out;
}

/** Replaces the value of `weight` in `model` (a copy found by name) with f32 `values` of the same shape. */
export function replaceWeightValues(model: OnnxModel, weight: WeightRef, values: Float32Array): void {
  const tensor = onnxTensor(weight.name, OnnxDataType.FLOAT, weight.dims, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  const graph = model.graph;
  const i = graph.initializers.findIndex((t) => t.name === weight.name);
  if (i >= 0) {
    graph.initializers[i] = tensor;
    return;
  }
  for (const node of graph.nodes) {
    if (node.opType !== 'Constant' || node.outputs[0] !== weight.name) continue;
    const attr = node.attributes.find((a) => a.name === 'value' && a.t);
    if (attr) {
      tensor.name = attr.t!.name;
      attr.t = tensor;
      return;
    }
  }
  throw new QuantLensError('TENSOR_NOT_FOUND', `weight ${weight.name} is not in the model copy`, { tensor: weight.name });
}
