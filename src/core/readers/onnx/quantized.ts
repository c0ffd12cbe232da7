/**
 * Quantized ONNX weights read back as one logical tensor each, as readers/quantized-layouts.ts does
 * for safetensors: the parts become one TensorInfo with the original weight's name and shape, a
 * layout dtype, encoding `quantized` and the parts in `quantized.parts` (dequantized by
 * quantized-layouts.ts `dequantizeLogicalRows`). Two forms:
 * - QDQ: DequantizeLinear(x, x_scale, x_zero_point?) with a constant x (initializer or Constant node)
 *   of int8/uint8/int16/uint16/int32 and a constant scale; one scale per tensor, or a 1-D scale per
 *   index of `axis` (default 1, negative counts from the end). y = (x − zero_point) · scale, named
 *   as the node's output (the weight its consumers read). Blocked quantization (opset 21
 *   `block_size`) and 4-bit/float8 x are left as stored.
 * - com.microsoft MatMulNBits(A, B, scales, zero_points?): the constant [K, N] MatMul weight; B
 *   uint8 [N, ⌈K / block_size⌉, block_size · bits / 8], values of a block packed low bits first;
 *   scales [N · blocks] (or [N, blocks]); zero_points packed the same way per row of N
 *   ([N · ⌈blocks · bits / 8⌉]) or unpacked floats [N · blocks]; absent: 2^(bits − 1).
 *   x = (q − zero_point) · scale (ONNX Runtime's contrib op doc, ContribOperators.md). Named as B
 *   without its `_Q<bits>` suffix (onnxruntime's MatMulNBitsQuantizer and quantizeOnnx name B so).
 * A form whose parts do not fit together, or whose parts another logical tensor already took, stays
 * as separate tensors with a warning.
 */
import { DTYPES, type DType } from '../../dtypes';
import { elementCount, type Diagnostic, type QuantizedLayout, type QuantizedPart, type TensorInfo } from '../../model';
import type { OnnxGraph, OnnxNode } from './graph';

/** The tensors a graph defines (initializers, Constant outputs) by their name in that graph. */
export type GraphTensors = Map<OnnxGraph, Map<string, TensorInfo>>;

const QDQ_VALUE_BITS: Partial<Record<DType, number>> = { I8: 8, U8: 8, I16: 16, U16: 16, I32: 32 };
const FLOAT_PARTS: ReadonlySet<DType> = new Set(['F32', 'F16', 'BF16']);

class NotQuantized extends Error {}

function fail(message: string): never {
  throw new NotQuantized(message);
}

function intAttr(node: OnnxNode, name: string): number | undefined {
  const a = node.attributes.find((x) => x.name === name);
  if (a?.i === undefined) return undefined;
  if (a.i < BigInt(Number.MIN_SAFE_INTEGER) || a.i > BigInt(Number.MAX_SAFE_INTEGER)) fail(`attribute ${name} = ${a.i} is out of range`);
  return Number(a.i);
}

/** Bytes a part adds to the model, counted as summary.ts counts a stored tensor (protobuf fields at their values' size). */
function storedBytes(t: TensorInfo): number {
  if (t.encoding === 'onnx-typed-field' || t.encoding === 'onnx-attribute') return elementCount(t.shape) * DTYPES[t.dtype].bytesPerBlock;
  return t.byteLength;
}

interface Candidate {
  name: string;
  shape: number[];
  dtype: DType;
  layout: QuantizedLayout;
  node: string;
}

function qdq(node: OnnxNode, part: (name: string | undefined) => TensorInfo | undefined): Candidate | undefined {
  const x = part(node.inputs[0]);
  if (!x) return undefined; // an activation's QuantizeLinear → DequantizeLinear pair
  const bits = QDQ_VALUE_BITS[x.dtype];
  if (bits === undefined) fail(`x is ${x.dtype}, not int8/uint8/int16/uint16/int32`);
  const scale = part(node.inputs[1]);
  if (!scale || !FLOAT_PARTS.has(scale.dtype)) fail('x_scale is not a constant float tensor');
  if (intAttr(node, 'block_size')) fail('blocked quantization (block_size) is not read');
  const zero = node.inputs[2] ? part(node.inputs[2]) : undefined;
  if (node.inputs[2] && !zero) fail('x_zero_point is not a constant');
  const n = elementCount(x.shape);
  const scales = elementCount(scale.shape);
  let axis: number | undefined;
  let groupSize = n;
  if (scales !== 1) {
    // per axis: a 1-D scale as long as x's `axis` dimension
    const rank = x.shape.length;
    const given = intAttr(node, 'axis') ?? 1;
    const a = given < 0 ? given + rank : given;
    if (scale.shape.length !== 1 || a < 0 || a >= rank || x.shape[a] !== scales) {
      fail(`x_scale [${scale.shape.join(', ')}] is neither one scale nor one per index of axis ${given} of x [${x.shape.join(', ')}]`);
    }
    axis = a;
    groupSize = scales === 0 ? 0 : n / scales;
  }
  if (zero && (zero.dtype !== x.dtype || elementCount(zero.shape) !== scales)) fail(`x_zero_point ${zero.dtype} [${zero.shape.join(', ')}] does not match x and x_scale`);
  const parts: Partial<Record<QuantizedPart, TensorInfo>> = { packed: x, scale };
  if (zero) parts.zeroPoint = zero;
  const layout: QuantizedLayout = { format: 'onnx-qdq', bits, groupSize, symmetric: !zero, parts };
  if (axis !== undefined) layout.axis = axis;
  return { name: node.outputs[0]!, shape: [...x.shape], dtype: 'ONNX_QDQ', layout, node: node.name };
}

function matMulNBits(node: OnnxNode, part: (name: string | undefined) => TensorInfo | undefined): Candidate | undefined {
  const b = part(node.inputs[1]);
  if (!b) return undefined;
  const k = intAttr(node, 'K');
  const n = intAttr(node, 'N');
  const bits = intAttr(node, 'bits') ?? 4;
  const blockSize = intAttr(node, 'block_size');
  if (k === undefined || n === undefined || k < 1 || n < 1) fail('attributes K and N are missing');
  if (bits < 2 || bits > 8) fail(`bits ${bits} is not 2 to 8`);
  if (blockSize === undefined || blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) fail(`block_size ${blockSize} is not a power of two ≥ 16`);
  if (node.inputs[4]) fail('g_idx (deprecated) is not read');
  const blocks = Math.ceil(k / blockSize);
  const blob = (blockSize * bits) / 8;
  if (b.dtype !== 'U8' || elementCount(b.shape) !== n * blocks * blob) fail(`B ${b.dtype} [${b.shape.join(', ')}] is not uint8 [${n}, ${blocks}, ${blob}]`);
  const scale = part(node.inputs[2]);
  if (!scale || !FLOAT_PARTS.has(scale.dtype) || elementCount(scale.shape) !== n * blocks) fail(`scales are not ${n * blocks} constant floats`);
  const zero = node.inputs[3] ? part(node.inputs[3]) : undefined;
  if (node.inputs[3] && !zero) fail('zero_points are not a constant');
  if (zero) {
    const packed = zero.dtype === 'U8' && elementCount(zero.shape) === n * Math.ceil((blocks * bits) / 8);
    const unpacked = FLOAT_PARTS.has(zero.dtype) && elementCount(zero.shape) === n * blocks;
    if (!packed && !unpacked) fail(`zero_points ${zero.dtype} [${zero.shape.join(', ')}] are neither packed uint8 nor ${n * blocks} floats`);
  }
  const parts: Partial<Record<QuantizedPart, TensorInfo>> = { packed: b, scale };
  if (zero) parts.zeroPoint = zero;
  const name = node.inputs[1]!.replace(/_Q\d$/, '');
  return { name, shape: [k, n], dtype: 'MATMUL_NBITS', layout: { format: 'onnx-matmulnbits', bits, groupSize: blockSize, symmetric: !zero, parts }, node: node.name };
}

/**
 * `tensors` with the parts of every recognised quantized weight replaced by one logical tensor (at
 * the place of its values), graphs walked with their outer scopes (a subgraph may use an outer
 * initializer).
 */
export function recogniseOnnxQuantized(root: OnnxGraph, graphTensors: GraphTensors, tensors: TensorInfo[], diagnostics: Diagnostic[], file: string): TensorInfo[] {
  const candidates: Candidate[] = [];
  const walk = (graph: OnnxGraph, scopes: Array<Map<string, TensorInfo>>): void => {
    const inner = [graphTensors.get(graph) ?? new Map<string, TensorInfo>(), ...scopes];
    const part = (name: string | undefined): TensorInfo | undefined => {
      if (!name) return undefined;
      for (const scope of inner) {
        const t = scope.get(name);
        if (t) return t;
      }
      return undefined;
    };
    for (const [index, node] of graph.nodes.entries()) {
      const defaultDomain = node.domain === '' || node.domain === 'ai.onnx';
      const kind = defaultDomain && node.opType === 'DequantizeLinear' ? qdq : node.domain === 'com.microsoft' && node.opType === 'MatMulNBits' ? matMulNBits : undefined;
      if (kind && node.outputs[0]) {
        try {
          const c = kind(node, part);
          if (c) candidates.push(c);
        } catch (err) {
          if (!(err instanceof NotQuantized)) throw err;
          diagnostics.push({ severity: 'warning', code: 'QUANT_LAYOUT', tensor: node.inputs[kind === qdq ? 0 : 1], file, message: `${node.name || `${node.opType}_${index}`} not read as a quantized weight: ${err.message}; its tensors are listed as stored` });
        }
      }
      for (const attr of node.attributes) {
        if (attr.g) walk(attr.g, inner);
        for (const g of attr.graphs ?? []) walk(g, inner);
      }
    }
  };
  walk(root, []);
  if (candidates.length === 0) return tensors;

  const owner = new Map<TensorInfo, TensorInfo>();
  const accepted: Candidate[] = [];
  for (const c of candidates) {
    const parts = Object.values(c.layout.parts) as TensorInfo[];
    if (parts.some((p) => owner.has(p))) {
      diagnostics.push({ severity: 'warning', code: 'QUANT_LAYOUT', tensor: c.name, file, message: `${c.node || c.name} shares stored tensors with another quantized weight; its tensors are listed as stored` });
      continue;
    }
    const logical: TensorInfo = {
      name: c.name,
      dtype: c.dtype,
      shape: c.shape,
      file: c.layout.parts.packed!.file,
      byteOffset: c.layout.parts.packed!.byteOffset,
      byteLength: parts.reduce((s, p) => s + storedBytes(p), 0),
      encoding: 'quantized',
      quantized: c.layout,
    };
    for (const p of parts) owner.set(p, logical);
    accepted.push(c);
  }
  // a logical name must not repeat a tensor that stays (e.g. the float weight kept for another user)
  const kept = new Set(tensors.filter((t) => !owner.has(t)).map((t) => t.name));
  const named = new Set<string>();
  for (const c of accepted) {
    if (!kept.has(c.name) && !named.has(c.name)) {
      named.add(c.name);
      continue;
    }
    diagnostics.push({ severity: 'warning', code: 'QUANT_LAYOUT', tensor: c.name, file, message: `${c.name} is also the name of another tensor; the parts of its quantized form are listed as stored` });
    for (const p of Object.values(c.layout.parts) as TensorInfo[]) owner.delete(p);
  }
  const out: TensorInfo[] = [];
  for (const t of tensors) {
    const logical = owner.get(t);
    if (!logical) out.push(t);
    else if (logical.quantized!.parts.packed === t) out.push(logical);
  }
  return out;
}
