export { onnxReader, decodeOnnxFieldValues } from './reader';
export {
  readOnnxModel,
  emptyGraph,
  type ByteRange,
  type ExtraField,
  type OnnxAttribute,
  type OnnxAttributeValueLocation,
  type OnnxDim,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxOpsetImport,
  type OnnxTensor,
  type OnnxTensorData,
  type OnnxType,
  type OnnxValueInfo,
  type ReadOnnxModelOptions,
  type StringEntry,
} from './graph';
export { encodeOnnxModel, NO_SOURCE, onnxAttribute, onnxModelBuilder, onnxNode, onnxTensor, onnxValueInfo, writeOnnxModel } from './encode';
export { AttributeType, dtypeOfOnnxDataType, OnnxDataType, onnxDataTypeName, onnxDataTypeOf } from './schema';
