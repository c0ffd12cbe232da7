/**
 * Writes an OnnxModel (as read by readOnnxModel, then changed: extra graph outputs, new nodes and
 * initializers, replaced Constants) back to protobuf. The structure is re-encoded; tensor values and
 * every field the decoder did not model are copied from the source file by reference while writing,
 * so a multi-gigabyte model is rewritten without being held in memory.
 */
import { MemoryByteSource, type ByteSource } from '../../bytesource';
import { encodeMessage, MessageBuilder, writeMessageToFile, type WriteOptions } from '../../protobuf/encoder';
import type {
  ExtraField,
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

/**
 * Emits a message's unmodelled fields between its modelled ones in field-number order, as protobuf
 * serializers do, so an unchanged model re-encodes to the bytes it was read from.
 */
class FieldOrder {
  private readonly extras: ExtraField[];
  private next = 0;

  constructor(
    private readonly b: MessageBuilder,
    extras: readonly ExtraField[],
    private readonly source: ByteSource,
  ) {
    this.extras = [...extras].sort((x, y) => x.fieldNumber - y.fieldNumber);
  }

  /**
   * Call before writing field `fieldNumber`: writes the extras numbered up to it. An extra with the
   * same number goes first, so a value set on the object wins (protobuf keeps the last singular value).
   */
  at(fieldNumber: number): MessageBuilder {
    while (this.next < this.extras.length && this.extras[this.next]!.fieldNumber <= fieldNumber) {
      const e = this.extras[this.next++]!;
      this.b.rawFromSource(this.source, e.offset, e.length);
    }
    return this.b;
  }

  /** Writes the remaining extras. */
  end(): MessageBuilder {
    return this.at(Infinity);
  }
}

class OnnxEncoder {
  constructor(private readonly source: ByteSource) {}

  private order(b: MessageBuilder, extras: readonly ExtraField[]): FieldOrder {
    return new FieldOrder(b, extras, this.source);
  }

  model(model: OnnxModel): MessageBuilder {
    const o = this.order(new MessageBuilder(), model.extraFields);
    if (model.irVersion !== undefined) o.at(ModelField.irVersion).varint(ModelField.irVersion, model.irVersion);
    if (model.producerName !== undefined) o.at(ModelField.producerName).string(ModelField.producerName, model.producerName);
    if (model.producerVersion !== undefined) o.at(ModelField.producerVersion).string(ModelField.producerVersion, model.producerVersion);
    if (model.domain !== undefined) o.at(ModelField.domain).string(ModelField.domain, model.domain);
    if (model.modelVersion !== undefined) o.at(ModelField.modelVersion).varint(ModelField.modelVersion, model.modelVersion);
    if (model.docString !== undefined) o.at(ModelField.docString).string(ModelField.docString, model.docString);
    o.at(ModelField.graph).message(ModelField.graph, this.graph(model.graph));
    for (const opset of model.opsetImports) {
      o.at(ModelField.opsetImport).message(
        ModelField.opsetImport,
        opsetImport(opset.domain, opset.version),
      );
    }
    for (const entry of model.metadataProps) o.at(ModelField.metadataProps).message(ModelField.metadataProps, stringEntry(entry));
    return o.end();
  }

  graph(graph: OnnxGraph): MessageBuilder {
    const o = this.order(new MessageBuilder(), graph.extraFields);
    for (const node of graph.nodes) o.at(GraphField.node).message(GraphField.node, this.node(node));
    if (graph.name) o.at(GraphField.name).string(GraphField.name, graph.name);
    for (const t of graph.initializers) o.at(GraphField.initializer).message(GraphField.initializer, this.tensor(t));
    for (const v of graph.inputs) o.at(GraphField.input).message(GraphField.input, this.valueInfo(v));
    for (const v of graph.outputs) o.at(GraphField.output).message(GraphField.output, this.valueInfo(v));
    for (const v of graph.valueInfo) o.at(GraphField.valueInfo).message(GraphField.valueInfo, this.valueInfo(v));
    return o.end();
  }

  node(node: OnnxNode): MessageBuilder {
    const o = this.order(new MessageBuilder(), node.extraFields);
    for (const name of node.inputs) o.at(NodeField.input).string(NodeField.input, name);
    for (const name of node.outputs) o.at(NodeField.output).string(NodeField.output, name);
    if (node.name) o.at(NodeField.name).string(NodeField.name, node.name);
    o.at(NodeField.opType).string(NodeField.opType, node.opType);
    for (const attr of node.attributes) o.at(NodeField.attribute).message(NodeField.attribute, this.attribute(attr));
    if (node.domain) o.at(NodeField.domain).string(NodeField.domain, node.domain);
    return o.end();
  }

  attribute(attr: OnnxAttribute): MessageBuilder {
    const o = this.order(new MessageBuilder(), attr.extraFields);
    o.at(AttributeField.name).string(AttributeField.name, attr.name);
    if (attr.f !== undefined) o.at(AttributeField.f).float(AttributeField.f, attr.f);
    if (attr.i !== undefined) o.at(AttributeField.i).varint(AttributeField.i, attr.i);
    if (attr.s !== undefined) o.at(AttributeField.s).bytes(AttributeField.s, attr.s);
    if (attr.t !== undefined) o.at(AttributeField.t).message(AttributeField.t, this.tensor(attr.t));
    if (attr.g !== undefined) o.at(AttributeField.g).message(AttributeField.g, this.graph(attr.g));
    // onnx.proto (proto2) declares floats/ints unpacked; write them the way onnx does unless they were read packed.
    if (attr.floats && attr.packedLists) o.at(AttributeField.floats).packedFloats(AttributeField.floats, attr.floats);
    else for (const v of attr.floats ?? []) o.at(AttributeField.floats).float(AttributeField.floats, v);
    if (attr.ints && attr.packedLists) o.at(AttributeField.ints).packedVarints(AttributeField.ints, attr.ints);
    else for (const v of attr.ints ?? []) o.at(AttributeField.ints).varint(AttributeField.ints, v);
    for (const v of attr.strings ?? []) o.at(AttributeField.strings).bytes(AttributeField.strings, v);
    for (const t of attr.tensors ?? []) o.at(AttributeField.tensors).message(AttributeField.tensors, this.tensor(t));
    for (const g of attr.graphs ?? []) o.at(AttributeField.graphs).message(AttributeField.graphs, this.graph(g));
    o.at(AttributeField.type).varint(AttributeField.type, attr.type);
    return o.end();
  }

  tensor(t: OnnxTensor): MessageBuilder {
    const o = this.order(new MessageBuilder(), t.extraFields);
    for (const d of t.dims) o.at(TensorField.dims).varint(TensorField.dims, d);
    o.at(TensorField.dataType).varint(TensorField.dataType, t.dataType);
    const data = t.data;
    const writeData = (): void => {
      if (data.kind === 'source') {
        const b = o.at(data.field);
        for (const r of data.ranges) {
          if (data.packed) b.bytesFromSource(data.field, this.source, r.offset, r.length);
          else b.rawFromSource(this.source, r.offset, r.length);
        }
      } else if (data.kind === 'bytes') {
        o.at(data.field).bytes(data.field, data.bytes);
      }
    };
    const dataField = data.kind === 'source' || data.kind === 'bytes' ? data.field : Infinity;
    if (dataField < TensorField.name) writeData();
    if (t.name) o.at(TensorField.name).string(TensorField.name, t.name);
    if (dataField > TensorField.name) writeData();
    if (data.kind === 'external') {
      for (const entry of data.entries) o.at(TensorField.externalData).message(TensorField.externalData, stringEntry(entry));
      o.at(TensorField.dataLocation).varint(TensorField.dataLocation, DATA_LOCATION_EXTERNAL);
    }
    return o.end();
  }

  valueInfo(v: OnnxValueInfo): MessageBuilder {
    const o = this.order(new MessageBuilder(), v.extraFields);
    o.at(ValueInfoField.name).string(ValueInfoField.name, v.name);
    if (v.type) o.at(ValueInfoField.type).message(ValueInfoField.type, this.type(v.type));
    return o.end();
  }

  type(type: OnnxType): MessageBuilder {
    const b = new MessageBuilder();
    if (type.kind === 'other') return b.rawFromSource(this.source, type.range.offset, type.range.length);
    const o = this.order(b, type.extraFields);
    const tensorType = new MessageBuilder().varint(TensorTypeField.elemType, type.elemType);
    if (type.shape) {
      const shape = new MessageBuilder();
      for (const dim of type.shape) shape.message(ShapeField.dim, dimension(dim));
      tensorType.message(TensorTypeField.shape, shape);
    }
    o.at(TypeField.tensorType).message(TypeField.tensorType, tensorType);
    return o.end();
  }
}

function dimension(dim: OnnxDim): MessageBuilder {
  const b = new MessageBuilder();
  if (dim.value !== undefined) b.varint(DimensionField.value, dim.value);
  else if (dim.param !== undefined) b.string(DimensionField.param, dim.param);
  if (dim.denotation !== undefined) b.string(DimensionField.denotation, dim.denotation);
  return b;
}

function opsetImport(domain: string | undefined, version: bigint): MessageBuilder {
  const b = new MessageBuilder();
  if (domain !== undefined) b.string(OperatorSetIdField.domain, domain);
  return b.varint(OperatorSetIdField.version, version);
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
