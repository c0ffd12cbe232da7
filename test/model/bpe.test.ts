import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BpeTokenizer, bpeGgufMetadata, bpeVocabularyFromGguf, byteToChar, LLAMA3_PRETOKENIZER_REGEX, vocabularyFromTokenizerJson } from '../../src/core/model/bpe';
import { convertToGguf } from '../../src/core/model/convert';
import { LlamaModel } from '../../src/core/model/llama';
import { TokenType } from '../../src/core/model/tokenizer';
import { openModel } from '../../src/core/readers';
import { safetensorsBytes } from '../fixtures/safetensors-builder';

/**
 * A llama-3 style tokenizer.json by hand: the 256 byte characters as ids 0…255 (id = byte), eleven
 * merges, two special tokens and one user-defined added token.
 */
const MERGES = ['Ġ t', 'h e', 't he', 'Ġt he', 'l l', 'e ll', 'h ell', 'hell o', 'Ġ c', 'a t', 'Ġc at'];
const MERGED = ['Ġt', 'he', 'the', 'Ġthe', 'll', 'ell', 'hell', 'hello', 'Ġc', 'at', 'Ġcat']; // ids 256…266
const ID = Object.fromEntries(MERGED.map((t, i) => [t, 256 + i]));
const BOS = 267;
const EOS = 268;
const TAG = 269;

function tokenizerJson(merges: unknown[] = MERGES): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteToChar().forEach((c, b) => (vocab[c] = b));
  MERGED.forEach((t, i) => (vocab[t] = 256 + i));
  return {
    version: '1.0',
    added_tokens: [
      { id: BOS, content: '<|begin_of_text|>', special: true },
      { id: EOS, content: '<|end_of_text|>', special: true },
      { id: TAG, content: '<tag>', special: false },
    ],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_PRETOKENIZER_REGEX }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel' },
        { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }] },
      ],
    },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', ignore_merges: true, vocab, merges },
  };
}
const CONFIG = { bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>' };
const bytes = (s: string) => Array.from(new TextEncoder().encode(s));

test('GPT-2 byte map: printable bytes stand for themselves, the rest from U+0100 in byte order', () => {
  const m = byteToChar();
  assert.equal(m[0x41], 'A');
  assert.equal(m[0x20], 'Ġ');
  assert.equal(m[0x0a], 'Ċ');
  assert.equal(m[0x00], '\u0100');
  assert.equal(m[0x7f], '\u0121');
  assert.equal(m[0xad], '\u0143');
  assert.equal(new Set(m).size, 256);
});

test('hand-built llama-3 tokenizer.json: split, byte-level characters, whole-word tokens, lowest rank first, leftmost on ties', () => {
  const v = vocabularyFromTokenizerJson(tokenizerJson(), CONFIG, { vocabSize: 272 });
  assert.equal(v.bosId, BOS);
  assert.equal(v.eosId, EOS);
  assert.equal(v.addBos, true, 'the post-processor template starts with BOS');
  assert.equal(v.addBosStated, true);
  assert.equal(v.pieces.length, 272);
  assert.deepEqual([v.types[BOS], v.types[TAG], v.types[65], v.types[271]], [TokenType.Control, TokenType.UserDefined, TokenType.Normal, TokenType.Unused]);
  assert.equal(v.pieces[270], '[PAD270]');
  const tok = new BpeTokenizer(v);
  const text = "the cat's hello\n\n  world 12345<tag>x";
  // Words: "the" | " cat" | "'s" | " hello" | "\n\n" | " " | " world" | " " | "123" | "45", then <tag>, "x".
  // "the" and " cat" are tokens themselves (ignore_merges); " hello" merges h+e (rank 1) before l+l (rank 4),
  // which leaves no rule for "he"+"ll": Ġ he ll o.
  const want = [
    BOS,
    ID.the,
    ID['Ġcat'],
    ...bytes("'s"),
    0x20, ID.he, ID.ll, 0x6f,
    0x0a, 0x0a,
    0x20,
    ...bytes(' world'),
    0x20,
    ...bytes('123'),
    ...bytes('45'),
    TAG,
    0x78,
  ];
  assert.deepEqual(Array.from(tok.encode(text)), want);
  assert.equal(tok.decode(tok.encode(text)), text, 'control tokens are left out of the text');
  // Three equal-rank pairs in "llll": the leftmost merges first, then the pair after it.
  assert.deepEqual(Array.from(tok.encode('llll', { addBos: false })), [ID.ll, ID.ll]);
  assert.deepEqual(Array.from(tok.encode('é', { addBos: false })), [0xc3, 0xa9]);
  assert.equal(tok.decode([0xc3, 0xa9]), 'é');
  // Control tokens are not parsed from text (llama-perplexity tokenizes without parse_special).
  assert.ok(!Array.from(tok.encode('<|end_of_text|>', { addBos: false })).includes(EOS));
});

test('tokenizer.json merges as pairs (transformers ≥ 4.45) equal the string form; other models and pre-tokenizers are refused', () => {
  const pairs = vocabularyFromTokenizerJson(tokenizerJson(MERGES.map((m) => m.split(' '))), CONFIG);
  assert.deepEqual(pairs.merges, MERGES);
  const json = tokenizerJson();
  (json.pre_tokenizer as { pretokenizers: Array<{ pattern?: { Regex: string } }> }).pretokenizers[0].pattern!.Regex = "'s|'t| ?\\p{L}+";
  assert.throws(() => vocabularyFromTokenizerJson(json, CONFIG), (e: Error & { code?: string }) => e.code === 'UNSUPPORTED');
  assert.throws(() => vocabularyFromTokenizerJson({ ...tokenizerJson(), model: { type: 'Unigram' } }, CONFIG), /only byte-level BPE/);
  const broken = tokenizerJson();
  (broken.model as { vocab: Record<string, unknown> }).vocab.x = -4;
  assert.throws(() => vocabularyFromTokenizerJson(broken, CONFIG), (e: Error & { code?: string }) => e.code === 'INVALID_HEADER');
  const explicit = vocabularyFromTokenizerJson(tokenizerJson(), { ...CONFIG, add_bos_token: false });
  assert.equal(explicit.addBos, false, 'tokenizer_config.json add_bos_token wins');
});

test('GGUF tokenizer.ggml.* (gpt2, llama-bpe) written as convert_hf_to_gguf does and read back to the same ids', () => {
  const v = vocabularyFromTokenizerJson(tokenizerJson(), CONFIG);
  const md = bpeGgufMetadata(v);
  assert.deepEqual(Object.keys(md), [
    'tokenizer.ggml.model',
    'tokenizer.ggml.pre',
    'tokenizer.ggml.tokens',
    'tokenizer.ggml.token_type',
    'tokenizer.ggml.merges',
    'tokenizer.ggml.bos_token_id',
    'tokenizer.ggml.eos_token_id',
    'tokenizer.ggml.add_bos_token',
  ]);
  assert.deepEqual(md['tokenizer.ggml.model'], { type: 'string', value: 'gpt2' });
  assert.deepEqual(md['tokenizer.ggml.pre'], { type: 'string', value: 'llama-bpe' });
  const back = bpeVocabularyFromGguf(md);
  const text = 'the cat sat on the hello mat <tag> llll';
  assert.deepEqual(new BpeTokenizer(back).encode(text), new BpeTokenizer(v).encode(text));
  assert.throws(() => bpeVocabularyFromGguf({ ...md, 'tokenizer.ggml.pre': { type: 'string', value: 'qwen2' } }), /qwen2/);
});

test('a Hugging Face folder with tokenizer.json: the model tokenizes with it, and its GGUF conversion carries the BPE vocabulary', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-bpe-'));
  try {
    const dim = 8;
    const vocab = 272;
    let seed = 3;
    const rnd = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.5);
    const f = (name: string, shape: number[]) => ({ name, dtype: 'F32', shape, data: new Uint8Array(rnd(shape.reduce((a, b) => a * b, 1)).buffer) });
    writeFileSync(
      join(dir, 'model.safetensors'),
      safetensorsBytes([
        f('model.embed_tokens.weight', [vocab, dim]),
        f('model.layers.0.self_attn.q_proj.weight', [8, dim]),
        f('model.layers.0.self_attn.k_proj.weight', [4, dim]),
        f('model.layers.0.self_attn.v_proj.weight', [4, dim]),
        f('model.layers.0.self_attn.o_proj.weight', [dim, 8]),
        f('model.layers.0.mlp.gate_proj.weight', [12, dim]),
        f('model.layers.0.mlp.up_proj.weight', [12, dim]),
        f('model.layers.0.mlp.down_proj.weight', [dim, 12]),
        f('model.layers.0.input_layernorm.weight', [dim]),
        f('model.layers.0.post_attention_layernorm.weight', [dim]),
        f('model.norm.weight', [dim]),
        f('lm_head.weight', [vocab, dim]),
      ]),
    );
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ model_type: 'llama', hidden_size: dim, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, rms_norm_eps: 1e-5, vocab_size: vocab }),
    );
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson()));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(CONFIG));
    const model = await LlamaModel.load(dir);
    const text = 'the cat sat on the hello mat';
    const ids = model.tokenizer!.encode(text);
    assert.equal(ids[0], BOS);
    assert.equal(model.tokenizer!.size, vocab, 'padded to the model’s vocabulary');
    const out = join(dir, 'model.gguf');
    await convertToGguf(dir, out, { type: 'F32' });
    const info = await openModel(out);
    assert.deepEqual(info.metadata['tokenizer.ggml.model'], { type: 'string', value: 'gpt2' });
    assert.equal((info.metadata['tokenizer.ggml.merges'] as { value: string[] }).value.length, MERGES.length);
    const converted = await LlamaModel.load(out);
    assert.deepEqual(converted.tokenizer!.encode(text), ids);
    assert.deepEqual(await converted.forward(ids), await model.forward(ids));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
