/**
 * SentencePiece (unigram/BPE vocabularies with scores) tokenization as llama.cpp does it for
 * `tokenizer.ggml.model = llama` (src/llama-vocab.cpp, llm_tokenizer_spm): spaces become ▁, a space is
 * put in front of the text (add_space_prefix), UTF-8 characters are merged pairwise, best score first,
 * while the merged text is a vocabulary piece; what never became a piece falls back to <0xXX> byte
 * tokens. User-defined pieces are matched in the raw text first; BOS comes first when asked for.
 * The vocabulary comes from a SentencePiece `tokenizer.model` or from GGUF `tokenizer.ggml.*` arrays.
 */
import { QuantLensError } from '../errors';
import { TOKENIZER_MAX_PIECE_BYTES, TOKENIZER_MAX_PIECES } from '../limits';
import { metadataNumber, type MetadataValue } from '../model';
import { bytesMessage } from '../protobuf/scanner';
import { asFloat32, WireType, type ProtoField } from '../protobuf/wire';

/** SentencePiece piece types, also llama.cpp's `tokenizer.ggml.token_type` values. */
export const TokenType = { Normal: 1, Unknown: 2, Control: 3, UserDefined: 4, Unused: 5, Byte: 6 } as const;

export interface Vocabulary {
  /** Piece texts as UTF-8 (▁ for a space). */
  pieces: string[];
  scores: Float32Array;
  types: Int32Array;
  bosId: number;
  eosId: number;
  unkId: number;
  addBos: boolean;
  addSpacePrefix: boolean;
}

const SPACE_MARK = '\u2581';
const encoder = new TextEncoder();

/** A byte string: one char per byte, so pieces and text compare by their UTF-8 bytes as llama.cpp does. */
function byteString(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return s;
}

function utf8CharLength(lead: number): number {
  // llama.cpp unicode_len_utf8: indexed by the lead byte's top four bits.
  const table = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
  return table[lead >> 4];
}

interface Symbol {
  start: number;
  n: number;
  prev: number;
  next: number;
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  size: number;
}

/**
 * A binary heap popping the item `before` puts first: the merge queue of both tokenizers, whose
 * order (best pair first, leftmost on ties) decides which merges happen.
 */
export class PairQueue<T> {
  private readonly items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  push(item: T): void {
    const h = this.items;
    h.push(item);
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): T {
    const h = this.items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/** Highest score first; on equal scores the leftmost pair (llama.cpp's llm_bigram_spm comparator). */
const bestScoreFirst = (a: Bigram, b: Bigram): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);

export class SpmTokenizer {
  /** Byte-string piece text → id (the first id wins, as in llama.cpp's token_to_id map). */
  private readonly ids = new Map<string, number>();
  private readonly byteTokens = new Int32Array(256).fill(-1);
  /** User-defined pieces matched before SentencePiece, longest first. */
  private readonly userDefined: Array<{ text: string; id: number }> = [];

  constructor(readonly vocab: Vocabulary) {
    vocab.pieces.forEach((piece, id) => {
      const key = byteString(encoder.encode(piece));
      if (!this.ids.has(key)) this.ids.set(key, id);
      const type = vocab.types[id];
      if (type === TokenType.Byte) {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
        if (m) this.byteTokens[parseInt(m[1], 16)] = id;
      } else if (type === TokenType.UserDefined && piece.length > 0) {
        this.userDefined.push({ text: key, id });
      }
    });
    this.userDefined.sort((a, b) => b.text.length - a.text.length);
  }

  get size(): number {
    return this.vocab.pieces.length;
  }

  /** Token ids of `text`, BOS first when the vocabulary adds it (or `addBos` says so). */
  encode(text: string | Uint8Array, options: { addBos?: boolean } = {}): Int32Array {
    const raw = byteString(typeof text === 'string' ? encoder.encode(text) : text);
    const out: number[] = [];
    if (options.addBos ?? this.vocab.addBos) out.push(this.vocab.bosId);
    let prevSpecial = true;
    for (const fragment of splitAroundPieces(raw, this.userDefined)) {
      if (typeof fragment === 'number') {
        out.push(fragment);
        prevSpecial = true;
        continue;
      }
      const prefixed = this.vocab.addSpacePrefix && prevSpecial ? ' ' + fragment : fragment;
      this.tokenizeFragment(prefixed.replaceAll(' ', byteString(encoder.encode(SPACE_MARK))), out);
      prevSpecial = false;
    }
    return Int32Array.from(out);
  }

  /** Piece text of a token (▁ shown as a space, byte tokens as their byte). */
  decode(ids: ArrayLike<number>): string {
    const bytes: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      const piece = this.vocab.pieces[id] ?? '';
      const type = this.vocab.types[id];
      if (type === TokenType.Control) continue;
      const m = type === TokenType.Byte ? /^<0x([0-9A-Fa-f]{2})>$/.exec(piece) : null;
      if (m) bytes.push(parseInt(m[1], 16));
      else bytes.push(...encoder.encode(piece.replaceAll(SPACE_MARK, ' ')));
    }
    return new TextDecoder().decode(Uint8Array.from(bytes));
  }

  private tokenizeFragment(text: string, out: number[]): void {
    const symbols: Symbol[] = [];
    for (let offs = 0, index = 0; offs < text.length; index++) {
      const n = Math.min(utf8CharLength(text.charCodeAt(offs)), text.length - offs);
      symbols.push({ start: offs, n, prev: index - 1, next: offs + n >= text.length ? -1 : index + 1 });
      offs += n;
    }
    const queue = new PairQueue(bestScoreFirst);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const a = symbols[left];
      const b = symbols[right];
      const id = this.ids.get(text.slice(a.start, a.start + a.n + b.n));
      if (id === undefined || id >= this.vocab.scores.length) return;
      queue.push({ left, right, score: this.vocab.scores[id], size: a.n + b.n });
    };
    for (let i = 1; i < symbols.length; i++) tryAdd(i - 1, i);
    while (queue.size > 0) {
      const bigram = queue.pop();
      const left = symbols[bigram.left];
      const right = symbols[bigram.right];
      // Outdated: one side was merged into something else since this pair was queued.
      if (left.n === 0 || right.n === 0 || left.n + right.n !== bigram.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = bigram.left;
      tryAdd(left.prev, bigram.left);
      tryAdd(bigram.left, left.next);
    }
    for (let i = symbols.length > 0 ? 0 : -1; i >= 0; i = symbols[i].next) {
      const s = symbols[i];
      const piece = text.slice(s.start, s.start + s.n);
      const id = this.ids.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // Merges only ever form vocabulary pieces, so an unknown symbol is one character: its bytes.
      for (let j = 0; j < piece.length; j++) {
        const byte = piece.charCodeAt(j);
        const t = this.byteTokens[byte] >= 0 ? this.byteTokens[byte] : this.ids.get(piece[j]);
        out.push(t ?? this.vocab.unkId);
      }
    }
  }
}

function checkPieceCount(n: number, file?: string): void {
  if (n > TOKENIZER_MAX_PIECES) throw new QuantLensError('LIMIT_EXCEEDED', `a vocabulary of ${n} pieces is more than the ${TOKENIZER_MAX_PIECES} allowed`, { file });
}

/**
 * Reads a SentencePiece `tokenizer.model` (ModelProto: 1 pieces {1 piece, 2 score, 3 type}, 2 trainer_spec
 * {40 unk_id, 41 bos_id, 42 eos_id}, 3 normalizer_spec {3 add_dummy_prefix}).
 */
export function vocabularyFromSentencePiece(bytes: Uint8Array, file = 'tokenizer.model'): Vocabulary {
  const ctx = { file, fileSize: bytes.length };
  const root = bytesMessage(bytes, ctx);
  const pieces: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  let bosId = 1;
  let eosId = 2;
  let unkId = 0;
  let addSpacePrefix = true;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const expect = (f: ProtoField, wire: number): void => {
    if (f.wireType !== wire) throw new QuantLensError('INVALID_PROTOBUF', `field ${f.fieldNumber} has wire type ${f.wireType}, expected ${wire}`, { offset: f.start, file });
  };
  for (const field of root.fieldsSync()) {
    if (field.fieldNumber === 1) {
      expect(field, WireType.LengthDelimited);
      checkPieceCount(pieces.length + 1, file);
      let piece = '';
      let score = 0;
      let type: number = TokenType.Normal;
      for (const f of root.messageSync(field).fieldsSync()) {
        if (f.fieldNumber === 1) {
          expect(f, WireType.LengthDelimited);
          if (f.length > TOKENIZER_MAX_PIECE_BYTES) throw new QuantLensError('LIMIT_EXCEEDED', `a piece of ${f.length} bytes`, { offset: f.start, file });
          try {
            piece = decoder.decode(bytes.subarray(f.offset, f.offset + f.length));
          } catch {
            throw new QuantLensError('INVALID_UTF8', `piece ${pieces.length} is not UTF-8`, { offset: f.offset, file });
          }
        } else if (f.fieldNumber === 2) {
          expect(f, WireType.Fixed32);
          score = asFloat32(f.bits);
        } else if (f.fieldNumber === 3) {
          expect(f, WireType.Varint);
          type = Number(f.bits & 0xffn);
        }
      }
      pieces.push(piece);
      scores.push(score);
      types.push(type);
    } else if (field.fieldNumber === 2 && field.wireType === WireType.LengthDelimited) {
      for (const f of root.messageSync(field).fieldsSync()) {
        if (f.wireType !== WireType.Varint) continue;
        const v = Number(BigInt.asIntN(32, f.bits));
        if (f.fieldNumber === 40) unkId = v;
        else if (f.fieldNumber === 41) bosId = v;
        else if (f.fieldNumber === 42) eosId = v;
      }
    } else if (field.fieldNumber === 3 && field.wireType === WireType.LengthDelimited) {
      for (const f of root.messageSync(field).fieldsSync()) {
        if (f.fieldNumber === 3 && f.wireType === WireType.Varint) addSpacePrefix = f.bits !== 0n;
      }
    }
  }
  if (pieces.length === 0) throw new QuantLensError('INVALID_PROTOBUF', 'the SentencePiece model holds no pieces', { file });
  return { pieces, scores: Float32Array.from(scores), types: Int32Array.from(types), bosId, eosId, unkId, addBos: true, addSpacePrefix };
}

function metaBool(md: Record<string, MetadataValue>, key: string, fallback: boolean): boolean {
  const v = md[key];
  return v && v.type === 'bool' ? v.value : fallback;
}

/** True when a GGUF's metadata holds a SentencePiece (`llama`) vocabulary. */
export function hasGgufVocabulary(md: Record<string, MetadataValue>): boolean {
  const model = md['tokenizer.ggml.model'];
  return model?.type === 'string' && model.value === 'llama' && md['tokenizer.ggml.tokens']?.type === 'array';
}

/** The vocabulary of a GGUF (`tokenizer.ggml.model = llama`). */
export function vocabularyFromGguf(md: Record<string, MetadataValue>, file?: string): Vocabulary {
  const model = md['tokenizer.ggml.model'];
  if (!model || model.type !== 'string') throw new QuantLensError('UNSUPPORTED', 'the GGUF holds no tokenizer', { file });
  if (model.value !== 'llama') throw new QuantLensError('UNSUPPORTED', `tokenizer model '${model.value}' is not supported (only SentencePiece 'llama')`, { file });
  const tokens = md['tokenizer.ggml.tokens'];
  if (!tokens || tokens.type !== 'array' || tokens.itemType !== 'string') throw new QuantLensError('INVALID_VALUE_TYPE', 'tokenizer.ggml.tokens is not a string array', { file });
  const n = tokens.value.length;
  checkPieceCount(n, file);
  const scores = new Float32Array(n);
  const types = new Int32Array(n).fill(TokenType.Normal);
  const s = md['tokenizer.ggml.scores'];
  if (s?.type === 'array' && s.itemType !== 'array' && s.value.length === n) s.value.forEach((v, i) => (scores[i] = Number(v)));
  const t = md['tokenizer.ggml.token_type'];
  if (t?.type === 'array' && t.itemType !== 'array' && t.value.length === n) t.value.forEach((v, i) => (types[i] = Number(v)));
  const id = (key: string, fallback: number): number => {
    const v = metadataNumber(md, key) ?? fallback;
    return v >= 0 && v < n ? v : fallback;
  };
  return {
    pieces: tokens.value as string[],
    scores,
    types,
    bosId: id('tokenizer.ggml.bos_token_id', 1),
    eosId: id('tokenizer.ggml.eos_token_id', 2),
    unkId: id('tokenizer.ggml.unknown_token_id', 0),
    addBos: metaBool(md, 'tokenizer.ggml.add_bos_token', true),
    addSpacePrefix: metaBool(md, 'tokenizer.ggml.add_space_prefix', true),
  };
}

/**
 * Splits raw text around user-defined pieces (longest first: `pieces` sorted by length, descending);
 * a piece becomes its id, the text between stays text. Control and unknown pieces are not parsed from text.
 */
export function splitAroundPieces(raw: string, pieces: ReadonlyArray<{ text: string; id: number }>): Array<string | number> {
  let fragments: Array<string | number> = [raw];
  for (const special of pieces) {
    const next: Array<string | number> = [];
    for (const f of fragments) {
      if (typeof f === 'number') {
        next.push(f);
        continue;
      }
      let from = 0;
      for (let at = f.indexOf(special.text); at >= 0; at = f.indexOf(special.text, from)) {
        if (at > from) next.push(f.slice(from, at));
        next.push(special.id);
        from = at + special.text.length;
      }
      if (from < f.length) next.push(f.slice(from));
    }
    fragments = next;
  }
  return fragments.filter((f) => f !== '');
}
