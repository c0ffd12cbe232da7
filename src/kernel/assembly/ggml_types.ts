// ggml_type ids (ggml.h `enum ggml_type`), the same as src/core/dtypes.ts ggmlId: the kernels'
// `ggmlType` arguments (dequant.ts, quant_ggml.ts).
export const Q4_0: i32 = 2, Q4_1: i32 = 3, Q5_0: i32 = 6, Q5_1: i32 = 7, Q8_0: i32 = 8;
export const Q2_K: i32 = 10, Q3_K: i32 = 11, Q4_K: i32 = 12, Q5_K: i32 = 13, Q6_K: i32 = 14, Q8_K: i32 = 15;
export const IQ2_XXS: i32 = 16, IQ2_XS: i32 = 17, IQ3_XXS: i32 = 18, IQ1_S: i32 = 19, IQ4_NL: i32 = 20;
export const IQ3_S: i32 = 21, IQ2_S: i32 = 22, IQ4_XS: i32 = 23, IQ1_M: i32 = 29;
export const TQ1_0: i32 = 34, TQ2_0: i32 = 35, MXFP4: i32 = 39;
