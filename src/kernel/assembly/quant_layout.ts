// Scratch layout of the quantizer kernels: interleaved arrays of v128 (see quant_common.ts),
// at byte offsets from the `scratch` pointer the caller passes (QUANT_SCRATCH_BYTES long).
export const SX: usize = 0; // 256 source values
export const SW: usize = 4096; // 256 weights
export const SL: usize = 8192; // 256 levels
export const SAUX: usize = 12288; // 256 candidate levels
export const SSCALES: usize = 16384; // 16 sub-block scales
export const SMINS: usize = 16640; // 16 sub-block mins
export const SSUMW: usize = 16896; // 16 sub-block weight sums
export const SLS: usize = 17152; // 16 quantized scales
export const SLM: usize = 17408; // 16 quantized mins
export const STMP: usize = 17664; // 16 temporaries
export const QUANT_SCRATCH_BYTES: usize = 17920;

@inline export function at(base: usize, i: i32): usize {
  return base + (<usize>i << 4);
}
