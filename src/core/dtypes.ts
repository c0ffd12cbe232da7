/**
 * The one traits table for every element type QuantLens meets: plain types under their
 * safetensors names, block types under ggml's names (ggml.c `type_traits[]`, ggml-common.h block structs).
 */

export type DType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL'
  | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0' | 'Q8_1'
  | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'Q8_K'
  | 'IQ2_XXS' | 'IQ2_XS' | 'IQ3_XXS' | 'IQ1_S' | 'IQ4_NL' | 'IQ3_S' | 'IQ2_S' | 'IQ4_XS' | 'IQ1_M'
  | 'TQ1_0' | 'TQ2_0' | 'MXFP4'
  // quantized layouts stored as several tensors, presented as one logical tensor (TensorInfo.quantized,
  // readers/quantized-layouts.ts, readers/onnx/quantized.ts); their bytes live in the parts
  | 'CT_INT' | 'CT_FP8' | 'GPTQ' | 'AWQ' | 'BNB_NF4' | 'BNB_FP4' | 'BNB_INT8' | 'ONNX_QDQ' | 'MATMUL_NBITS';

/** `layout`: a logical tensor of a quantized layout; size arithmetic goes through its parts, never the traits. */
export type DTypeKind = 'float' | 'int' | 'uint' | 'bool' | 'block' | 'layout';

export interface DTypeTraits {
  kind: DTypeKind;
  /** Elements per block (1 for plain types). */
  blockSize: number;
  /** Bytes per block. */
  bytesPerBlock: number;
  /** ggml_type id in GGUF files, when GGUF can store it. */
  ggmlId?: number;
}

export const DTYPES = {
  F64: { kind: 'float', blockSize: 1, bytesPerBlock: 8, ggmlId: 28 },
  F32: { kind: 'float', blockSize: 1, bytesPerBlock: 4, ggmlId: 0 },
  F16: { kind: 'float', blockSize: 1, bytesPerBlock: 2, ggmlId: 1 },
  BF16: { kind: 'float', blockSize: 1, bytesPerBlock: 2, ggmlId: 30 },
  F8_E4M3: { kind: 'float', blockSize: 1, bytesPerBlock: 1 },
  F8_E5M2: { kind: 'float', blockSize: 1, bytesPerBlock: 1 },
  I64: { kind: 'int', blockSize: 1, bytesPerBlock: 8, ggmlId: 27 },
  I32: { kind: 'int', blockSize: 1, bytesPerBlock: 4, ggmlId: 26 },
  I16: { kind: 'int', blockSize: 1, bytesPerBlock: 2, ggmlId: 25 },
  I8: { kind: 'int', blockSize: 1, bytesPerBlock: 1, ggmlId: 24 },
  U64: { kind: 'uint', blockSize: 1, bytesPerBlock: 8 },
  U32: { kind: 'uint', blockSize: 1, bytesPerBlock: 4 },
  U16: { kind: 'uint', blockSize: 1, bytesPerBlock: 2 },
  U8: { kind: 'uint', blockSize: 1, bytesPerBlock: 1 },
  BOOL: { kind: 'bool', blockSize: 1, bytesPerBlock: 1 },
  Q4_0: { kind: 'block', blockSize: 32, bytesPerBlock: 18, ggmlId: 2 },
  Q4_1: { kind: 'block', blockSize: 32, bytesPerBlock: 20, ggmlId: 3 },
  Q5_0: { kind: 'block', blockSize: 32, bytesPerBlock: 22, ggmlId: 6 },
  Q5_1: { kind: 'block', blockSize: 32, bytesPerBlock: 24, ggmlId: 7 },
  Q8_0: { kind: 'block', blockSize: 32, bytesPerBlock: 34, ggmlId: 8 },
  Q8_1: { kind: 'block', blockSize: 32, bytesPerBlock: 36, ggmlId: 9 },
  Q2_K: { kind: 'block', blockSize: 256, bytesPerBlock: 84, ggmlId: 10 },
  Q3_K: { kind: 'block', blockSize: 256, bytesPerBlock: 110, ggmlId: 11 },
  Q4_K: { kind: 'block', blockSize: 256, bytesPerBlock: 144, ggmlId: 12 },
  Q5_K: { kind: 'block', blockSize: 256, bytesPerBlock: 176, ggmlId: 13 },
  Q6_K: { kind: 'block', blockSize: 256, bytesPerBlock: 210, ggmlId: 14 },
  Q8_K: { kind: 'block', blockSize: 256, bytesPerBlock: 292, ggmlId: 15 },
  IQ2_XXS: { kind: 'block', blockSize: 256, bytesPerBlock: 66, ggmlId: 16 },
  IQ2_XS: { kind: 'block', blockSize: 256, bytesPerBlock: 74, ggmlId: 17 },
  IQ3_XXS: { kind: 'block', blockSize: 256, bytesPerBlock: 98, ggmlId: 18 },
  IQ1_S: { kind: 'block', blockSize: 256, bytesPerBlock: 50, ggmlId: 19 },
  IQ4_NL: { kind: 'block', blockSize: 32, bytesPerBlock: 18, ggmlId: 20 },
  IQ3_S: { kind: 'block', blockSize: 256, bytesPerBlock: 110, ggmlId: 21 },
  IQ2_S: { kind: 'block', blockSize: 256, bytesPerBlock: 82, ggmlId: 22 },
  IQ4_XS: { kind: 'block', blockSize: 256, bytesPerBlock: 136, ggmlId: 23 },
  IQ1_M: { kind: 'block', blockSize: 256, bytesPerBlock: 56, ggmlId: 29 },
  TQ1_0: { kind: 'block', blockSize: 256, bytesPerBlock: 54, ggmlId: 34 },
  TQ2_0: { kind: 'block', blockSize: 256, bytesPerBlock: 66, ggmlId: 35 },
  MXFP4: { kind: 'block', blockSize: 32, bytesPerBlock: 17, ggmlId: 39 },
  CT_INT: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
  CT_FP8: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
  GPTQ: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
  AWQ: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
  BNB_NF4: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
  BNB_FP4: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
  BNB_INT8: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
  ONNX_QDQ: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
  MATMUL_NBITS: { kind: 'layout', blockSize: 1, bytesPerBlock: 0 },
} as const satisfies Record<DType, DTypeTraits>;

export const ALL_DTYPES = Object.keys(DTYPES) as DType[];

export function isDType(name: string): name is DType {
  return Object.prototype.hasOwnProperty.call(DTYPES, name);
}

export function dtypeTraits(dtype: DType): DTypeTraits {
  return DTYPES[dtype];
}

const BY_GGML_ID = new Map<number, DType>(
  ALL_DTYPES.flatMap((d) => {
    const id = dtypeTraits(d).ggmlId;
    return id === undefined ? [] : [[id, d] as const];
  }),
);

export function dtypeFromGgmlId(id: number): DType | undefined {
  return BY_GGML_ID.get(id);
}

/** Bits per element of the type itself (block overhead included), e.g. Q4_0 → 4.5. */
export function bitsPerElement(dtype: DType): number {
  const t = DTYPES[dtype];
  return (t.bytesPerBlock * 8) / t.blockSize;
}

/**
 * Bytes for `elements` values of `dtype`, in bigint so a file's shape cannot overflow it.
 * Returns null when the element count is not a whole number of blocks.
 */
export function byteSizeOf(dtype: DType, elements: bigint): bigint | null {
  const t = DTYPES[dtype];
  const bs = BigInt(t.blockSize);
  if (elements % bs !== 0n) return null;
  return (elements / bs) * BigInt(t.bytesPerBlock);
}
