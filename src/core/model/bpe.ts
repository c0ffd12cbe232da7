/**
 * Byte-level BPE (GPT-2 style vocabularies, as llama-3's Hugging Face `tokenizer.json`) tokenized as
 * llama.cpp does it for `tokenizer.ggml.model = gpt2` with the `llama-bpe` pre-tokenizer
 * (src/llama-vocab.cpp, llm_tokenizer_bpe_session): user-defined added tokens are matched in the raw
 * text first; the rest is split into words by the llama-3 regex; each word's UTF-8 bytes are written
 * with GPT-2's byte-to-character map; a word that is itself a token is taken whole (ignore_merges),
 * otherwise adjacent symbols are merged, lowest merge rank first (leftmost on ties), and any symbol
 * left without a token falls back to its single-byte tokens. BOS comes first when asked for; no space
 * prefix. The vocabulary comes from `tokenizer.json` (+ `tokenizer_config.json`) or GGUF arrays, and is
 * written to GGUF as convert_hf_to_gguf.py writes it (`tokenizer.ggml.model = gpt2`, `pre = llama-bpe`).
 *
 * The split uses JavaScript's Unicode regex classes; llama.cpp's own splitter uses its Unicode tables
 * (`\s` differs on U+0085 and U+FEFF).
 */
import { QuantLensError } from '../errors';
import { TOKENIZER_MAX_PIECE_BYTES, TOKENIZER_MAX_PIECES } from '../limits';
import type { MetadataValue } from '../model';
import { PairQueue, splitAroundPieces, TokenType } from './tokenizer';

/** The pre-tokenizer regex of llama-3's tokenizer.json, as Hugging Face writes it. */
export const LLAMA3_PRETOKENIZER_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** The same split in JavaScript (no inline case-insensitive group: the contractions spelled out, as llama.cpp adapts it). */
const LLAMA3_SPLIT = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** `tokenizer.ggml.pre` values llama.cpp reads as its llama-3 pre-tokenizer. */
const LLAMA3_PRE_NAMES: ReadonlySet<string> = new Set(['llama-bpe', 'llama3', 'llama-v3']);

export interface BpeVocabulary {
  /** Token texts as stored: byte-level characters for learned tokens, raw text for added ones. */
  pieces: string[];
  types: Int32Array;
  /** Merge rules `left right`, by rank. */
  merges: string[];
  bosId: number;
  eosId: number;
  addBos: boolean;
  /** Whether the files said if BOS is added (the GGUF then carries `add_bos_token`). */
  addBosStated: boolean;
  /** The `tokenizer.ggml.pre` name. */
  pre: string;
}

let byteChars: string[] | null = null;
let charBytes: Map<string, number> | null = null;

/**
 * GPT-2's `bytes_to_unicode`: the printable bytes ('!'…'~', '¡'…'¬', '®'…'ÿ') stand for themselves,
 * every other byte for U+0100 + n, n counting those bytes in order.
 */
export function byteToChar(): string[] {
  if (byteChars) return byteChars;
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(printable(b) ? b : 0x100 + n++));
  byteChars = out;
  charBytes = new Map(out.map((c, b) => [c, b]));
  return out;
}

/** Is this the look of a control token although tokenizer.json does not mark it special? (convert_hf_to_gguf.py does_token_look_special) */
function looksSpecial(text: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(text) ||
    (text.startsWith('<|') && text.endsWith('|>')) ||
    (text.startsWith('<｜') && text.endsWith('｜>')) ||
    (text.startsWith('<unused') && text.endsWith('>'))
  );
}

interface Bigram {
  left: number;
  right: number;
  text: string;
  rank: number;
}

/** Lowest merge rank first, leftmost on equal ranks (llama.cpp's llm_bigram_bpe comparator). */
const lowestRankFirst = (a: Bigram, b: Bigram): boolean => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

const encoder = new TextEncoder();

export class BpeTokenizer {
  private readonly ids = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  /** User-defined added tokens, matched in the raw text before the split, longest first. */
  private readonly userDefined: Array<{ text: string; id: number }> = [];

  constructor(readonly vocab: BpeVocabulary) {
    byteToChar();
    vocab.pieces.forEach((piece, id) => {
      if (!this.ids.has(piece)) this.ids.set(piece, id);
      if (vocab.types[id] === TokenType.UserDefined && piece.length > 0) this.userDefined.push({ text: piece, id });
    });
    this.userDefined.sort((a, b) => b.text.length - a.text.length);
    vocab.merges.forEach((m, rank) => {
      if (!this.ranks.has(m)) this.ranks.set(m, rank);
    });
  }

  get size(): number {
    return this.vocab.pieces.length;
  }

  /** Token ids of `text`, BOS first when the vocabulary adds it (or `addBos` says so). */
  encode(text: string | Uint8Array, options: { addBos?: boolean } = {}): Int32Array {
    const raw = typeof text === 'string' ? text : new TextDecoder().decode(text);
    const out: number[] = [];
    if (options.addBos ?? this.vocab.addBos) out.push(this.vocab.bosId);
    for (const fragment of splitAroundPieces(raw, this.userDefined)) {
      if (typeof fragment === 'number') out.push(fragment);
      else for (const [word] of fragment.matchAll(LLAMA3_SPLIT)) this.tokenizeWord(word, out);
    }
    return Int32Array.from(out);
  }

  /** The text of tokens: byte-level tokens back to their bytes, added tokens as they are, control tokens left out. */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const piece = this.vocab.pieces[ids[i]] ?? '';
      const type = this.vocab.types[ids[i]];
      if (type === TokenType.Control) continue;
      if (type === TokenType.UserDefined) bytes.push(...encoder.encode(piece));
      else for (const c of piece) bytes.push(charBytes!.get(c) ?? 0x3f);
    }
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }

  private tokenizeWord(word: string, out: number[]): void {
    const chars = byteChars!;
    let encoded = '';
    for (const b of encoder.encode(word)) encoded += chars[b];
    const whole = this.ids.get(encoded);
    if (whole !== undefined) {
      // llama-bpe ignores merges for a word that is itself a token.
      out.push(whole);
      return;
    }
    // One symbol per byte-level character; `text` of a merged symbol is its span of `encoded`.
    const n = encoded.length;
    const start = Int32Array.from({ length: n }, (_, i) => i);
    const len = new Int32Array(n).fill(1);
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const text = (i: number) => encoded.slice(start[i], start[i] + len[i]);
    const queue = new PairQueue(lowestRankFirst);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const rank = this.ranks.get(`${text(left)} ${text(right)}`);
      if (rank !== undefined) queue.push({ left, right, text: text(left) + text(right), rank });
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    while (queue.size > 0) {
      const b = queue.pop();
      if (len[b.left] === 0 || len[b.right] === 0 || text(b.left) + text(b.right) !== b.text) continue; // outdated
      len[b.left] += len[b.right];
      len[b.right] = 0;
      next[b.left] = next[b.right];
      if (next[b.right] >= 0) prev[next[b.right]] = b.left;
      tryAdd(prev[b.left], b.left);
      tryAdd(b.left, next[b.left]);
    }
    for (let i = 0; i >= 0; i = next[i]) {
      const symbol = text(i);
      const id = this.ids.get(symbol);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // No token for the merged text: its UTF-8 bytes one by one, where a byte is a token.
      for (const byte of encoder.encode(symbol)) {
        const single = byte < 0x80 ? this.ids.get(String.fromCharCode(byte)) : undefined;
        if (single !== undefined) out.push(single);
      }
    }
  }
}

function fail(file: string | undefined, message: string): never {
  throw new QuantLensError('INVALID_HEADER', message, { file });
}

function object(value: unknown): Record<string, unknown> | null {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** The regex of a Split pre-tokenizer anywhere in tokenizer.json's `pre_tokenizer` (a Sequence or alone). */
function splitRegex(pre: unknown): string | null {
  const p = object(pre);
  if (!p) return null;
  if (p.type === 'Split') return typeof object(p.pattern)?.Regex === 'string' ? (object(p.pattern)!.Regex as string) : null;
  if (p.type === 'Sequence' && Array.isArray(p.pretokenizers)) {
    for (const inner of p.pretokenizers) {
      const r = splitRegex(inner);
      if (r !== null) return r;
    }
  }
  return null;
}

function tokenContent(entry: unknown): string | null {
  if (typeof entry === 'string') return entry;
  const c = object(entry)?.content;
  return typeof c === 'string' ? c : null;
}

/**
 * A byte-level BPE vocabulary from Hugging Face `tokenizer.json` and `tokenizer_config.json` (bos/eos
 * tokens and add_bos_token, else the post-processor's template), padded to `vocabSize` with `[PAD<i>]`
 * unused tokens as convert_hf_to_gguf.py pads. Only the llama-3 pre-tokenizer is supported.
 */
export function vocabularyFromTokenizerJson(json: unknown, config: Record<string, unknown> | null, options: { file?: string; vocabSize?: number } = {}): BpeVocabulary {
  const file = options.file;
  const root = object(json) ?? fail(file, 'tokenizer.json is not an object');
  const model = object(root.model) ?? fail(file, 'tokenizer.json has no model');
  if (model.type !== 'BPE') throw new QuantLensError('UNSUPPORTED', `tokenizer.json model '${String(model.type)}' is not supported (only byte-level BPE)`, { file });
  if (model.byte_fallback === true) throw new QuantLensError('UNSUPPORTED', 'a BPE tokenizer with byte fallback (SentencePiece style) is not supported from tokenizer.json', { file });
  const regex = splitRegex(root.pre_tokenizer);
  if (regex !== LLAMA3_PRETOKENIZER_REGEX) {
    throw new QuantLensError('UNSUPPORTED', `pre-tokenizer ${regex === null ? '(none)' : JSON.stringify(regex)} is not supported (only llama-3's, llama.cpp 'llama-bpe')`, { file });
  }
  const vocab = object(model.vocab) ?? fail(file, 'tokenizer.json model.vocab is not an object');
  const added = Array.isArray(root.added_tokens) ? root.added_tokens.map(object).filter((t): t is Record<string, unknown> => t !== null) : [];
  const entries = Object.entries(vocab);
  if (entries.length + added.length > TOKENIZER_MAX_PIECES) {
    throw new QuantLensError('LIMIT_EXCEEDED', `a vocabulary of ${entries.length + added.length} tokens is more than the ${TOKENIZER_MAX_PIECES} allowed`, { file });
  }
  const byId = new Map<number, { text: string; type: number }>();
  const validId = (id: unknown): id is number => Number.isInteger(id) && (id as number) >= 0 && (id as number) < TOKENIZER_MAX_PIECES;
  for (const [text, id] of entries) {
    if (!validId(id)) fail(file, `token ${JSON.stringify(text.slice(0, 40))} has id ${String(id)}`);
    if (encoder.encode(text).length > TOKENIZER_MAX_PIECE_BYTES) throw new QuantLensError('LIMIT_EXCEEDED', `token ${id} is longer than ${TOKENIZER_MAX_PIECE_BYTES} bytes`, { file });
    byId.set(id, { text, type: TokenType.Normal });
  }
  for (const t of added) {
    const text = tokenContent(t);
    if (text === null || !validId(t.id)) fail(file, 'an added token has no content or a bad id');
    byId.set(t.id, { text, type: t.special === true || looksSpecial(text) ? TokenType.Control : TokenType.UserDefined });
  }
  const size = Math.max(options.vocabSize ?? 0, ...[...byId.keys()].map((id) => id + 1));
  if (size > TOKENIZER_MAX_PIECES) throw new QuantLensError('LIMIT_EXCEEDED', `a vocabulary of ${size} tokens is more than the ${TOKENIZER_MAX_PIECES} allowed`, { file });
  const pieces: string[] = [];
  const types = new Int32Array(size);
  for (let id = 0; id < size; id++) {
    const t = byId.get(id);
    pieces.push(t ? t.text : `[PAD${id}]`);
    types[id] = t ? t.type : TokenType.Unused;
  }
  const rawMerges = Array.isArray(model.merges) ? model.merges : [];
  const merges = rawMerges.map((m, i) => {
    if (typeof m === 'string') return m;
    // Pairs (transformers ≥ 4.45): a space inside a part is written as U+0120, as gguf-py does.
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return m.map((s: string) => s.replaceAll(' ', '\u0120')).join(' ');
    return fail(file, `merge ${i} is neither "a b" nor ["a", "b"]`);
  });
  const idOf = (entry: unknown): number | undefined => {
    const content = tokenContent(entry);
    const hit = content === null ? undefined : added.find((t) => t.content === content);
    return hit && validId(hit.id) ? hit.id : undefined;
  };
  const bosId = idOf(config?.bos_token);
  const eosId = idOf(config?.eos_token);
  let addBos: boolean | null = typeof config?.add_bos_token === 'boolean' ? config.add_bos_token : null;
  if (addBos === null) {
    // TemplateProcessing whose single-sequence template starts with the BOS token adds it.
    const post = object(root.post_processor);
    for (const p of post ? (Array.isArray(post.processors) ? post.processors.map(object) : [post]) : []) {
      if (p?.type !== 'TemplateProcessing' || !Array.isArray(p.single) || p.single.length < 2) continue;
      const first = object(object(p.single[0])?.SpecialToken)?.id;
      if (typeof first === 'string') addBos = first === tokenContent(config?.bos_token);
    }
  }
  return {
    pieces,
    types,
    merges,
    bosId: bosId ?? 11,
    eosId: eosId ?? 11,
    // llama.cpp's default for llama-bpe when the GGUF does not say.
    addBos: addBos ?? true,
    addBosStated: addBos !== null,
    pre: 'llama-bpe',
  };
}

/** True when a GGUF's metadata holds a byte-level BPE (`gpt2`) vocabulary. */
export function hasGgufBpeVocabulary(md: Record<string, MetadataValue>): boolean {
  const model = md['tokenizer.ggml.model'];
  return model?.type === 'string' && model.value === 'gpt2' && md['tokenizer.ggml.tokens']?.type === 'array';
}

/** The vocabulary of a GGUF with `tokenizer.ggml.model = gpt2` and a llama-3 pre-tokenizer. */
export function bpeVocabularyFromGguf(md: Record<string, MetadataValue>, file?: string): BpeVocabulary {
  const strings = (key: string): string[] | null => {
    const v = md[key];
    return v?.type === 'array' && v.itemType === 'string' ? (v.value as string[]) : null;
  };
  const pre = md['tokenizer.ggml.pre'];
  const preName = pre?.type === 'string' ? pre.value : 'default';
  if (!LLAMA3_PRE_NAMES.has(preName)) throw new QuantLensError('UNSUPPORTED', `BPE pre-tokenizer '${preName}' is not supported (only llama-3's: llama-bpe)`, { file });
  const pieces = strings('tokenizer.ggml.tokens') ?? fail(file, 'tokenizer.ggml.tokens is not a string array');
  if (pieces.length > TOKENIZER_MAX_PIECES) throw new QuantLensError('LIMIT_EXCEEDED', `a vocabulary of ${pieces.length} tokens`, { file });
  const types = new Int32Array(pieces.length).fill(TokenType.Normal);
  const t = md['tokenizer.ggml.token_type'];
  if (t?.type === 'array' && t.itemType !== 'array' && t.value.length === pieces.length) t.value.forEach((v, i) => (types[i] = Number(v)));
  const id = (key: string): number => {
    const v = md[key];
    const n = v && (v.type === 'u32' || v.type === 'i32' || v.type === 'u64' || v.type === 'i64') ? Number(v.value) : 11;
    return n >= 0 && n < pieces.length ? n : 11;
  };
  const addBos = md['tokenizer.ggml.add_bos_token'];
  return {
    pieces,
    types,
    merges: strings('tokenizer.ggml.merges') ?? [],
    bosId: id('tokenizer.ggml.bos_token_id'),
    eosId: id('tokenizer.ggml.eos_token_id'),
    addBos: addBos?.type === 'bool' ? addBos.value : true,
    addBosStated: addBos?.type === 'bool',
    pre: 'llama-bpe',
  };
}

/** The `tokenizer.ggml.*` keys convert_hf_to_gguf.py writes for a llama-3 style BPE vocabulary. */
export function bpeGgufMetadata(v: BpeVocabulary): Record<string, MetadataValue> {
  const md: Record<string, MetadataValue> = {
    'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
    'tokenizer.ggml.pre': { type: 'string', value: v.pre },
    'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: v.pieces },
    'tokenizer.ggml.token_type': { type: 'array', itemType: 'i32', value: Array.from(v.types) },
    'tokenizer.ggml.merges': { type: 'array', itemType: 'string', value: v.merges },
    'tokenizer.ggml.bos_token_id': { type: 'u32', value: v.bosId },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: v.eosId },
  };
  if (v.addBosStated) md['tokenizer.ggml.add_bos_token'] = { type: 'bool', value: v.addBos };
  return md;
}
