/**
 * Upgrades a model copy's default-domain opset to 13, the first with per-channel
 * QuantizeLinear/DequantizeLinear (`axis`). Only ops whose signature or meaning changed between
 * opsets 7 and 13 need rewriting (the onnx changelog, https://github.com/onnx/onnx/blob/main/docs/Changelog.md):
 * attributes that became inputs (Clip 11, Slice 10, Squeeze/Unsqueeze/Split/ReduceSum 13, Pad 11,
 * TopK 10), Softmax/LogSoftmax/Hardmax 13 (rank coercion at `axis` replaced by one axis: rewritten
 * as Flatten → op → Reshape, which is exactly the old meaning), Dropout 12 (an Identity at
 * inference), BatchNormalization's `spatial`. Ops whose older versions cannot be expressed this way
 * (Upsample, Scatter, Resize-10) are refused, naming the op.
 */
import { QuantLensError } from '../errors';
import { onnxAttribute, onnxNode, onnxTensor, OnnxDataType, type OnnxAttribute, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from '../readers/onnx';
import { isDefaultDomain } from './graph-edit';

export const QDQ_OPSET = 13;

export function defaultOpset(model: OnnxModel): number {
  const op = model.opsetImports.find((o) => !o.domain || o.domain === 'ai.onnx');
  return op ? Number(op.version) : 0;
}

function int64s(values: readonly number[]): Uint8Array {
  return new Uint8Array(BigInt64Array.from(values.map((v) => BigInt(v))).buffer);
}

function f32s(values: readonly number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

class Upgrader {
  private serial = 0;
  constructor(private readonly from: number) {}

  private fresh(base: string, what: string): string {
    return `${base}__ql_${what}_${this.serial++}`;
  }

  graph(graph: OnnxGraph): void {
    const nodes: OnnxNode[] = [];
    for (const node of graph.nodes) {
      for (const attr of node.attributes) {
        if (attr.g) this.graph(attr.g);
        for (const g of attr.graphs ?? []) this.graph(g);
      }
      if (!isDefaultDomain(node)) {
        nodes.push(node);
        continue;
      }
      nodes.push(...this.node(node, graph.initializers));
    }
    graph.nodes = nodes;
  }

  private take(node: OnnxNode, name: string): OnnxAttribute | undefined {
    const i = node.attributes.findIndex((a) => a.name === name);
    return i >= 0 ? node.attributes.splice(i, 1)[0] : undefined;
  }

  private constInput(init: OnnxTensor[], node: OnnxNode, what: string, dataType: number, dims: number[], raw: Uint8Array): string {
    const name = this.fresh(node.outputs[0] ?? node.opType, what);
    init.push(onnxTensor(name, dataType, dims, raw));
    return name;
  }

  private node(node: OnnxNode, init: OnnxTensor[]): OnnxNode[] {
    const v = this.from;
    const ints = (a: OnnxAttribute | undefined) => (a?.ints ?? []).map(Number);
    switch (node.opType) {
      case 'Clip':
        if (v < 11) {
          const min = this.take(node, 'min');
          const max = this.take(node, 'max');
          node.inputs = [
            node.inputs[0]!,
            min ? this.constInput(init, node, 'min', OnnxDataType.FLOAT, [], f32s([min.f ?? 0])) : '',
            max ? this.constInput(init, node, 'max', OnnxDataType.FLOAT, [], f32s([max.f ?? 0])) : '',
          ];
          while (node.inputs.length > 1 && node.inputs[node.inputs.length - 1] === '') node.inputs.pop();
        }
        return [node];
      case 'Slice':
        if (v < 10) {
          const starts = ints(this.take(node, 'starts'));
          const ends = ints(this.take(node, 'ends'));
          const axes = this.take(node, 'axes');
          node.inputs = [
            node.inputs[0]!,
            this.constInput(init, node, 'starts', OnnxDataType.INT64, [starts.length], int64s(starts)),
            this.constInput(init, node, 'ends', OnnxDataType.INT64, [ends.length], int64s(ends)),
            ...(axes ? [this.constInput(init, node, 'axes', OnnxDataType.INT64, [ints(axes).length], int64s(ints(axes)))] : []),
          ];
        }
        return [node];
      case 'Squeeze':
      case 'Unsqueeze':
      case 'ReduceSum': {
        const axes = this.take(node, 'axes');
        if (axes) node.inputs = [node.inputs[0]!, this.constInput(init, node, 'axes', OnnxDataType.INT64, [ints(axes).length], int64s(ints(axes)))];
        return [node];
      }
      case 'Split': {
        const split = this.take(node, 'split');
        if (split) node.inputs = [node.inputs[0]!, this.constInput(init, node, 'split', OnnxDataType.INT64, [ints(split).length], int64s(ints(split)))];
        return [node];
      }
      case 'Pad':
        if (v < 11) {
          const pads = ints(this.take(node, 'pads') ?? this.take(node, 'paddings'));
          const value = this.take(node, 'value');
          node.inputs = [
            node.inputs[0]!,
            this.constInput(init, node, 'pads', OnnxDataType.INT64, [pads.length], int64s(pads)),
            ...(value ? [this.constInput(init, node, 'value', OnnxDataType.FLOAT, [], f32s([value.f ?? 0]))] : []),
          ];
        }
        return [node];
      case 'TopK':
        if (v < 10) {
          const k = this.take(node, 'k');
          node.inputs = [node.inputs[0]!, this.constInput(init, node, 'k', OnnxDataType.INT64, [1], int64s([Number(k?.i ?? 0n)]))];
        }
        return [node];
      case 'Softmax':
      case 'LogSoftmax':
      case 'Hardmax': {
        const axisAttr = this.take(node, 'axis');
        const axis = axisAttr?.i !== undefined ? Number(axisAttr.i) : 1;
        const x = node.inputs[0]!;
        const y = node.outputs[0]!;
        const shape = this.fresh(y, 'shape');
        const flat = this.fresh(y, 'flat');
        const flatOut = this.fresh(y, 'flat_out');
        return [
          onnxNode('Shape', [x], [shape], { name: this.fresh(node.name || y, 'Shape') }),
          onnxNode('Flatten', [x], [flat], { name: this.fresh(node.name || y, 'Flatten'), attributes: [onnxAttribute.int('axis', axis)] }),
          { ...node, inputs: [flat], outputs: [flatOut], attributes: [...node.attributes, onnxAttribute.int('axis', 1)] },
          onnxNode('Reshape', [flatOut, shape], [y], { name: this.fresh(node.name || y, 'Reshape') }),
        ];
      }
      case 'Dropout':
        if (v < 12) {
          if (node.outputs.filter((o) => o).length > 1) throw refuse(node, v, 'a Dropout with a mask output');
          return [onnxNode('Identity', [node.inputs[0]!], [node.outputs[0]!], { name: node.name })];
        }
        return [node];
      case 'BatchNormalization': {
        const spatial = this.take(node, 'spatial');
        if (spatial && spatial.i !== 1n) throw refuse(node, v, 'BatchNormalization with spatial = 0');
        this.take(node, 'is_test');
        this.take(node, 'consumed_inputs');
        return [node];
      }
      case 'Upsample':
      case 'Scatter':
        throw refuse(node, v, node.opType);
      case 'Resize':
        if (v < 11) throw refuse(node, v, 'Resize-10');
        return [node];
      default:
        return [node];
    }
  }
}

function refuse(node: OnnxNode, from: number, what: string): QuantLensError {
  return new QuantLensError('UNSUPPORTED', `QDQ needs opset ${QDQ_OPSET}; converting ${what} (node ${node.name || node.opType}) from opset ${from} is not supported`);
}

/** Upgrades `model` (a copy: it is changed in place) to opset 13 when older; no-op from 13 on. */
export function upgradeToQdqOpset(model: OnnxModel): void {
  const from = defaultOpset(model);
  if (from >= QDQ_OPSET) return;
  if (from < 7) throw new QuantLensError('UNSUPPORTED', `opset ${from} predates broadcasting (opset 7); QuantLens converts opsets 7 to 12`);
  new Upgrader(from).graph(model.graph);
  const op = model.opsetImports.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (op) op.version = BigInt(QDQ_OPSET);
  if (model.irVersion === undefined || model.irVersion < 7n) model.irVersion = 7n;
}
