/**
 * The shared name map: which layer and role a tensor has, and how Hugging Face Llama-family names,
 * GGUF (llama.cpp) names and Meta/llama2.c names correspond. Four features need the same answers
 * (inspector grouping, sensitivity aggregation, comparison matching, HF → GGUF conversion).
 */
import { QuantLensError } from '../errors';

export type Role =
  | 'embed'
  | 'attn_q'
  | 'attn_k'
  | 'attn_v'
  | 'attn_o'
  | 'ffn_gate'
  | 'ffn_up'
  | 'ffn_down'
  | 'norm'
  | 'output'
  | 'other';

export const ROLES: readonly Role[] = ['embed', 'attn_q', 'attn_k', 'attn_v', 'attn_o', 'ffn_gate', 'ffn_up', 'ffn_down', 'norm', 'output', 'other'];

/** The naming convention a tensor name follows. Only `hf` stores q/k rows in the rotary-permuted order. */
export type NameScheme = 'hf' | 'gguf' | 'meta';

export interface TensorName {
  layer: number | null;
  role: Role;
  /** The llama.cpp (GGUF) name when the name map knows the tensor, e.g. `blk.2.ffn_down.weight`; else null. */
  canonical: string | null;
  scheme: NameScheme | null;
  /** Whatever preceded the recognised part (`model.` in a `{'model': state_dict}` checkpoint). */
  prefix: string;
}

interface NameTemplate {
  role: Role;
  gguf: string;
  hf: string;
  meta: string;
}

// `{N}` is the block index. Sources: llama.cpp gguf-py tensor_mapping.py (MODEL_TENSOR.*), Hugging Face
// modeling_llama.py module names, Meta llama / llama2.c model.py attribute names.
const TEMPLATES: readonly NameTemplate[] = [
  { role: 'embed', gguf: 'token_embd', hf: 'model.embed_tokens', meta: 'tok_embeddings' },
  { role: 'norm', gguf: 'output_norm', hf: 'model.norm', meta: 'norm' },
  { role: 'output', gguf: 'output', hf: 'lm_head', meta: 'output' },
  { role: 'attn_q', gguf: 'blk.{N}.attn_q', hf: 'model.layers.{N}.self_attn.q_proj', meta: 'layers.{N}.attention.wq' },
  { role: 'attn_k', gguf: 'blk.{N}.attn_k', hf: 'model.layers.{N}.self_attn.k_proj', meta: 'layers.{N}.attention.wk' },
  { role: 'attn_v', gguf: 'blk.{N}.attn_v', hf: 'model.layers.{N}.self_attn.v_proj', meta: 'layers.{N}.attention.wv' },
  { role: 'attn_o', gguf: 'blk.{N}.attn_output', hf: 'model.layers.{N}.self_attn.o_proj', meta: 'layers.{N}.attention.wo' },
  { role: 'ffn_gate', gguf: 'blk.{N}.ffn_gate', hf: 'model.layers.{N}.mlp.gate_proj', meta: 'layers.{N}.feed_forward.w1' },
  { role: 'ffn_up', gguf: 'blk.{N}.ffn_up', hf: 'model.layers.{N}.mlp.up_proj', meta: 'layers.{N}.feed_forward.w3' },
  { role: 'ffn_down', gguf: 'blk.{N}.ffn_down', hf: 'model.layers.{N}.mlp.down_proj', meta: 'layers.{N}.feed_forward.w2' },
  { role: 'norm', gguf: 'blk.{N}.attn_norm', hf: 'model.layers.{N}.input_layernorm', meta: 'layers.{N}.attention_norm' },
  { role: 'norm', gguf: 'blk.{N}.ffn_norm', hf: 'model.layers.{N}.post_attention_layernorm', meta: 'layers.{N}.ffn_norm' },
];

const SCHEMES: readonly NameScheme[] = ['gguf', 'hf', 'meta'];

/** Companions that quantized layouts store beside a weight (compressed-tensors, GPTQ/AWQ, bitsandbytes). */
const QUANT_COMPANION_SUFFIX =
  'weight_scale|weight_zero_point|weight_shape|weight_g_idx|qzeros|scales|g_idx|weight\\.absmax|weight\\.quant_map|weight\\.nested_absmax|weight\\.nested_quant_map|weight\\.quant_state\\.[A-Za-z0-9_]+';

/** Name suffixes after the module name: parameters (packed ones included), the companions, imatrix entries. */
const SUFFIX = new RegExp(`\\.(weight|bias|weight_packed|qweight|${QUANT_COMPANION_SUFFIX}|in_sum2|counts)$`);

const QUANT_COMPANION = new RegExp(`\\.(?:${QUANT_COMPANION_SUFFIX})$`);

interface TemplateHit {
  template: NameTemplate;
  scheme: NameScheme;
}

/**
 * Every template under every scheme, keyed by its text with `{N}` for the block index. HF before
 * meta: `model.norm.weight` is HF's final norm, not a Meta `norm` under a `model.` prefix (both
 * name the same tensor, but the scheme decides the q/k permutation of the model's other tensors).
 */
const BY_PATTERN = new Map<string, TemplateHit>();
for (const scheme of ['hf', 'gguf', 'meta'] as const) {
  for (const template of TEMPLATES) if (!BY_PATTERN.has(template[scheme])) BY_PATTERN.set(template[scheme], { template, scheme });
}

const GENERIC_LAYER = /(?:^|\.)(?:layers|layer|blk|h|blocks|block|encoder\.layer|decoder\.layers|transformer\.h)\.(\d+)\./;

// Heuristics for models outside the map (GPT-2, BERT, T5, vision backbones), checked in order.
const GENERIC_ROLES: ReadonlyArray<[RegExp, Role]> = [
  [/(embed|wte|wpe|word_embeddings|tok_emb)/i, 'embed'],
  [/(lm_head|(^|\.)output\.weight$|classifier)/i, 'output'],
  [/(norm|ln_\d|ln_f|layernorm|\.ln\.)/i, 'norm'],
  [/(q_proj|\.query\.|\.wq\.|attn\.q\b)/i, 'attn_q'],
  [/(k_proj|\.key\.|\.wk\.|attn\.k\b)/i, 'attn_k'],
  [/(v_proj|\.value\.|\.wv\.|attn\.v\b)/i, 'attn_v'],
  [/(o_proj|out_proj|attention\.output\.dense|attn\.c_proj|\.wo\.)/i, 'attn_o'],
  [/(gate_proj|\.w1\.|gate)/i, 'ffn_gate'],
  [/(up_proj|intermediate\.dense|mlp\.c_fc|\.w3\.|fc1)/i, 'ffn_up'],
  [/(down_proj|output\.dense|mlp\.c_proj|\.w2\.|fc2)/i, 'ffn_down'],
];

const cache = new Map<string, TensorName>();
const CACHE_LIMIT = 1 << 18;

/** Layer and role of a tensor, and its llama.cpp name when known. */
export function describeTensor(name: string): TensorName {
  let hit = cache.get(name);
  if (!hit) {
    hit = describeUncached(name);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(name, hit);
  }
  return hit;
}

/**
 * Looks the module path up in the template table: with each all-digit segment in turn read as the
 * block index, and with ever more leading segments taken as a prefix; the longest match wins. The
 * recognised part always starts at a segment, so `ffn_norm` never matches `norm`.
 */
function describeUncached(name: string): TensorName {
  const sm = SUFFIX.exec(name);
  if (sm) {
    const segments = name.slice(0, sm.index).split('.');
    const suffix = sm[1];
    for (let start = 0; start < segments.length; start++) {
      const plain = BY_PATTERN.get(segments.slice(start).join('.'));
      if (plain) return hit(plain, null, suffix, segments, start);
      for (let i = start; i < segments.length; i++) {
        if (!isDigits(segments[i])) continue;
        const saved = segments[i];
        segments[i] = '{N}';
        const keyed = BY_PATTERN.get(segments.slice(start).join('.'));
        segments[i] = saved;
        if (keyed) return hit(keyed, Number(saved), suffix, segments, start);
      }
    }
  }
  const lm = GENERIC_LAYER.exec(name);
  const layer = lm ? Number(lm[1]) : null;
  let role: Role = 'other';
  for (const [re, r] of GENERIC_ROLES) {
    if (re.test(name)) {
      role = r;
      break;
    }
  }
  return { layer, role, canonical: null, scheme: null, prefix: '' };
}

function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function hit(h: TemplateHit, layer: number | null, suffix: string, segments: string[], start: number): TensorName {
  const base = layer === null ? h.template.gguf : h.template.gguf.replace('{N}', String(layer));
  const prefix = start > 0 ? `${segments.slice(0, start).join('.')}.` : '';
  return { layer, role: h.template.role, canonical: `${base}.${suffix}`, scheme: h.scheme, prefix };
}

/** The name `name` would have under `scheme` (prefix dropped), or null when the map does not know it. */
export function renameTensor(name: string, scheme: NameScheme): string | null {
  const d = describeTensor(name);
  if (d.canonical === null) return null;
  const layer = String(d.layer);
  for (const t of TEMPLATES) {
    const base = t.gguf.replace('{N}', layer);
    if (t.gguf.includes('{N}') === (d.layer !== null) && d.canonical.startsWith(`${base}.`)) {
      return `${t[scheme].replace('{N}', layer)}${d.canonical.slice(base.length)}`;
    }
  }
  return null;
}

/** The scheme most tensors of a model follow (decides whether q/k rows are rotary-permuted). */
export function detectScheme(names: Iterable<string>): NameScheme | null {
  const votes: Record<NameScheme, number> = { hf: 0, gguf: 0, meta: 0 };
  for (const n of names) {
    const s = describeTensor(n).scheme;
    if (s && describeTensor(n).layer !== null) votes[s]++;
  }
  let best: NameScheme | null = null;
  for (const s of SCHEMES) if (votes[s] > 0 && (best === null || votes[s] > votes[best])) best = s;
  return best;
}

/**
 * Rows of a q or k projection are stored in a different order by Hugging Face than by Meta and GGUF:
 * HF groups the two halves of each rotary pair (transformers' convert_llama_weights_to_hf `permute`),
 * Meta/GGUF interleave them. Returns, for each HF row, the Meta/GGUF row it holds.
 * `heads` is n_head for q and n_head_kv for k.
 */
export function hfRowToMetaRow(rows: number, heads: number): Int32Array {
  const headDim = rows / heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new QuantLensError('INVALID_SHAPE', `rows ${rows} do not split into ${heads} heads of even size`);
  const half = headDim / 2;
  const map = new Int32Array(rows);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) map[h * headDim + j * half + i] = h * headDim + 2 * i + j;
    }
  }
  return map;
}

/** Reorders the rows of a row-major [rows, cols] matrix: out row r = in row map[r]. */
export function permuteRows<T extends Float32Array | Uint8Array>(src: T, rows: number, rowBytesOrCols: number, map: Int32Array): T {
  const out = new (src.constructor as { new (n: number): T })(src.length);
  for (let r = 0; r < rows; r++) out.set(src.subarray(map[r] * rowBytesOrCols, (map[r] + 1) * rowBytesOrCols), r * rowBytesOrCols);
  return out;
}

/** The inverse of a row map. */
export function invertRowMap(map: Int32Array): Int32Array {
  const inv = new Int32Array(map.length);
  for (let r = 0; r < map.length; r++) inv[map[r]] = r;
  return inv;
}

/** Is this a companion of a quantized weight (scales, zero points, packed shapes, quant state)? */
export function isQuantCompanion(name: string): boolean {
  return QUANT_COMPANION.test(name);
}
