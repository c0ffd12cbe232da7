/**
 * The formats a sensitivity sweep measures and a plan chooses from: GGUF block types for GGUF targets,
 * RTN schemes (the safetensors writers' grammar) for safetensors targets. For each: whether it applies to
 * a tensor's shape and how many bytes the tensor takes in it.
 */
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError } from '../errors';
import { isGgufQuantType, type GgufQuantType } from '../quant/ggml-quantize';
import { formatScheme, parseScheme, type QuantScheme } from '../quant/scheme';

export type QuantTarget = 'gguf' | 'safetensors';

export type QuantFormat =
  | { name: GgufQuantType; target: 'gguf'; blockSize: number; bytesPerBlock: number }
  | { name: string; target: 'safetensors'; scheme: QuantScheme };

/** Candidates of a default GGUF sweep; `GGUF_FALLBACK_CANDIDATES` join them for rows that do not fit 256. */
export const GGUF_DEFAULT_CANDIDATES: readonly GgufQuantType[] = ['Q8_0', 'Q6_K', 'Q5_K', 'Q4_K', 'Q3_K', 'Q2_K', 'IQ4_XS'];
export const GGUF_FALLBACK_CANDIDATES: readonly GgufQuantType[] = ['Q5_0', 'Q4_0'];
export const SAFETENSORS_DEFAULT_CANDIDATES: readonly string[] = ['int8-ch-sym', 'int4-g128-sym', 'int4-g128-asym', 'fp8-e4m3-ch', 'nf4-g64'];

/** Bytes of one scale: int schemes store them in the model's 16-bit dtype (compressed-tensors), FP8 in f32 (scheme.ts). */
const INT_SCALE_BYTES = 2;
const FP8_SCALE_BYTES = 4;
/** bitsandbytes stores NF4 absmax in f32, or as u8 with an f32 per 256 absmax values when double-quantized. */
const NF4_ABSMAX_BYTES = 4;
const NF4_DQ_BLOCK = 256;

/** The format named `name` for `target`; throws a USAGE error naming the valid forms otherwise. */
export function quantFormat(name: string, target: QuantTarget): QuantFormat {
  if (target === 'gguf') {
    const upper = name.toUpperCase();
    if (isGgufQuantType(upper)) return { name: upper, target, blockSize: DTYPES[upper].blockSize, bytesPerBlock: DTYPES[upper].bytesPerBlock };
    throw new QuantLensError('USAGE', `${name} is not a GGUF type QuantLens quantizes (e.g. Q8_0, Q6_K, Q5_K, Q4_K, Q3_K, Q2_K, IQ4_XS, Q5_0, Q4_0)`);
  }
  const scheme = parseScheme(name);
  return { name: formatScheme(scheme), target, scheme };
}

/** The candidate formats of a target, in the order results list them. */
export function defaultFormats(target: QuantTarget): QuantFormat[] {
  const names = target === 'gguf' ? [...GGUF_DEFAULT_CANDIDATES, ...GGUF_FALLBACK_CANDIDATES] : SAFETENSORS_DEFAULT_CANDIDATES;
  return names.map((n) => quantFormat(n, target));
}

/** Elements along a row that must divide the row length (1 when any length works). */
export function rowMultiple(f: QuantFormat): number {
  if (f.target === 'gguf') return f.blockSize;
  const s = f.scheme;
  if (s.kind === 'nf4') return s.blockSize;
  return s.granularity.kind === 'group' ? s.granularity.size : 1;
}

/** Can `f` store a tensor of this shape? Quantized tensors need ≥ 2 dims and rows that are whole blocks or groups. */
export function formatApplies(f: QuantFormat, shape: readonly number[]): boolean {
  if (shape.length < 2) return false;
  const cols = shape[shape.length - 1];
  return cols > 0 && cols % rowMultiple(f) === 0;
}

/** Bytes `rows` × `cols` values take in `f` (rows × cols must be a shape `formatApplies` accepts). */
export function formatBytes(f: QuantFormat, rows: number, cols: number): number {
  if (f.target === 'gguf') return rows * (cols / f.blockSize) * f.bytesPerBlock;
  const s = f.scheme;
  const n = rows * cols;
  if (s.kind === 'nf4') {
    const blocks = n / s.blockSize;
    const absmax = s.doubleQuant ? blocks + Math.ceil(blocks / NF4_DQ_BLOCK) * NF4_ABSMAX_BYTES : blocks * NF4_ABSMAX_BYTES;
    return n / 2 + absmax;
  }
  const g = s.granularity;
  const scales = g.kind === 'tensor' ? 1 : g.kind === 'channel' ? rows : rows * (cols / g.size);
  const bits = s.kind === 'int' ? s.bits : 8;
  const zeroPoints = s.kind === 'int' && !s.symmetric ? Math.ceil((scales * bits) / 8) : 0;
  return Math.ceil((n * bits) / 8) + scales * (s.kind === 'fp8' ? FP8_SCALE_BYTES : INT_SCALE_BYTES) + zeroPoints;
}

/** Nominal bits per weight of a format on a long row (block or group overhead included). */
export function nominalBitsPerWeight(f: QuantFormat): number {
  const cols = Math.max(4096, rowMultiple(f) * 16);
  return (formatBytes(f, 1, cols) * 8) / cols;
}

/**
 * llama-quantize's fallback when rows do not fit a type's block (llama-quant.cpp tensor_type_fallback),
 * used for the uniform-format points of the trade-off curve.
 */
export const GGUF_ROW_FALLBACK: Partial<Record<GgufQuantType, DType>> = {
  Q2_K: 'Q4_0',
  Q3_K: 'Q4_0',
  Q4_K: 'Q5_0',
  Q5_K: 'Q5_1',
  Q6_K: 'Q8_0',
  IQ4_XS: 'IQ4_NL',
  TQ1_0: 'Q4_0',
  TQ2_0: 'Q4_0',
};

/**
 * Formats measured on a tensor of this shape: those that apply; the GGUF fallback types only where
 * no 256-block type fits, unless the formats were asked for explicitly.
 */
export function candidateFormatsFor(shape: readonly number[], formats: readonly QuantFormat[], explicit: boolean): QuantFormat[] {
  const applies = formats.filter((f) => formatApplies(f, shape));
  if (explicit) return applies;
  const fallbacks = new Set<string>(GGUF_FALLBACK_CANDIDATES);
  const kQuantFits = applies.some((f) => f.target === 'gguf' && !fallbacks.has(f.name) && rowMultiple(f) === 256);
  return applies.filter((f) => !(kQuantFits && fallbacks.has(f.name)));
}
