/**
 * The ONNX graph as plain objects: nodes, attributes, value infos and tensor headers are decoded,
 * tensor values stay byte ranges of the file. The same objects feed the encoder (encode.ts), which
 * re-encodes the structure and copies every range it did not decode from the source file.
 */
import type { ByteSource } from '../../bytesource';
import { QuantLensError, throwIfAborted } from '../../errors';
import {
  MAX_TENSOR_DIMS,
  ONNX_MAX_DECODED_LIST_BYTES,
  ONNX_MAX_GRAPH_DEPTH,
  ONNX_MAX_GRAPH_ITEMS,
  ONNX_MAX_STRING_BYTES,
} from '../../limits';
import type { Diagnostic, TensorInfo } from '../../model';
import { openProtoMessage, type ProtoMessage } from '../../protobuf/scanner';
import { asFloat32, asInt32, asInt64, decodePackedVarints, WireType, type ProtoField } from '../../protobuf/wire';
import {
  AttributeField,
  DATA_LOCATION_EXTERNAL,
  DimensionField,
  GraphField,
  ModelField,
  NodeField,
  OperatorSetIdField,
  ShapeField,
  StringStringEntryField,
  TENSOR_VALUE_FIELDS,
  TensorField,
  TensorTypeField,
  TypeField,
  ValueInfoField,
} from './schema';

/** A byte range of the source file. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** A whole field (key included) the decoder does not model, copied verbatim on write, in field-number order. */
export interface ExtraField extends ByteRange {
  fieldNumber: number;
}

export interface StringEntry {
  key: string;
  value: string;
}

/** How a TensorProto's values are stored. */
export type OnnxTensorData =
  /** No values (an empty tensor, or one whose values are not numeric fields, e.g. string_data). */
  | { kind: 'none' }
  /**
   * A value field of the source file: `raw_data` (field 9) or a typed field (float_data, int32_data, …).
   * Packed fields and raw_data: `ranges` are payloads (one per occurrence of the field). Unpacked typed
   * fields: `ranges` cover whole fields, keys included, merged where consecutive.
   */
  | { kind: 'source'; field: number; packed: boolean; ranges: ByteRange[] }
  /** New values held in memory, written as length-delimited field `field` (raw_data, or a packed typed field). */
  | { kind: 'bytes'; field: number; bytes: Uint8Array }
  /** `data_location = EXTERNAL`: the `external_data` entries (location, offset, length, checksum). */
  | { kind: 'external'; entries: StringEntry[] };

export interface OnnxTensor {
  name: string;
  dims: number[];
  /** TensorProto.DataType number. */
  dataType: number;
  data: OnnxTensorData;
  /** Fields not modelled (doc_string, segment, string_data, metadata_props, …), copied verbatim on write. */
  extraFields: ExtraField[];
}

export interface OnnxDim {
  value?: number;
  /** A symbolic dimension ("batch", "N"). */
  param?: string;
  denotation?: string;
}

export type OnnxType =
  /** A tensor type; `shape` undefined means the rank is unknown, [] a scalar. `extraFields`: TypeProto's other fields (denotation). */
  | { kind: 'tensor'; elemType: number; shape?: OnnxDim[]; extraFields: ExtraField[] }
  /** Sequence, map, optional, sparse types: the TypeProto payload, copied verbatim on write. */
  | { kind: 'other'; range: ByteRange };

export interface OnnxValueInfo {
  name: string;
  type?: OnnxType;
  extraFields: ExtraField[];
}

/** Where a numeric attribute value (f, i, floats, ints) is in the file, in TensorInfo terms. */
export interface OnnxAttributeValueLocation {
  range: ByteRange;
  fieldWire: NonNullable<TensorInfo['fieldWire']>;
  count: number;
}

export interface OnnxAttribute {
  name: string;
  /** AttributeProto.AttributeType number. */
  type: number;
  f?: number;
  i?: bigint;
  s?: Uint8Array;
  t?: OnnxTensor;
  g?: OnnxGraph;
  /** Decoded when the list holds at most ONNX_MAX_DECODED_LIST_BYTES; otherwise left in `extraFields`. */
  floats?: number[];
  ints?: bigint[];
  strings?: Uint8Array[];
  tensors?: OnnxTensor[];
  graphs?: OnnxGraph[];
  /** For f, i, floats, ints read from a file: where the values are (absent when split over several runs). */
  valueLocation?: OnnxAttributeValueLocation;
  /** floats/ints were written packed in the file (onnx writes them unpacked); the encoder keeps the form. */
  packedLists?: boolean;
  /** Fields not modelled (doc_string, ref_attr_name, sparse tensors, type protos, large lists), copied verbatim. */
  extraFields: ExtraField[];
}

export interface OnnxNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: OnnxAttribute[];
  /** doc_string, overload, metadata_props: copied verbatim on write. */
  extraFields: ExtraField[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  valueInfo: OnnxValueInfo[];
  /** doc_string, sparse_initializer, quantization_annotation, metadata_props: copied verbatim on write. */
  extraFields: ExtraField[];
}

export interface OnnxOpsetImport {
  /** '' or absent: the default domain ai.onnx. */
  domain?: string;
  version: bigint;
}

export interface OnnxModel {
  irVersion?: bigint;
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: bigint;
  docString?: string;
  opsetImports: OnnxOpsetImport[];
  metadataProps: StringEntry[];
  graph: OnnxGraph;
  /** training_info, functions and newer fields: copied verbatim on write. */
  extraFields: ExtraField[];
}

export interface ReadOnnxModelOptions {
  signal?: AbortSignal;
  /** Receives soft-rule findings (a tensor with two value fields, a list too large to decode, …). */
  diagnostics?: Diagnostic[];
  /** Messages up to this size are scanned in memory (default 1 MiB; tests lower it to exercise streaming). */
  inMemoryMessageBytes?: number;
}

const utf8 = new TextDecoder('utf-8');

class Decoder {
  private items = 0;

  constructor(
    private readonly file: string,
    private readonly options: ReadOnnxModelOptions,
  ) {}

  private count(offset: number): void {
    if (++this.items > ONNX_MAX_GRAPH_ITEMS) {
      throw new QuantLensError('LIMIT_EXCEEDED', `more than ${ONNX_MAX_GRAPH_ITEMS} graph objects`, { offset, file: this.file });
    }
  }

  private diagnose(code: string, message: string, offset: number, tensor?: string): void {
    this.options.diagnostics?.push({ severity: 'warning', code, message, offset, file: this.file, ...(tensor ? { tensor } : {}) });
  }

  private wire(f: ProtoField, wireType: WireType, what: string): void {
    if (f.wireType !== wireType) {
      throw new QuantLensError('INVALID_PROTOBUF', `${what} (field ${f.fieldNumber}) has wire type ${f.wireType}, expected ${wireType}`, {
        offset: f.start,
        file: this.file,
      });
    }
  }

  private varint(f: ProtoField, what: string): bigint {
    this.wire(f, WireType.Varint, what);
    return f.bits;
  }

  private async string(msg: ProtoMessage, f: ProtoField): Promise<string> {
    return utf8.decode(await msg.bytes(f, ONNX_MAX_STRING_BYTES));
  }

  /**
   * A name/domain field: empty ones mean the same as absent ones, so they stay extra fields
   * (re-encoded as they were) and the property keeps ''.
   */
  private async optionalString(msg: ProtoMessage, f: ProtoField, extras: ExtraField[]): Promise<string> {
    if (f.wireType === WireType.LengthDelimited && f.length === 0) {
      extras.push(extraField(f));
      return '';
    }
    return this.string(msg, f);
  }

  private safeInt(value: bigint, what: string, offset: number): number {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new QuantLensError('INVALID_SHAPE', `${what} ${value} is out of range`, { offset, file: this.file });
    }
    return Number(value);
  }

  async model(msg: ProtoMessage): Promise<OnnxModel> {
    const model: OnnxModel = { opsetImports: [], metadataProps: [], graph: emptyGraph(), extraFields: [] };
    let sawGraph = false;
    for await (const f of msg.fields()) {
      switch (f.fieldNumber) {
        case ModelField.irVersion:
          model.irVersion = asInt64(this.varint(f, 'ir_version'));
          break;
        case ModelField.producerName:
          model.producerName = await this.string(msg, f);
          break;
        case ModelField.producerVersion:
          model.producerVersion = await this.string(msg, f);
          break;
        case ModelField.domain:
          model.domain = await this.string(msg, f);
          break;
        case ModelField.modelVersion:
          model.modelVersion = asInt64(this.varint(f, 'model_version'));
          break;
        case ModelField.docString:
          model.docString = await this.string(msg, f);
          break;
        case ModelField.graph:
          model.graph = await this.graph(await msg.message(f), 0);
          sawGraph = true;
          break;
        case ModelField.opsetImport:
          model.opsetImports.push(await this.opsetImport(await msg.message(f)));
          break;
        case ModelField.metadataProps:
          model.metadataProps.push(await this.stringEntry(await msg.message(f)));
          break;
        default:
          model.extraFields.push(extraField(f));
      }
    }
    if (!sawGraph) {
      throw new QuantLensError('INVALID_HEADER', 'no graph in the ModelProto: not an ONNX model', { offset: 0, file: this.file });
    }
    return model;
  }

  private async opsetImport(msg: ProtoMessage): Promise<OnnxOpsetImport> {
    const opset: OnnxOpsetImport = { version: 0n };
    for await (const f of msg.fields()) {
      if (f.fieldNumber === OperatorSetIdField.domain) opset.domain = await this.string(msg, f);
      else if (f.fieldNumber === OperatorSetIdField.version) opset.version = asInt64(this.varint(f, 'opset version'));
    }
    return opset;
  }

  private async stringEntry(msg: ProtoMessage): Promise<StringEntry> {
    this.count(msg.start);
    const entry: StringEntry = { key: '', value: '' };
    for await (const f of msg.fields()) {
      if (f.fieldNumber === StringStringEntryField.key) entry.key = await this.string(msg, f);
      else if (f.fieldNumber === StringStringEntryField.value) entry.value = await this.string(msg, f);
    }
    return entry;
  }

  async graph(msg: ProtoMessage, graphDepth: number): Promise<OnnxGraph> {
    if (graphDepth > ONNX_MAX_GRAPH_DEPTH) {
      throw new QuantLensError('LIMIT_EXCEEDED', `subgraphs nested deeper than ${ONNX_MAX_GRAPH_DEPTH}`, {
        offset: msg.start,
        file: this.file,
      });
    }
    const graph = emptyGraph();
    for await (const f of msg.fields()) {
      switch (f.fieldNumber) {
        case GraphField.node:
          throwIfAborted(this.options.signal);
          graph.nodes.push(await this.node(await msg.message(f), graphDepth));
          break;
        case GraphField.name:
          graph.name = await this.optionalString(msg, f, graph.extraFields);
          break;
        case GraphField.initializer:
          graph.initializers.push(await this.tensor(await msg.message(f)));
          break;
        case GraphField.input:
          graph.inputs.push(await this.valueInfo(await msg.message(f)));
          break;
        case GraphField.output:
          graph.outputs.push(await this.valueInfo(await msg.message(f)));
          break;
        case GraphField.valueInfo:
          graph.valueInfo.push(await this.valueInfo(await msg.message(f)));
          break;
        default:
          graph.extraFields.push(extraField(f));
      }
    }
    return graph;
  }

  private async node(msg: ProtoMessage, graphDepth: number): Promise<OnnxNode> {
    this.count(msg.start);
    const node: OnnxNode = { name: '', opType: '', domain: '', inputs: [], outputs: [], attributes: [], extraFields: [] };
    for await (const f of msg.fields()) {
      switch (f.fieldNumber) {
        case NodeField.input:
          this.count(f.start);
          node.inputs.push(await this.string(msg, f));
          break;
        case NodeField.output:
          this.count(f.start);
          node.outputs.push(await this.string(msg, f));
          break;
        case NodeField.name:
          node.name = await this.optionalString(msg, f, node.extraFields);
          break;
        case NodeField.opType:
          node.opType = await this.string(msg, f);
          break;
        case NodeField.domain:
          node.domain = await this.optionalString(msg, f, node.extraFields);
          break;
        case NodeField.attribute:
          node.attributes.push(await this.attribute(await msg.message(f), graphDepth));
          break;
        default:
          node.extraFields.push(extraField(f));
      }
    }
    return node;
  }

  private async attribute(msg: ProtoMessage, graphDepth: number): Promise<OnnxAttribute> {
    this.count(msg.start);
    const attr: OnnxAttribute = { name: '', type: 0, extraFields: [] };
    const floats = new ListCollector('floats', WireType.Fixed32);
    const ints = new ListCollector('ints', WireType.Varint);
    const strings: Uint8Array[] = [];
    const stringFields: ExtraField[] = [];
    let stringBytes = 0;
    for await (const f of msg.fields()) {
      switch (f.fieldNumber) {
        case AttributeField.name:
          attr.name = await this.string(msg, f);
          break;
        case AttributeField.type:
          attr.type = asInt32(this.varint(f, 'attribute type'));
          break;
        case AttributeField.f:
          this.wire(f, WireType.Fixed32, 'attribute f');
          attr.f = asFloat32(f.bits);
          attr.valueLocation = { range: { offset: f.offset, length: 4 }, fieldWire: 'packed-f32', count: 1 };
          break;
        case AttributeField.i:
          attr.i = asInt64(this.varint(f, 'attribute i'));
          attr.valueLocation = { range: { offset: f.offset, length: f.length }, fieldWire: 'packed-varint', count: 1 };
          break;
        case AttributeField.s:
          attr.s = await msg.bytes(f, ONNX_MAX_STRING_BYTES);
          break;
        case AttributeField.t:
          attr.t = await this.tensor(await msg.message(f));
          break;
        case AttributeField.g:
          attr.g = await this.graph(await msg.message(f), graphDepth + 1);
          break;
        case AttributeField.floats:
          await floats.add(msg, f);
          break;
        case AttributeField.ints:
          await ints.add(msg, f);
          break;
        case AttributeField.strings:
          this.wire(f, WireType.LengthDelimited, 'attribute strings');
          this.count(f.start);
          stringFields.push(extraField(f));
          stringBytes += f.length;
          if (stringBytes <= ONNX_MAX_DECODED_LIST_BYTES) strings.push(await msg.bytes(f, ONNX_MAX_DECODED_LIST_BYTES));
          break;
        case AttributeField.tensors:
          (attr.tensors ??= []).push(await this.tensor(await msg.message(f)));
          break;
        case AttributeField.graphs:
          (attr.graphs ??= []).push(await this.graph(await msg.message(f), graphDepth + 1));
          break;
        default:
          attr.extraFields.push(extraField(f));
      }
    }
    for (const [list, key] of [
      [floats, 'floats'],
      [ints, 'ints'],
    ] as const) {
      if (!list.seen) continue;
      if (list.packed) attr.packedLists = true;
      if (list.decoded) {
        if (key === 'floats') attr.floats = list.values.map((v) => asFloat32(v));
        else attr.ints = list.values.map((v) => asInt64(v));
      } else {
        attr.extraFields.push(...list.fieldRanges);
        this.diagnose('ONNX_LARGE_ATTRIBUTE', `attribute ${attr.name}: ${key} list kept as file bytes (too large to decode)`, msg.start);
      }
      const location = list.location(key === 'floats' ? 'f32' : 'varint');
      if (location) attr.valueLocation = location;
    }
    if (stringFields.length > 0) {
      if (stringBytes <= ONNX_MAX_DECODED_LIST_BYTES) attr.strings = strings;
      else attr.extraFields.push(...stringFields);
    }
    return attr;
  }

  async tensor(msg: ProtoMessage): Promise<OnnxTensor> {
    this.count(msg.start);
    const tensor: OnnxTensor = { name: '', dims: [], dataType: 0, data: { kind: 'none' }, extraFields: [] };
    let values: ValueRuns | undefined;
    let external: StringEntry[] | undefined;
    let location = 0;
    for await (const f of msg.fields()) {
      switch (f.fieldNumber) {
        case TensorField.dims:
          if (f.wireType === WireType.LengthDelimited) {
            const payload = await msg.bytes(f, MAX_TENSOR_DIMS * 10);
            for (const d of decodePackedVarints(payload, f.offset, msg.ctx)) tensor.dims.push(this.dim(d, f.offset));
          } else {
            tensor.dims.push(this.dim(this.varint(f, 'dims'), f.offset));
          }
          if (tensor.dims.length > MAX_TENSOR_DIMS) {
            throw new QuantLensError('LIMIT_EXCEEDED', `tensor has more than ${MAX_TENSOR_DIMS} dims`, { offset: f.start, file: this.file });
          }
          break;
        case TensorField.dataType:
          tensor.dataType = asInt32(this.varint(f, 'data_type'));
          break;
        case TensorField.name:
          tensor.name = await this.optionalString(msg, f, tensor.extraFields);
          break;
        case TensorField.dataLocation:
          location = asInt32(this.varint(f, 'data_location'));
          break;
        case TensorField.externalData:
          (external ??= []).push(await this.stringEntry(await msg.message(f)));
          break;
        default:
          if (TENSOR_VALUE_FIELDS.has(f.fieldNumber)) {
            if (values === undefined || values.field === f.fieldNumber) {
              values ??= new ValueRuns(f.fieldNumber);
              values.add(f, this.file);
            } else {
              // Two value fields: ONNX allows one; keep the first, carry the other along untouched.
              this.diagnose('ONNX_EXTRA_VALUE_FIELD', `tensor has values in fields ${values.field} and ${f.fieldNumber}; using ${values.field}`, f.start);
              tensor.extraFields.push(extraField(f));
            }
          } else {
            tensor.extraFields.push(extraField(f));
          }
      }
    }
    if (location === DATA_LOCATION_EXTERNAL) {
      tensor.data = { kind: 'external', entries: external ?? [] };
      if (values) this.diagnose('ONNX_EXTRA_VALUE_FIELD', 'external tensor also has a value field; ignored', msg.start, tensor.name);
    } else if (values) {
      tensor.data = { kind: 'source', field: values.field, packed: values.packed, ranges: values.ranges };
    }
    return tensor;
  }

  private dim(value: bigint, offset: number): number {
    const d = asInt64(value);
    if (d < 0n) throw new QuantLensError('INVALID_SHAPE', `negative tensor dimension ${d}`, { offset, file: this.file });
    return this.safeInt(d, 'tensor dimension', offset);
  }

  private async valueInfo(msg: ProtoMessage): Promise<OnnxValueInfo> {
    this.count(msg.start);
    const info: OnnxValueInfo = { name: '', extraFields: [] };
    for await (const f of msg.fields()) {
      if (f.fieldNumber === ValueInfoField.name) info.name = await this.string(msg, f);
      else if (f.fieldNumber === ValueInfoField.type) info.type = await this.type(await msg.message(f));
      else info.extraFields.push(extraField(f));
    }
    return info;
  }

  private async type(msg: ProtoMessage): Promise<OnnxType> {
    let tensorType: OnnxType | undefined;
    const extraFields: ExtraField[] = [];
    for await (const f of msg.fields()) {
      if (f.fieldNumber === TypeField.tensorType) tensorType = await this.tensorType(await msg.message(f), extraFields);
      else extraFields.push(extraField(f));
    }
    return tensorType ?? { kind: 'other', range: { offset: msg.start, length: msg.end - msg.start } };
  }

  private async tensorType(msg: ProtoMessage, extraFields: ExtraField[]): Promise<OnnxType> {
    const type: OnnxType = { kind: 'tensor', elemType: 0, extraFields };
    for await (const f of msg.fields()) {
      if (f.fieldNumber === TensorTypeField.elemType) type.elemType = asInt32(this.varint(f, 'elem_type'));
      else if (f.fieldNumber === TensorTypeField.shape) type.shape = await this.shape(await msg.message(f));
    }
    return type;
  }

  private async shape(msg: ProtoMessage): Promise<OnnxDim[]> {
    const dims: OnnxDim[] = [];
    for await (const f of msg.fields()) {
      if (f.fieldNumber !== ShapeField.dim) continue;
      this.count(f.start);
      const dimMsg = await msg.message(f);
      const dim: OnnxDim = {};
      for await (const g of dimMsg.fields()) {
        if (g.fieldNumber === DimensionField.value) dim.value = this.safeInt(asInt64(this.varint(g, 'dim_value')), 'dim_value', g.offset);
        else if (g.fieldNumber === DimensionField.param) dim.param = await this.string(dimMsg, g);
        else if (g.fieldNumber === DimensionField.denotation) dim.denotation = await this.string(dimMsg, g);
      }
      dims.push(dim);
    }
    return dims;
  }
}

/** Occurrences of one TensorProto value field, packed or not. */
class ValueRuns {
  packed = true;
  readonly ranges: ByteRange[] = [];

  constructor(readonly field: number) {}

  add(f: ProtoField, file: string): void {
    if (f.wireType === WireType.LengthDelimited) {
      this.ranges.push({ offset: f.offset, length: f.length });
      return;
    }
    const elementWire =
      f.fieldNumber === TensorField.floatData ? WireType.Fixed32 : f.fieldNumber === TensorField.doubleData ? WireType.Fixed64 : WireType.Varint;
    if (f.fieldNumber === TensorField.rawData || f.wireType !== elementWire) {
      throw new QuantLensError('INVALID_PROTOBUF', `tensor value field ${f.fieldNumber} has wire type ${f.wireType}`, { offset: f.start, file });
    }
    if (this.ranges.length > 0 && this.packed) {
      throw new QuantLensError('INVALID_PROTOBUF', `tensor value field ${f.fieldNumber} mixes packed and unpacked values`, { offset: f.start, file });
    }
    this.packed = false;
    const last = this.ranges[this.ranges.length - 1];
    if (last && last.offset + last.length === f.start) last.length = f.offset + f.length - last.offset;
    else this.ranges.push(fieldRange(f));
  }
}

/** A repeated numeric attribute field (floats/ints): decoded while small, located for Constant tensors. */
class ListCollector {
  seen = false;
  decoded = true;
  readonly values: bigint[] = [];
  readonly fieldRanges: ExtraField[] = [];
  private bytes = 0;
  private packedRanges = 0;

  get packed(): boolean {
    return this.packedRanges > 0;
  }

  private count = 0;
  private run: ByteRange | undefined;
  private runs = 0;

  constructor(
    private readonly what: string,
    private readonly elementWire: WireType,
  ) {}

  async add(msg: ProtoMessage, f: ProtoField): Promise<void> {
    this.seen = true;
    this.fieldRanges.push(extraField(f));
    this.bytes += f.length;
    if (this.bytes > ONNX_MAX_DECODED_LIST_BYTES) this.decoded = false;
    if (f.wireType === WireType.LengthDelimited) {
      this.packedRanges++;
      this.runs++;
      this.run = { offset: f.offset, length: f.length };
      if (this.elementWire === WireType.Fixed32) {
        if (f.length % 4 !== 0) {
          throw new QuantLensError('INVALID_PROTOBUF', `packed ${this.what} of ${f.length} bytes`, { offset: f.start, file: msg.ctx.file });
        }
        this.count += f.length / 4;
        if (this.decoded) {
          const payload = await msg.bytes(f, ONNX_MAX_DECODED_LIST_BYTES);
          const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
          for (let i = 0; i < payload.length; i += 4) this.values.push(BigInt(view.getUint32(i, true)));
        }
      } else if (this.decoded) {
        const payload = await msg.bytes(f, ONNX_MAX_DECODED_LIST_BYTES);
        const values = decodePackedVarints(payload, f.offset, msg.ctx);
        this.count += values.length;
        this.values.push(...values);
      } else {
        this.count += await msg.countPackedVarints(f);
      }
      return;
    }
    if (f.wireType !== this.elementWire) {
      throw new QuantLensError('INVALID_PROTOBUF', `attribute ${this.what} (field ${f.fieldNumber}) has wire type ${f.wireType}`, {
        offset: f.start,
        file: msg.ctx.file,
      });
    }
    this.count++;
    if (this.decoded) this.values.push(f.bits);
    if (this.run && this.packedRanges === 0 && this.run.offset + this.run.length === f.start) {
      this.run.length = f.offset + f.length - this.run.offset;
    } else {
      this.runs++;
      this.run = fieldRange(f);
    }
  }

  /** The values as one run, or undefined when split over several runs or mixing packed and unpacked. */
  location(unpackedWire: 'f32' | 'varint'): OnnxAttributeValueLocation | undefined {
    if (this.runs !== 1 || !this.run) return undefined;
    const packed = this.packedRanges === 1;
    const fieldWire = packed ? (unpackedWire === 'f32' ? 'packed-f32' : 'packed-varint') : unpackedWire;
    return { range: this.run, fieldWire, count: this.count };
  }
}

function extraField(f: ProtoField): ExtraField {
  return { fieldNumber: f.fieldNumber, ...fieldRange(f) };
}

function fieldRange(f: ProtoField): ByteRange {
  return { offset: f.start, length: f.offset + f.length - f.start };
}

export function emptyGraph(): OnnxGraph {
  return { name: '', nodes: [], initializers: [], inputs: [], outputs: [], valueInfo: [], extraFields: [] };
}

/**
 * Reads an ONNX ModelProto's structure from `source`: metadata, graph, nodes, attributes, value infos,
 * tensor headers; tensor values are located, never read. Subgraphs (If/Loop/Scan bodies) are decoded
 * recursively up to ONNX_MAX_GRAPH_DEPTH.
 */
export async function readOnnxModel(source: ByteSource, options: ReadOnnxModelOptions = {}): Promise<OnnxModel> {
  const msg = await openProtoMessage(source, { inMemoryMessageBytes: options.inMemoryMessageBytes });
  return new Decoder(source.name, options).model(msg);
}
