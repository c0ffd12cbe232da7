/**
 * llama-quantize's file types (presets) and its per-tensor type choice, so that a GGUF we quantize
 * is the file llama-quantize writes. Source: llama.cpp `src/llama-quant.cpp` (llama_tensor_get_type,
 * tensor_type_fallback, tensor_allows_quantization, llama_ftype_get_default_type) and `include/llama.h`
 * (llama_ftype values, written to `general.file_type`).
 */
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError } from '../errors';

/** llama_ftype: the preset names llama-quantize accepts, with their `general.file_type` values. */
export const LLAMA_FTYPES = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9,
  Q2_K: 10, Q3_K_S: 11, Q3_K_M: 12, Q3_K_L: 13, Q4_K_S: 14, Q4_K_M: 15, Q5_K_S: 16, Q5_K_M: 17, Q6_K: 18,
  IQ2_XXS: 19, IQ2_XS: 20, Q2_K_S: 21, IQ3_XS: 22, IQ3_XXS: 23, IQ1_S: 24, IQ4_NL: 25, IQ3_S: 26, IQ3_M: 27,
  IQ2_S: 28, IQ2_M: 29, IQ4_XS: 30, IQ1_M: 31, BF16: 32, TQ1_0: 36, TQ2_0: 37, MXFP4_MOE: 38,
} as const;

export type LlamaFtype = keyof typeof LLAMA_FTYPES;

/** The tensor type a preset starts from (llama_ftype_get_default_type). */
export const FTYPE_DEFAULT_TYPE: Record<LlamaFtype, DType> = {
  F32: 'F32', F16: 'F16', BF16: 'BF16', Q4_0: 'Q4_0', Q4_1: 'Q4_1', Q5_0: 'Q5_0', Q5_1: 'Q5_1', Q8_0: 'Q8_0',
  Q2_K: 'Q2_K', Q2_K_S: 'Q2_K', IQ3_XS: 'IQ3_S', Q3_K_S: 'Q3_K', Q3_K_M: 'Q3_K', Q3_K_L: 'Q3_K',
  Q4_K_S: 'Q4_K', Q4_K_M: 'Q4_K', Q5_K_S: 'Q5_K', Q5_K_M: 'Q5_K', Q6_K: 'Q6_K', TQ1_0: 'TQ1_0', TQ2_0: 'TQ2_0',
  IQ2_XXS: 'IQ2_XXS', IQ2_XS: 'IQ2_XS', IQ2_S: 'IQ2_XS', IQ2_M: 'IQ2_S', IQ3_XXS: 'IQ3_XXS', IQ1_S: 'IQ1_S',
  IQ1_M: 'IQ1_M', IQ4_NL: 'IQ4_NL', IQ4_XS: 'IQ4_XS', IQ3_S: 'IQ3_S', IQ3_M: 'IQ3_S', MXFP4_MOE: 'MXFP4',
};

/** A plain ggml type given as `--type` maps to the preset llama-quantize writes for it. */
export function ftypeForType(t: string): LlamaFtype | undefined {
  const upper = t.toUpperCase();
  if (upper in LLAMA_FTYPES) return upper as LlamaFtype;
  const aliases: Record<string, LlamaFtype> = { Q4_K: 'Q4_K_M', Q5_K: 'Q5_K_M', Q3_K: 'Q3_K_M', MXFP4: 'MXFP4_MOE' };
  return aliases[upper];
}

type Category = 'token_embd' | 'attn_q' | 'attn_k' | 'attn_v' | 'attn_qkv' | 'attn_kv_b' | 'attn_output' | 'ffn_up' | 'ffn_gate' | 'ffn_down' | 'output' | 'other';

function categoryOf(name: string): Category {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight') return 'token_embd';
  const contains: Array<[string, Category]> = [
    ['attn_qkv.weight', 'attn_qkv'], ['attn_kv_b.weight', 'attn_kv_b'], ['attn_v.weight', 'attn_v'], ['attn_k.weight', 'attn_k'],
    ['attn_q.weight', 'attn_q'], ['attn_output.weight', 'attn_output'], ['ffn_up', 'ffn_up'], ['ffn_gate', 'ffn_gate'], ['ffn_down', 'ffn_down'],
  ];
  for (const [needle, c] of contains) if (name.includes(needle)) return c;
  return 'other';
}

const isAttnVLike = (c: Category) => c === 'attn_v' || c === 'attn_qkv' || c === 'attn_kv_b';

/** Names llama-quantize never quantizes (small or special tensors of other architectures included). */
const NEVER_QUANTIZED = [
  '_norm.weight', 'ffn_gate_inp.weight', 'ffn_gate_tid2eid.weight', 'altup', 'laurel', 'per_layer_model_proj', 'ssm_conv1d',
  'shortconv.conv.weight', 'indexer.k_proj.weight', 'indexer.q_proj.weight', 'time_mix_first.weight', 'time_mix_w0.weight',
  'time_mix_w1.weight', 'time_mix_w2.weight', 'time_mix_v0.weight', 'time_mix_v1.weight', 'time_mix_v2.weight', 'time_mix_a0.weight',
  'time_mix_a1.weight', 'time_mix_a2.weight', 'time_mix_g1.weight', 'time_mix_g2.weight', 'time_mix_decay_w1.weight',
  'time_mix_decay_w2.weight', 'time_mix_lerp_fused.weight', 'attn_rel_b.weight', '.position_embd', 'sam.pos_embd', 'sam.neck.',
  'sam.net_', '.rel_pos', '.patch_embd', '.patch_merger', 'a.rvq.codebook', 'mm.a.code_embd',
];

export interface TensorForTypeChoice {
  name: string;
  dtype: DType;
  /** Row-major, outermost first: the last entry is ggml's ne[0] (the row length). */
  shape: number[];
}

export interface TypeChoiceOptions {
  ftype: LlamaFtype;
  /** `--pure`: every quantizable tensor gets the preset's default type. */
  pure?: boolean;
  /** `--tensor-type regex=type`, first match wins (llama.cpp uses std::regex_search: unanchored). */
  tensorTypes?: Array<{ pattern: RegExp; type: DType }>;
  outputTensorType?: DType;
  tokenEmbeddingType?: DType;
  hasImatrix?: boolean;
  /** n_head / n_head_kv (grouped-query factor). */
  nGqa?: number;
  nExpert?: number;
  /** `{arch}.block_count`; llama-quantize counts ffn layers from it. */
  nLayer: number;
  arch?: string;
  /** Is this the 70B Llama (80 layers, GQA)? Bumps attn_v. */
  is70B?: boolean;
  /**
   * The names are not llama.cpp's (a safetensors tensor `w`, an ONNX initializer): quantize any
   * tensor of two or more dimensions instead of requiring llama.cpp's `…weight` names.
   */
  foreignNames?: boolean;
}

export interface TypeChoice {
  name: string;
  type: DType;
  /** Set when the chosen type did not fit the row length and a fallback was taken. */
  fallback?: { from: DType; reason: string };
  quantize: boolean;
}

const LOW_BIT_IQ: ReadonlySet<LlamaFtype> = new Set(['IQ2_XXS', 'IQ2_XS', 'IQ1_S', 'IQ2_S', 'IQ2_M', 'IQ1_M']);

function isQuantizedType(t: DType): boolean {
  return DTYPES[t].kind === 'block';
}

/** Per-tensor types for a whole model, in the order given (the order decides the attn_v/ffn counters). */
export function chooseLlamaTypes(tensors: TensorForTypeChoice[], o: TypeChoiceOptions): TypeChoice[] {
  const defaultType = FTYPE_DEFAULT_TYPE[o.ftype];
  const categories = tensors.map((t) => categoryOf(t.name));
  const state = {
    nAttnV: categories.filter(isAttnVLike).length,
    nLayer: o.nLayer,
    iAttnV: 0,
    iFfnDown: 0,
    iFfnGate: 0,
    iFfnUp: 0,
    tied: !categories.includes('output'),
  };
  return tensors.map((t, i) => {
    const category = categories[i];
    if (!allowsQuantization(t, o.foreignNames === true)) return { name: t.name, type: t.dtype, quantize: false };
    if (o.tokenEmbeddingType && category === 'token_embd') return withFallback(t, o.tokenEmbeddingType);
    if (o.outputTensorType && category === 'output') return withFallback(t, o.outputTensorType);
    let type = defaultType;
    if (!isQuantizedType(defaultType)) return { name: t.name, type, quantize: type !== t.dtype };
    let manual = false;
    for (const tt of o.tensorTypes ?? []) {
      if (tt.pattern.test(t.name)) {
        type = tt.type;
        manual = true;
        break;
      }
    }
    if (!manual && !o.pure) type = presetType(t, type, category, o, state);
    return withFallback(t, type);
  });
}

function allowsQuantization(t: TensorForTypeChoice, foreignNames: boolean): boolean {
  if (t.shape.length < 2) return false;
  if (foreignNames) return DTYPES[t.dtype].kind === 'float' || DTYPES[t.dtype].kind === 'block';
  if (!t.name.endsWith('weight')) return false;
  if (t.name === 'position_embd.weight' || t.name === 'token_types.weight') return false;
  return !NEVER_QUANTIZED.some((n) => t.name.includes(n));
}

/**
 * When the row length does not fit the chosen type's block, llama-quantize falls back
 * (tensor_type_fallback). Where it gives up (no fallback defined, e.g. Q8_0 on rows of 172) we
 * fall back to F16 as its own last resort does, and say so.
 */
function withFallback(t: TensorForTypeChoice, type: DType): TypeChoice {
  const ncols = t.shape[t.shape.length - 1];
  const fits = (d: DType) => ncols % DTYPES[d].blockSize === 0;
  if (fits(type)) return { name: t.name, type, quantize: type !== t.dtype };
  const next: Partial<Record<DType, DType>> = {
    IQ1_S: 'IQ4_NL', IQ1_M: 'IQ4_NL', IQ2_XXS: 'IQ4_NL', IQ2_XS: 'IQ4_NL', IQ2_S: 'IQ4_NL', IQ3_XXS: 'IQ4_NL', IQ3_S: 'IQ4_NL', IQ4_XS: 'IQ4_NL',
    Q2_K: 'Q4_0', Q3_K: 'Q4_0', TQ1_0: 'Q4_0', TQ2_0: 'Q4_0', Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0',
  };
  let chosen = next[type];
  let reason = `rows of ${ncols} are not a multiple of ${type}'s block of ${DTYPES[type].blockSize}`;
  if (chosen === undefined || !fits(chosen)) {
    reason += chosen === undefined ? '; llama.cpp defines no fallback for it' : `, nor of ${chosen}'s`;
    chosen = 'F16';
  }
  return { name: t.name, type: chosen, fallback: { from: type, reason }, quantize: chosen !== t.dtype };
}

function useMoreBits(i: number, n: number): boolean {
  return i < Math.trunc(n / 8) || i >= Math.trunc((7 * n) / 8) || (i - Math.trunc(n / 8)) % 3 === 2;
}

interface PresetState {
  nAttnV: number;
  nLayer: number;
  iAttnV: number;
  iFfnDown: number;
  iFfnGate: number;
  iFfnUp: number;
  tied: boolean;
}

/** llama_tensor_get_type_impl: the preset's mix (more bits where quantization hurts most). */
function presetType(t: TensorForTypeChoice, start: DType, category: Category, o: TypeChoiceOptions, s: PresetState): DType {
  const f = o.ftype;
  const gqa = o.nGqa ?? 1;
  const nExpert = Math.max(1, o.nExpert ?? 1);
  const falcon = o.arch === 'falcon';
  let type = start;
  const layerOf = (counter: number): number => {
    if (nExpert <= 1) return counter;
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (!m) throw new QuantLensError('UNSUPPORTED', `cannot tell the layer of ${t.name}`, { tensor: t.name });
    return Number(m[1]);
  };
  const n = s.nLayer;
  const div = (a: number, b: number) => Math.trunc(a / b);

  if (category === 'output' || (s.tied && category === 'token_embd')) {
    const nx = t.shape[t.shape.length - 1];
    if (f === 'MXFP4_MOE') type = 'Q8_0';
    else if (falcon || nx % DTYPES[type].blockSize !== 0) type = 'Q8_0';
    else if (['IQ2_XXS', 'IQ2_XS', 'IQ3_XXS', 'IQ1_S', 'IQ2_S', 'IQ2_M', 'IQ1_M'].includes(f)) type = 'Q5_K';
    else if (type !== 'Q8_0') type = 'Q6_K';
  } else if (f === 'MXFP4_MOE') {
    type = t.shape.length >= 3 && t.shape[t.shape.length - 3] > 1 ? 'MXFP4' : 'Q8_0';
  } else if (category === 'token_embd') {
    if (['IQ2_XXS', 'IQ2_XS', 'IQ1_S', 'IQ1_M'].includes(f)) type = 'Q2_K';
    else if (f === 'IQ2_S' || f === 'IQ2_M' || f === 'IQ3_XXS') type = 'IQ3_S';
    else if (f === 'TQ1_0' || f === 'TQ2_0') type = 'Q4_K';
  } else if (LOW_BIT_IQ.has(f)) {
    if (isAttnVLike(category)) {
      if (gqa >= 4 || nExpert >= 4) type = 'Q4_K';
      else type = f === 'IQ2_S' || f === 'IQ2_M' ? 'IQ3_S' : 'Q2_K';
      s.iAttnV++;
    } else if (nExpert === 8 && category === 'attn_k') {
      type = 'Q4_K';
    } else if (category === 'ffn_down') {
      if (s.iFfnDown < div(n, 8)) type = f === 'IQ2_S' || f === 'IQ2_M' ? 'IQ3_S' : 'Q2_K';
      s.iFfnDown++;
    } else if (category === 'attn_output') {
      if (nExpert === 8) type = 'Q5_K';
      else if (f === 'IQ1_S' || f === 'IQ1_M') type = 'IQ2_XXS';
      else if (f === 'IQ2_S' || f === 'IQ2_M') type = 'IQ3_S';
    }
  } else if (isAttnVLike(category)) {
    // attn_qkv counts as attn_v here, as in llama.cpp (whose later attn_qkv branch is unreachable).
    if (f === 'Q2_K') type = gqa >= 4 ? 'Q4_K' : 'Q3_K';
    else if (f === 'Q2_K_S' && gqa >= 4) type = 'Q4_K';
    else if (f === 'IQ3_XXS') type = gqa >= 4 ? 'Q4_K' : !o.hasImatrix ? 'IQ3_S' : 'IQ3_XXS';
    else if ((f === 'IQ3_XS' || f === 'IQ3_S') && gqa >= 4) type = 'Q4_K';
    else if (f === 'IQ3_M') type = 'Q4_K';
    else if (f === 'Q3_K_M') type = s.iAttnV < 2 ? 'Q5_K' : 'Q4_K';
    else if (f === 'Q3_K_L') type = 'Q5_K';
    else if ((f === 'IQ4_NL' || f === 'IQ4_XS') && gqa >= 4) type = 'Q5_K';
    else if ((f === 'Q4_K_M' || f === 'Q5_K_M') && useMoreBits(s.iAttnV, s.nAttnV)) type = 'Q6_K';
    else if (f === 'Q4_K_S' && s.iAttnV < 4) type = 'Q5_K';
    if (o.is70B && (type === 'Q3_K' || type === 'Q4_K')) type = 'Q5_K';
    if (nExpert === 8) type = 'Q8_0';
    s.iAttnV++;
  } else if (category === 'attn_k') {
    if (nExpert === 8) type = 'Q8_0';
    else if (f === 'IQ3_XS') type = 'IQ3_XXS';
    else if (f === 'IQ3_XXS') type = 'IQ2_S';
  } else if (category === 'attn_q') {
    if (f === 'IQ3_XS') type = 'IQ3_XXS';
    else if (f === 'IQ3_XXS') type = 'IQ2_S';
  } else if (category === 'ffn_down') {
    const i = layerOf(s.iFfnDown);
    if (f === 'Q2_K') type = 'Q3_K';
    else if (f === 'Q2_K_S') {
      if (i < div(n, 8)) type = 'Q4_K';
    } else if (f === 'IQ3_XXS' && !o.hasImatrix) type = i < div(n, 8) ? 'Q4_K' : 'Q3_K';
    else if (f === 'Q3_K_M') type = i < div(n, 16) ? 'Q5_K' : !falcon || useMoreBits(i, n) ? 'Q4_K' : 'Q3_K';
    else if (f === 'IQ3_M' && (i < div(n, 8) || (nExpert === 8 && useMoreBits(i, n)))) type = 'Q4_K';
    else if (f === 'Q3_K_L') type = falcon ? 'Q4_K' : 'Q5_K';
    else if (f === 'Q4_K_M') {
      if (falcon) type = i < div(n, 16) ? 'Q6_K' : useMoreBits(i, n) ? 'Q5_K' : 'Q4_K';
      else if (useMoreBits(i, n)) type = 'Q6_K';
    } else if (i < div(n, 8) && (f === 'IQ4_NL' || f === 'IQ4_XS') && !o.hasImatrix) type = 'Q5_K';
    else if (f === 'Q5_K_M' && useMoreBits(i, n)) type = 'Q6_K';
    else if (f === 'Q4_K_S' && !falcon && i < div(n, 8)) type = 'Q5_K';
    else if ((f === 'Q4_0' || f === 'Q5_0') && o.hasImatrix && i < div(n, 8)) type = f === 'Q4_0' ? 'Q4_1' : 'Q5_1';
    s.iFfnDown++;
  } else if (category === 'attn_output') {
    if (!falcon) {
      if (nExpert === 8) {
        if (['Q2_K', 'IQ3_XS', 'IQ3_XXS', 'Q3_K_S', 'Q3_K_M', 'IQ4_NL', 'Q4_K_S', 'Q4_K_M', 'IQ3_S', 'IQ3_M', 'IQ4_XS'].includes(f)) type = 'Q5_K';
      } else if (f === 'Q2_K') type = 'Q3_K';
      else if (f === 'IQ3_XXS') type = 'IQ3_S';
      else if (f === 'Q3_K_M') type = 'Q4_K';
      else if (f === 'Q3_K_L') type = 'Q5_K';
      else if (f === 'IQ3_M') type = 'Q4_K';
    } else if (f === 'Q3_K_L') type = 'Q4_K';
  } else if (category === 'ffn_gate' || category === 'ffn_up') {
    const i = layerOf(category === 'ffn_gate' ? s.iFfnGate : s.iFfnUp);
    if (f === 'IQ3_XS' && i >= div(n, 8) && i < div(7 * n, 8)) type = 'IQ3_XXS';
    if (category === 'ffn_gate') s.iFfnGate++;
    else s.iFfnUp++;
  }
  return type;
}

/** Types that need an importance matrix in llama-quantize (tensor_requires_imatrix). */
export function requiresImatrix(name: string, type: DType, ftype: LlamaFtype): boolean {
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight' || name === 'output.weight') return false;
  if (['IQ3_XXS', 'IQ2_XXS', 'IQ2_XS', 'IQ2_S', 'IQ1_M', 'IQ1_S'].includes(type)) return true;
  return type === 'Q2_K' && ftype === 'Q2_K_S';
}

/** llama.cpp's order of tensors in a quantized file: non-block tensors, then by block index, each by name (weight_name_comparer). */
export function llamaTensorOrder<T extends { name: string }>(tensors: T[]): T[] {
  const layer = (n: string) => {
    const m = /^blk\.(\d+)\./.exec(n);
    return m ? Number(m[1]) : -1;
  };
  return [...tensors].sort((a, b) => layer(a.name) - layer(b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
