/**
 * The ONNX checkpoint reader: tensors are graph initializers, Constant node values and both of these
 * inside subgraphs (If/Loop/Scan bodies), located in the file (raw_data, typed fields, Constant
 * attributes) or in external data files next to the model.
 */
import * as nodePath from 'node:path';
import type { ByteSource } from '../../bytesource';
import { byteSizeOf, DTYPES, type DType } from '../../dtypes';
import { QuantLensError, throwIfAborted } from '../../errors';
import { ONNX_MAX_EXTERNAL_FILES } from '../../limits';
import { elementCount, type Diagnostic, type MetadataValue, type ModelInfo, type TensorInfo } from '../../model';
import { asInt64, WireCursor, WireType } from '../../protobuf/wire';
import type { CheckpointReader, FileAccess, ReadOptions } from '../types';
import { readOnnxModel, type OnnxGraph, type OnnxModel, type OnnxNode, type OnnxTensor } from './graph';
import { recogniseOnnxQuantized, type GraphTensors } from './quantized';
import { dtypeOfOnnxDataType, onnxDataTypeName, TensorField } from './schema';

/** Keys a ModelProto starts with after ir_version: producer_name, producer_version, domain, model_version, doc_string, graph, opset_import. */
const SECOND_FIELD_KEYS = new Set([0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42]);

export const onnxReader: CheckpointReader = {
  format: 'onnx',
  label: 'ONNX',
  sniff(path: string, head: Uint8Array): boolean {
    if (/\.onnx$/i.test(path)) return true;
    // No magic: a ModelProto begins with ir_version (key 0x08, a small varint), then another known field.
    return head.length >= 3 && head[0] === 0x08 && head[1]! >= 1 && head[1]! < 0x80 && SECOND_FIELD_KEYS.has(head[2]!);
  },
  async read(path: string, files: FileAccess, options: ReadOptions = {}): Promise<ModelInfo> {
    const source = await files.open(path);
    try {
      const diagnostics: Diagnostic[] = [];
      const model = await readOnnxModel(source, { signal: options.signal, diagnostics });
      const metadata = onnxMetadata(model, diagnostics, path);
      const collector = new TensorCollector(path, source, files, diagnostics, options.signal);
      await collector.graph(model.graph, undefined);
      const tensors = recogniseOnnxQuantized(model.graph, collector.graphTensors, collector.tensors, diagnostics, path);
      return { format: 'onnx', files: [path, ...collector.externalFiles.keys()], metadata, tensors, diagnostics };
    } finally {
      await source.close();
    }
  },
};

function onnxMetadata(model: OnnxModel, diagnostics: Diagnostic[], file: string): Record<string, MetadataValue> {
  const metadata: Record<string, MetadataValue> = {};
  if (model.irVersion !== undefined) metadata['onnx.ir_version'] = { type: 'i64', value: model.irVersion };
  if (model.producerName !== undefined) metadata['onnx.producer_name'] = { type: 'string', value: model.producerName };
  if (model.producerVersion !== undefined) metadata['onnx.producer_version'] = { type: 'string', value: model.producerVersion };
  if (model.domain !== undefined) metadata['onnx.domain'] = { type: 'string', value: model.domain };
  if (model.modelVersion !== undefined) metadata['onnx.model_version'] = { type: 'i64', value: model.modelVersion };
  if (model.docString !== undefined) metadata['onnx.doc_string'] = { type: 'string', value: model.docString };
  for (const opset of model.opsetImports) {
    metadata[`onnx.opset.${opset.domain || 'ai.onnx'}`] = { type: 'i64', value: opset.version };
  }
  if (model.graph.name) metadata['onnx.graph.name'] = { type: 'string', value: model.graph.name };
  for (const { key, value } of model.metadataProps) {
    if (Object.prototype.hasOwnProperty.call(metadata, key)) {
      diagnostics.push({ severity: 'warning', code: 'DUPLICATE_NAME', message: `metadata_props key ${key} repeats an existing key; later value ignored`, file });
      continue;
    }
    metadata[key] = { type: 'string', value };
  }
  return metadata;
}

class TensorCollector {
  readonly tensors: TensorInfo[] = [];
  /** External data files, with their sizes. */
  readonly externalFiles = new Map<string, number>();
  /** Each graph's tensors by their name in that graph (before renaming), for readers/onnx/quantized.ts. */
  readonly graphTensors: GraphTensors = new Map();
  private readonly names = new Set<string>();
  private readonly folder: string;

  constructor(
    private readonly path: string,
    private readonly source: ByteSource,
    private readonly files: FileAccess,
    private readonly diagnostics: Diagnostic[],
    private readonly signal: AbortSignal | undefined,
  ) {
    this.folder = nodePath.dirname(nodePath.resolve(path));
  }

  private diagnose(severity: Diagnostic['severity'], code: string, message: string, tensor: string): void {
    this.diagnostics.push({ severity, code, message, tensor, file: this.path });
  }

  /** Tensors of `graph`, then of its nodes' subgraphs; `owner` labels the node owning a subgraph. */
  async graph(graph: OnnxGraph, owner: string | undefined): Promise<void> {
    const byName = new Map<string, TensorInfo>();
    this.graphTensors.set(graph, byName);
    const record = async (rawName: string, collect: () => Promise<void>) => {
      const before = this.tensors.length;
      await collect();
      if (this.tensors.length > before) byName.set(rawName, this.tensors[this.tensors.length - 1]!);
    };
    for (const t of graph.initializers) await record(t.name, () => this.tensor(t, t.name, owner));
    for (const [index, node] of graph.nodes.entries()) {
      throwIfAborted(this.signal);
      if (node.opType === 'Constant' && (node.domain === '' || node.domain === 'ai.onnx')) await record(node.outputs[0] ?? '', () => this.constant(node, index, owner));
      const label = node.name || `${node.opType}_${index}`;
      for (const attr of node.attributes) {
        if (attr.g) await this.graph(attr.g, label);
        for (const g of attr.graphs ?? []) await this.graph(g, label);
      }
    }
  }

  /** A unique tensor name: subgraph names that collide get the owning node's name as a prefix. */
  private uniqueName(name: string, owner: string | undefined): string {
    let unique = name;
    if (this.names.has(unique) && owner !== undefined) unique = `${owner}/${name}`;
    if (this.names.has(unique)) {
      let k = 2;
      while (this.names.has(`${unique}#${k}`)) k++;
      this.diagnose('warning', 'DUPLICATE_NAME', `tensor name ${unique} appears more than once; renamed ${unique}#${k}`, unique);
      unique = `${unique}#${k}`;
    }
    this.names.add(unique);
    return unique;
  }

  private async constant(node: OnnxNode, index: number, owner: string | undefined): Promise<void> {
    const name = node.outputs[0] || node.name || `Constant_${index}`;
    const attr = node.attributes[0];
    if (!attr) {
      this.diagnose('warning', 'ONNX_CONSTANT_WITHOUT_VALUE', 'Constant node has no value attribute', name);
      return;
    }
    if (attr.name === 'value' && attr.t) {
      await this.tensor(attr.t, name, owner);
      return;
    }
    const scalar = attr.name === 'value_float' || attr.name === 'value_int';
    const list = attr.name === 'value_floats' || attr.name === 'value_ints';
    if (!scalar && !list) {
      this.diagnose('info', 'UNSUPPORTED_DTYPE', `Constant ${attr.name} is not a numeric tensor; skipped`, name);
      return;
    }
    const location = attr.valueLocation;
    if (!location) {
      this.diagnose('warning', 'ONNX_SPLIT_VALUES', `Constant ${attr.name} values are split over several fields; skipped`, name);
      return;
    }
    const dtype: DType = attr.name.startsWith('value_float') ? 'F32' : 'I64';
    this.tensors.push({
      name: this.uniqueName(name, owner),
      dtype,
      shape: scalar ? [] : [location.count],
      file: this.path,
      byteOffset: location.range.offset,
      byteLength: location.range.length,
      encoding: 'onnx-attribute',
      fieldWire: location.fieldWire,
    });
  }

  private async tensor(t: OnnxTensor, rawName: string, owner: string | undefined): Promise<void> {
    const mapping = dtypeOfOnnxDataType(t.dataType);
    if (!mapping) {
      const onnxName = onnxDataTypeName(t.dataType);
      if (onnxName === undefined || t.dataType === 0) {
        this.diagnose('warning', 'INVALID_DTYPE', `unknown ONNX data type ${t.dataType}; tensor skipped`, rawName);
      } else {
        this.diagnose('info', 'UNSUPPORTED_DTYPE', `ONNX data type ${onnxName} has no QuantLens dtype; tensor skipped`, rawName);
      }
      return;
    }
    const { dtype } = mapping;
    let elements = 1n;
    for (const d of t.dims) elements *= BigInt(d);
    if (elements > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new QuantLensError('OVERFLOW', `tensor shape [${t.dims.join(', ')}] has too many elements`, { tensor: rawName, file: this.path });
    }
    const n = Number(elements);
    const size = Number(byteSizeOf(dtype, elements));
    const data = t.data;
    const base = { dtype, shape: [...t.dims] };

    if (data.kind === 'external') {
      const located = await this.external(data.entries, size, rawName);
      this.tensors.push({ name: this.uniqueName(rawName, owner), ...base, ...located, encoding: 'raw' });
      return;
    }
    if (data.kind === 'none') {
      if (n !== 0) throw sizeMismatch(`tensor has ${n} elements but no values`, rawName, this.path);
      this.tensors.push({ name: this.uniqueName(rawName, owner), ...base, file: this.path, byteOffset: 0, byteLength: 0, encoding: 'raw' });
      return;
    }
    if (data.kind === 'bytes') {
      throw new QuantLensError('INTERNAL', 'tensor values held in memory have no file location', { tensor: rawName });
    }
    if (data.ranges.length !== 1) {
      this.diagnose('warning', 'ONNX_SPLIT_VALUES', `values are split over ${data.ranges.length} fields; skipped`, rawName);
      return;
    }
    const range = data.ranges[0]!;
    if (range.offset + range.length > this.source.size) {
      throw new QuantLensError('TRUNCATED', 'tensor values run past the end of the file', { offset: range.offset, tensor: rawName, file: this.path });
    }
    if (data.field === TensorField.rawData) {
      if (range.length !== size) {
        throw sizeMismatch(`raw_data holds ${range.length} bytes, shape [${t.dims.join(', ')}] of ${dtype} needs ${size}`, rawName, this.path, range.offset);
      }
      this.tensors.push({ name: this.uniqueName(rawName, owner), ...base, file: this.path, byteOffset: range.offset, byteLength: range.length, encoding: 'raw' });
      return;
    }
    if (data.field !== mapping.typedField) {
      throw new QuantLensError('INVALID_DTYPE', `${dtype} tensor has values in TensorProto field ${data.field}, expected ${mapping.typedField}`, {
        offset: range.offset,
        tensor: rawName,
        file: this.path,
      });
    }
    const fieldWire = typedFieldWire(data.field, data.packed);
    checkTypedFieldLength(fieldWire, n, range.length, rawName, this.path, range.offset);
    this.tensors.push({
      name: this.uniqueName(rawName, owner),
      ...base,
      file: this.path,
      byteOffset: range.offset,
      byteLength: range.length,
      encoding: 'onnx-typed-field',
      fieldWire,
    });
  }

  /** Resolves `external_data` (location/offset/length) inside the model's folder and checks it against the file. */
  private async external(entries: { key: string; value: string }[], size: number, tensor: string): Promise<Pick<TensorInfo, 'file' | 'byteOffset' | 'byteLength'>> {
    const values = new Map(entries.map((e) => [e.key, e.value]));
    const location = values.get('location');
    if (!location) throw new QuantLensError('INVALID_HEADER', 'external tensor without a location', { tensor, file: this.path });
    const file = this.resolveInside(location, tensor);
    const offset = parseExternalNumber(values.get('offset'), 0, 'offset', tensor, this.path);
    const length = parseExternalNumber(values.get('length'), size, 'length', tensor, this.path);
    if (length !== size) throw sizeMismatch(`external data length ${length}, shape needs ${size} bytes`, tensor, this.path);
    const fileSize = await this.externalFileSize(file, tensor);
    if (offset + length > fileSize) {
      throw new QuantLensError('TRUNCATED', `external data [${offset}, ${offset + length}) runs past the end of ${location} (${fileSize} bytes)`, {
        offset,
        tensor,
        file,
      });
    }
    return { file, byteOffset: offset, byteLength: length };
  }

  /** External data must stay inside the model's folder (no absolute paths, no `..`). */
  private resolveInside(location: string, tensor: string): string {
    const unsafe = () =>
      new QuantLensError('UNSAFE_PATH', `external data location ${JSON.stringify(location)} leaves the model's folder`, { tensor, file: this.path });
    if (location.includes('\0') || nodePath.isAbsolute(location) || nodePath.win32.isAbsolute(location)) throw unsafe();
    if (location.split(/[\\/]/).some((part) => part === '..')) throw unsafe();
    const resolved = nodePath.resolve(this.folder, location);
    const rel = nodePath.relative(this.folder, resolved);
    if (rel === '' || rel.startsWith('..') || nodePath.isAbsolute(rel)) throw unsafe();
    return resolved;
  }

  private async externalFileSize(file: string, tensor: string): Promise<number> {
    const known = this.externalFiles.get(file);
    if (known !== undefined) return known;
    if (this.externalFiles.size >= ONNX_MAX_EXTERNAL_FILES) {
      throw new QuantLensError('LIMIT_EXCEEDED', `more than ${ONNX_MAX_EXTERNAL_FILES} external data files`, { tensor, file: this.path });
    }
    if (!(await this.files.exists(file))) {
      throw new QuantLensError('MISSING_SHARD', `external data file ${nodePath.basename(file)} is missing`, { tensor, file });
    }
    const src = await this.files.open(file);
    const size = src.size;
    await src.close();
    this.externalFiles.set(file, size);
    return size;
  }
}

function sizeMismatch(message: string, tensor: string, file: string, offset?: number): QuantLensError {
  return new QuantLensError('SIZE_MISMATCH', message, { tensor, file, ...(offset !== undefined ? { offset } : {}) });
}

function parseExternalNumber(text: string | undefined, fallback: number, what: string, tensor: string, file: string): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new QuantLensError('INVALID_OFFSETS', `external data ${what} ${JSON.stringify(text)} is not a byte count`, { tensor, file });
  }
  return Number(text);
}

type FieldWire = NonNullable<TensorInfo['fieldWire']>;

function typedFieldWire(field: number, packed: boolean): FieldWire {
  if (field === TensorField.floatData) return packed ? 'packed-f32' : 'f32';
  if (field === TensorField.doubleData) return packed ? 'packed-f64' : 'f64';
  return packed ? 'packed-varint' : 'varint';
}

/** Cheap bounds on a typed field's length for `n` values (exact for fixed widths; decode checks varints exactly). */
function checkTypedFieldLength(wire: FieldWire, n: number, length: number, tensor: string, file: string, offset: number): void {
  const [min, max] =
    wire === 'packed-f32' ? [4 * n, 4 * n]
    : wire === 'packed-f64' ? [8 * n, 8 * n]
    : wire === 'f32' ? [5 * n, 9 * n]
    : wire === 'f64' ? [9 * n, 13 * n]
    : wire === 'packed-varint' ? [n, 10 * n]
    : [2 * n, 15 * n];
  if (length < min || length > max) {
    throw sizeMismatch(`typed field of ${length} bytes cannot hold ${n} values (${wire})`, tensor, file, offset);
  }
}

const VARINT_DTYPES: ReadonlySet<DType> = new Set(['I8', 'U8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'BOOL', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2']);

/**
 * The values of an 'onnx-typed-field' or 'onnx-attribute' tensor (whose `fieldBytes` are the
 * byteLength bytes at byteOffset of its file) as little-endian bytes of its dtype, as in raw_data.
 * 'raw' tensors are returned as they are. Typed fields hold FLOAT16/BF16/FLOAT8 as bit patterns,
 * INT8/UINT8/INT16/UINT16/BOOL widened to int32 varints: each value keeps its low bits.
 */
export function decodeOnnxFieldValues(tensor: TensorInfo, fieldBytes: Uint8Array): Uint8Array {
  const traits = DTYPES[tensor.dtype];
  const fail = (code: 'SIZE_MISMATCH' | 'INVALID_DTYPE', message: string) =>
    new QuantLensError(code, message, { tensor: tensor.name, file: tensor.file, offset: tensor.byteOffset });
  if (traits.blockSize !== 1) throw fail('INVALID_DTYPE', `${tensor.dtype} cannot be stored in an ONNX field`);
  const n = elementCount(tensor.shape);
  const width = traits.bytesPerBlock;
  if (tensor.encoding === 'raw') {
    if (fieldBytes.length !== n * width) throw fail('SIZE_MISMATCH', `${fieldBytes.length} bytes for ${n} ${tensor.dtype} values`);
    return fieldBytes;
  }
  if (tensor.encoding !== 'onnx-typed-field' && tensor.encoding !== 'onnx-attribute') {
    throw fail('INVALID_DTYPE', `encoding ${tensor.encoding} is not an ONNX field`);
  }
  const wire = tensor.fieldWire;
  const out = new Uint8Array(n * width);
  const copyFixed = (w: number) => {
    if (width !== w) throw fail('INVALID_DTYPE', `${tensor.dtype} values in a ${w * 8}-bit field`);
    if (fieldBytes.length !== n * w) throw fail('SIZE_MISMATCH', `${fieldBytes.length} bytes for ${n} ${tensor.dtype} values`);
    out.set(fieldBytes);
    return out;
  };
  switch (wire) {
    case 'packed-f32':
      if (tensor.dtype !== 'F32') throw fail('INVALID_DTYPE', `${tensor.dtype} values in a float field`);
      return copyFixed(4);
    case 'packed-f64':
      if (tensor.dtype !== 'F64') throw fail('INVALID_DTYPE', `${tensor.dtype} values in a double field`);
      return copyFixed(8);
    case 'packed-fixed32':
      return copyFixed(4);
    case 'packed-fixed64':
      return copyFixed(8);
    case 'f32':
    case 'f64':
      if (tensor.dtype !== (wire === 'f32' ? 'F32' : 'F64')) throw fail('INVALID_DTYPE', `${tensor.dtype} values in a ${wire} field`);
      return decodeUnpackedFixed(fieldBytes, wire === 'f32' ? 4 : 8, n, out, tensor, fail);
    case 'packed-varint':
    case 'varint':
      if (!VARINT_DTYPES.has(tensor.dtype)) throw fail('INVALID_DTYPE', `${tensor.dtype} values in a varint field`);
      return decodeVarints(fieldBytes, wire === 'varint', n, width, out, tensor, fail);
    default:
      throw fail('INVALID_DTYPE', `tensor has no ONNX field wire form`);
  }
}

type Fail = (code: 'SIZE_MISMATCH' | 'INVALID_DTYPE', message: string) => QuantLensError;

function cursorOver(bytes: Uint8Array, tensor: TensorInfo): WireCursor {
  // fileSize Infinity: running off these bytes is a malformed field (INVALID_PROTOBUF), not a short file.
  return new WireCursor(bytes, tensor.byteOffset, 0, bytes.length, tensor.byteOffset + bytes.length, { file: tensor.file, fileSize: Infinity });
}

/** A run of unpacked fixed-width fields: key, value, key, value, … all with the first key. */
function decodeUnpackedFixed(bytes: Uint8Array, w: 4 | 8, n: number, out: Uint8Array, tensor: TensorInfo, fail: Fail): Uint8Array {
  const cur = cursorOver(bytes, tensor);
  const expectedWire = w === 4 ? WireType.Fixed32 : WireType.Fixed64;
  let fieldNumber = -1;
  let i = 0;
  while (cur.pos < bytes.length) {
    const f = cur.field();
    if (f.wireType !== expectedWire || (fieldNumber !== -1 && f.fieldNumber !== fieldNumber)) {
      throw new QuantLensError('INVALID_PROTOBUF', `unexpected field ${f.fieldNumber} (wire type ${f.wireType}) in a value run`, {
        offset: f.start,
        tensor: tensor.name,
        file: tensor.file,
      });
    }
    fieldNumber = f.fieldNumber;
    if (i >= n) throw fail('SIZE_MISMATCH', `more than ${n} values`);
    out.set(bytes.subarray(f.offset - tensor.byteOffset, f.offset - tensor.byteOffset + w), i * w);
    cur.pos = f.offset + f.length - tensor.byteOffset;
    i++;
  }
  if (i !== n) throw fail('SIZE_MISMATCH', `${i} values, shape needs ${n}`);
  return out;
}

function decodeVarints(bytes: Uint8Array, withKeys: boolean, n: number, width: number, out: Uint8Array, tensor: TensorInfo, fail: Fail): Uint8Array {
  const view = new DataView(out.buffer);
  const cur = cursorOver(bytes, tensor);
  let fieldNumber = -1;
  let i = 0;
  while (cur.pos < bytes.length) {
    let bits: bigint;
    if (withKeys) {
      const f = cur.field();
      if (f.wireType !== WireType.Varint || (fieldNumber !== -1 && f.fieldNumber !== fieldNumber)) {
        throw new QuantLensError('INVALID_PROTOBUF', `unexpected field ${f.fieldNumber} (wire type ${f.wireType}) in a value run`, {
          offset: f.start,
          tensor: tensor.name,
          file: tensor.file,
        });
      }
      fieldNumber = f.fieldNumber;
      bits = f.bits;
    } else {
      bits = cur.varint();
    }
    if (i >= n) throw fail('SIZE_MISMATCH', `more than ${n} values`);
    if (width === 8) view.setBigUint64(i * 8, BigInt.asUintN(64, asInt64(bits)), true);
    else {
      const low = Number(bits & 0xffffffffn);
      if (width === 4) view.setUint32(i * 4, low, true);
      else if (width === 2) view.setUint16(i * 2, low & 0xffff, true);
      else out[i] = low & 0xff;
    }
    i++;
  }
  if (i !== n) throw fail('SIZE_MISMATCH', `${i} values, shape needs ${n}`);
  return out;
}
