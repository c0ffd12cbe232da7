/**
 * The parts of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto) QuantLens reads
 * and writes: field numbers per message and the TensorProto.DataType table.
 */
import type { DType } from '../../dtypes';

export const ModelField = {
  irVersion: 1,
  producerName: 2,
  producerVersion: 3,
  domain: 4,
  modelVersion: 5,
  docString: 6,
  graph: 7,
  opsetImport: 8,
  metadataProps: 14,
} as const;

export const OperatorSetIdField = { domain: 1, version: 2 } as const;
export const StringStringEntryField = { key: 1, value: 2 } as const;

export const GraphField = {
  node: 1,
  name: 2,
  initializer: 5,
  input: 11,
  output: 12,
  valueInfo: 13,
} as const;

export const NodeField = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;

export const AttributeField = {
  name: 1,
  f: 2,
  i: 3,
  s: 4,
  t: 5,
  g: 6,
  floats: 7,
  ints: 8,
  strings: 9,
  tensors: 10,
  graphs: 11,
  type: 20,
} as const;

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

export const TensorField = {
  dims: 1,
  dataType: 2,
  floatData: 4,
  int32Data: 5,
  int64Data: 7,
  name: 8,
  rawData: 9,
  doubleData: 10,
  uint64Data: 11,
  externalData: 13,
  dataLocation: 14,
} as const;

/** TensorProto fields that hold values (raw_data and the typed fields). */
export const TENSOR_VALUE_FIELDS: ReadonlySet<number> = new Set([
  TensorField.rawData,
  TensorField.floatData,
  TensorField.int32Data,
  TensorField.int64Data,
  TensorField.doubleData,
  TensorField.uint64Data,
]);

export const DATA_LOCATION_EXTERNAL = 1;

export const ValueInfoField = { name: 1, type: 2 } as const;
export const TypeField = { tensorType: 1 } as const;
export const TensorTypeField = { elemType: 1, shape: 2 } as const;
export const ShapeField = { dim: 1 } as const;
export const DimensionField = { value: 1, param: 2, denotation: 3 } as const;

/** TensorProto.DataType numbers. */
export const OnnxDataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
} as const;

const NAME_OF_DATA_TYPE = new Map<number, string>(Object.entries(OnnxDataType).map(([k, v]) => [v, k]));

/** The ONNX name of a data type number, or undefined when onnx.proto defines none. */
export function onnxDataTypeName(dataType: number): string | undefined {
  return NAME_OF_DATA_TYPE.get(dataType);
}

interface DataTypeMapping {
  dtype: DType;
  /** The TensorProto typed field that holds values of this type when raw_data is not used. */
  typedField: number;
}

const DTYPE_OF_DATA_TYPE = new Map<number, DataTypeMapping>([
  [OnnxDataType.FLOAT, { dtype: 'F32', typedField: TensorField.floatData }],
  [OnnxDataType.UINT8, { dtype: 'U8', typedField: TensorField.int32Data }],
  [OnnxDataType.INT8, { dtype: 'I8', typedField: TensorField.int32Data }],
  [OnnxDataType.UINT16, { dtype: 'U16', typedField: TensorField.int32Data }],
  [OnnxDataType.INT16, { dtype: 'I16', typedField: TensorField.int32Data }],
  [OnnxDataType.INT32, { dtype: 'I32', typedField: TensorField.int32Data }],
  [OnnxDataType.INT64, { dtype: 'I64', typedField: TensorField.int64Data }],
  [OnnxDataType.BOOL, { dtype: 'BOOL', typedField: TensorField.int32Data }],
  [OnnxDataType.FLOAT16, { dtype: 'F16', typedField: TensorField.int32Data }],
  [OnnxDataType.DOUBLE, { dtype: 'F64', typedField: TensorField.doubleData }],
  [OnnxDataType.UINT32, { dtype: 'U32', typedField: TensorField.uint64Data }],
  [OnnxDataType.UINT64, { dtype: 'U64', typedField: TensorField.uint64Data }],
  [OnnxDataType.BFLOAT16, { dtype: 'BF16', typedField: TensorField.int32Data }],
  [OnnxDataType.FLOAT8E4M3FN, { dtype: 'F8_E4M3', typedField: TensorField.int32Data }],
  [OnnxDataType.FLOAT8E5M2, { dtype: 'F8_E5M2', typedField: TensorField.int32Data }],
]);

/** QuantLens dtype and typed field for an ONNX data type; undefined for types QuantLens has no dtype for. */
export function dtypeOfOnnxDataType(dataType: number): DataTypeMapping | undefined {
  return DTYPE_OF_DATA_TYPE.get(dataType);
}

/** The ONNX data type number of a QuantLens dtype (for writing new tensors). */
export function onnxDataTypeOf(dtype: DType): number | undefined {
  for (const [dataType, m] of DTYPE_OF_DATA_TYPE) if (m.dtype === dtype) return dataType;
  return undefined;
}
