/**
 * Writes an OnnxModel (as read by readOnnxModel, then changed: extra graph outputs, new nodes and
 * initializers, replaced Constants) back to protobuf. The structure is re-encoded; tensor values and
 * every field the decoder did not model are copied from the source file by reference while writing,
 * so a multi-gigabyte model is rewritten without being held in memory.
 */
import { MemoryByteSource, type ByteSource } from '../../bytesource';
import { encodeMessage, MessageBuilder, writeMessageToFile, type WriteOptions } from '../../protobuf/encoder';
import type {
  ByteRange,
  OnnxAttribute,
  OnnxDim,
  OnnxGraph,
  OnnxModel,
  OnnxNode,
  OnnxTensor,
  OnnxType,
  OnnxValueInfo,
  StringEntry,
} from './graph';
import {
  AttributeField,
  AttributeType,
  DATA_LOCATION_EXTERNAL,
  DimensionField,
  GraphField,
  ModelField,
  NodeField,
  OperatorSetIdField,
  ShapeField,
  StringStringEntryField,
  TensorField,
  TensorTypeField,
  TypeField,
  ValueInfoField,
} from './schema';

/** Builds the ModelProto message; ranges are copied from `source` (the file the model was read from) at write time. */
export function onnxModelBuilder(model: OnnxModel, source: ByteSource): MessageBuilder {
  return new OnnxEncoder(source).model(model);
}

/** Writes `model` to a new file at `path`; returns the bytes written. `source` is the file it was read from. */
export async function writeOnnxModel(model: OnnxModel, source: ByteSource, path: string, options: WriteOptions = {}): Promise<number> {
  return writeMessageToFile(onnxModelBuilder(model, source), path, options);
}

/** Encodes `model` in memory (e.g. to hand a modified copy to ONNX Runtime). */
export async function encodeOnnxModel(model: OnnxModel, source: ByteSource, options: WriteOptions = {}): Promise<Uint8Array> {
  return encodeMessage(onnxModelBuilder(model, source), options);
}

class OnnxEncoder {
  constructor(private readonly source: ByteSource) {}

  private extras(b: MessageBuilder, ranges: readonly ByteRange[]): void {
    for (const r of ranges) b.rawFromSource(this.source, r.offset, r.length);
  }

  model(model: OnnxModel): MessageBuilder {
    const b = new MessageBuilder();
    if (model.irVersion !== undefined) b.varint(ModelField.irVersion, model.irVersion);
    if (model.producerName !== undefined) b.string(ModelField.producerName, model.producerName);
    if (model.producerVersion !== undefined) b.string(ModelField.producerVersion, model.producerVersion);
    if (model.domain !== undefined) b.string(ModelField.domain, model.domain);
    if (model.modelVersion !== undefined) b.varint(ModelField.modelVersion, model.modelVersion);
    if (model.docString !== undefined) b.string(ModelField.docString, model.docString);
    b.message(ModelField.graph, this.graph(model.graph));
    for (const opset of model.opsetImports) {
      b.message(
        ModelField.opsetImport,
        new MessageBuilder().string(OperatorSetIdField.domain, opset.domain).varint(OperatorSetIdField.version, opset.version),
      );
    }
    for (const entry of model.metadataProps) b.message(ModelField.metadataProps, stringEntry(entry));
    this.extras(b, model.extraFields);
    return b;
  }

  graph(graph: OnnxGraph): MessageBuilder {
    const b = new MessageBuilder();
    for (const node of graph.nodes) b.message(GraphField.node, this.node(node));
    if (graph.name) b.string(GraphField.name, graph.name);
    for (const t of graph.initializers) b.message(GraphField.initializer, this.tensor(t));
    for (const v of graph.inputs) b.message(GraphField.input, this.valueInfo(v));
    for (const v of graph.outputs) b.message(GraphField.output, this.valueInfo(v));
    for (const v of graph.valueInfo) b.message(GraphField.valueInfo, this.valueInfo(v));
    this.extras(b, graph.extraFields);
    return b;
  }

  node(node: OnnxNode): MessageBuilder {
    const b = new MessageBuilder();
    for (const name of node.inputs) b.string(NodeField.input, name);
    for (const name of node.outputs) b.string(NodeField.output, name);
    if (node.name) b.string(NodeField.name, node.name);
    b.string(NodeField.opType, node.opType);
    for (const attr of node.attributes) b.message(NodeField.attribute, this.attribute(attr));
    if (node.domain) b.string(NodeField.domain, node.domain);
    this.extras(b, node.extraFields);
    return b;
  }

  attribute(attr: OnnxAttribute): MessageBuilder {
    const b = new MessageBuilder();
    b.string(AttributeField.name, attr.name);
    if (attr.f !== undefined) b.float(AttributeField.f, attr.f);
    if (attr.i !== undefined) b.varint(AttributeField.i, attr.i);
    if (attr.s !== undefined) b.bytes(AttributeField.s, attr.s);
    if (attr.t !== undefined) b.message(AttributeField.t, this.tensor(attr.t));
    if (attr.g !== undefined) b.message(AttributeField.g, this.graph(attr.g));
    // onnx.proto (proto2) declares floats/ints unpacked; write them the way onnx does.
    for (const v of attr.floats ?? []) b.float(AttributeField.floats, v);
    for (const v of attr.ints ?? []) b.varint(AttributeField.ints, v);
    for (const v of attr.strings ?? []) b.bytes(AttributeField.strings, v);
    for (const t of attr.tensors ?? []) b.message(AttributeField.tensors, this.tensor(t));
    for (const g of attr.graphs ?? []) b.message(AttributeField.graphs, this.graph(g));
    b.varint(AttributeField.type, attr.type);
    this.extras(b, attr.extraFields);
    return b;
  }

  tensor(t: OnnxTensor): MessageBuilder {
    const b = new MessageBuilder();
    for (const d of t.dims) b.varint(TensorField.dims, d);
    b.varint(TensorField.dataType, t.dataType);
    const data = t.data;
    if (data.kind === 'source') {
      for (const r of data.ranges) {
        if (data.packed) b.bytesFromSource(data.field, this.source, r.offset, r.length);
        else b.rawFromSource(this.source, r.offset, r.length);
      }
    } else if (data.kind === 'bytes') {
      b.bytes(data.field, data.bytes);
    }
    if (t.name) b.string(TensorField.name, t.name);
    if (data.kind === 'external') {
      for (const entry of data.entries) b.message(TensorField.externalData, stringEntry(entry));
      b.varint(TensorField.dataLocation, DATA_LOCATION_EXTERNAL);
    }
    this.extras(b, t.extraFields);
    return b;
  }

  valueInfo(v: OnnxValueInfo): MessageBuilder {
    const b = new MessageBuilder();
    b.string(ValueInfoField.name, v.name);
    if (v.type) b.message(ValueInfoField.type, this.type(v.type));
    this.extras(b, v.extraFields);
    return b;
  }

  type(type: OnnxType): MessageBuilder {
    const b = new MessageBuilder();
    if (type.kind === 'other') return b.rawFromSource(this.source, type.range.offset, type.range.length);
    const tensorType = new MessageBuilder().varint(TensorTypeField.elemType, type.elemType);
    if (type.shape) {
      const shape = new MessageBuilder();
      for (const dim of type.shape) shape.message(ShapeField.dim, dimension(dim));
      tensorType.message(TensorTypeField.shape, shape);
    }
    b.message(TypeField.tensorType, tensorType);
    this.extras(b, type.extraFields);
    return b;
  }
}

function dimension(dim: OnnxDim): MessageBuilder {
  const b = new MessageBuilder();
  if (dim.value !== undefined) b.varint(DimensionField.value, dim.value);
  else if (dim.param !== undefined) b.string(DimensionField.param, dim.param);
  if (dim.denotation !== undefined) b.string(DimensionField.denotation, dim.denotation);
  return b;
}

function stringEntry(entry: StringEntry): MessageBuilder {
  return new MessageBuilder().string(StringStringEntryField.key, entry.key).string(StringStringEntryField.value, entry.value);
}

/** A source for models built from scratch (no ranges to copy). */
export const NO_SOURCE: ByteSource = new MemoryByteSource(new Uint8Array(0), '<new model>');

/** A new initializer or Constant value holding `raw` little-endian bytes in raw_data. */
export function onnxTensor(name: string, dataType: number, dims: number[], raw: Uint8Array): OnnxTensor {
  return { name, dataType, dims: [...dims], data: { kind: 'bytes', field: TensorField.rawData, bytes: raw }, extraFields: [] };
}

/** A new node. */
export function onnxNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  options: { name?: string; domain?: string; attributes?: OnnxAttribute[] } = {},
): OnnxNode {
  return {
    name: options.name ?? '',
    opType,
    domain: options.domain ?? '',
    inputs,
    outputs,
    attributes: options.attributes ?? [],
    extraFields: [],
  };
}

/** New attributes, one constructor per value kind. */
export const onnxAttribute = {
  float: (name: string, f: number): OnnxAttribute => ({ name, type: AttributeType.FLOAT, f, extraFields: [] }),
  int: (name: string, i: bigint | number): OnnxAttribute => ({ name, type: AttributeType.INT, i: BigInt(i), extraFields: [] }),
  string: (name: string, s: string): OnnxAttribute => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(s), extraFields: [] }),
  tensor: (name: string, t: OnnxTensor): OnnxAttribute => ({ name, type: AttributeType.TENSOR, t, extraFields: [] }),
  graph: (name: string, g: OnnxGraph): OnnxAttribute => ({ name, type: AttributeType.GRAPH, g, extraFields: [] }),
  floats: (name: string, floats: number[]): OnnxAttribute => ({ name, type: AttributeType.FLOATS, floats, extraFields: [] }),
  ints: (name: string, ints: Array<bigint | number>): OnnxAttribute => ({
    name,
    type: AttributeType.INTS,
    ints: ints.map((v) => BigInt(v)),
    extraFields: [],
  }),
};

/**
 * A new graph input/output/value_info. `elemType` undefined leaves the type out (ONNX Runtime infers
 * it for added outputs); a shape entry is a size, a symbolic name, or null for an unknown dimension.
 */
export function onnxValueInfo(name: string, elemType?: number, shape?: Array<number | string | null>): OnnxValueInfo {
  const info: OnnxValueInfo = { name, extraFields: [] };
  if (elemType !== undefined) {
    info.type = {
      kind: 'tensor',
      elemType,
      shape: shape?.map((d) => (typeof d === 'number' ? { value: d } : typeof d === 'string' ? { param: d } : {})),
      extraFields: [],
    };
  }
  return info;
}
