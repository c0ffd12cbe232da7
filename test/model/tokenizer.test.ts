import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { SpmTokenizer, TokenType, vocabularyFromGguf, vocabularyFromSentencePiece, type Vocabulary } from '../../src/core/model/tokenizer';
import { encodeMessage, MessageBuilder } from '../../src/core/protobuf/encoder';
import { openModel } from '../../src/core/readers';

const stories = resolve(__dirname, '../../../shared/models/stories260K');

/** A vocabulary of the three specials, 256 byte pieces, then `normal` with their scores. */
function vocab(normal: Array<[string, number]>, extra: Partial<Vocabulary> = {}): Vocabulary {
  const pieces = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TokenType.Unknown, TokenType.Control, TokenType.Control];
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TokenType.Byte);
    scores.push(0);
  }
  for (const [p, s] of normal) {
    pieces.push(p);
    types.push(TokenType.Normal);
    scores.push(s);
  }
  return { pieces, scores: Float32Array.from(scores), types: Int32Array.from(types), bosId: 1, eosId: 2, unkId: 0, addBos: true, addSpacePrefix: true, ...extra };
}

test('SPM merges the best-scoring pair first, leftmost on ties, and falls back to bytes', () => {
  const v = vocab([
    ['▁', -1],
    ['a', -2],
    ['b', -2],
    ['ab', -3],
    ['▁a', -0.5],
    ['▁ab', -4],
  ]);
  const tok = new SpmTokenizer(v);
  const id = (p: string) => v.pieces.indexOf(p);
  // " ab" → ▁ a b: (▁,a) scores -0.5 beats (a,b) -3, then (▁a,b) = ▁ab.
  assert.deepEqual(Array.from(tok.encode('ab')), [1, id('▁ab')]);
  // "ba": b a → no "ba" piece; ▁b unknown; so ▁ b a each alone.
  assert.deepEqual(Array.from(tok.encode('ba', { addBos: false })), [id('▁'), id('b'), id('a')]);
  // é (0xC3 0xA9) is no piece: its two bytes.
  assert.deepEqual(Array.from(tok.encode('é', { addBos: false })), [id('▁'), 3 + 0xc3, 3 + 0xa9]);
  // A newline is a byte token; the space prefix only goes in front of the text.
  assert.deepEqual(Array.from(tok.encode('a\na', { addBos: false })), [id('▁a'), 3 + 0x0a, id('a')]);
  assert.equal(tok.decode(tok.encode('ab ba\né')), ' ab ba\né');
});

test('SPM ties: equal scores merge the leftmost pair first', () => {
  const v = vocab([
    ['x', -1],
    ['xx', -1],
  ], { addSpacePrefix: false });
  const tok = new SpmTokenizer(v);
  const xx = v.pieces.indexOf('xx');
  const x = v.pieces.indexOf('x');
  assert.deepEqual(Array.from(tok.encode('xxx', { addBos: false })), [xx, x]);
});

test('user-defined pieces are matched in the raw text; control pieces are not', () => {
  const v = vocab([['a', -1], ['<tag>', 0]]);
  v.types[v.pieces.indexOf('<tag>')] = TokenType.UserDefined;
  const tok = new SpmTokenizer(v);
  const a = v.pieces.indexOf('a');
  const byte = (c: string) => 3 + c.charCodeAt(0);
  const space = [3 + 0xe2, 3 + 0x96, 3 + 0x81];
  // ' a' (▁ has no piece: its three UTF-8 bytes), the tag, then ' a<s>' (a space prefix follows a special piece, as in
  // llama.cpp), '<s>' as bytes.
  assert.deepEqual(Array.from(tok.encode('a<tag>a<s>', { addBos: false })), [...space, a, v.pieces.indexOf('<tag>'), ...space, a, byte('<'), byte('s'), byte('>')]);
});

test('tokenizer.model is read with the protobuf scanner: pieces, scores, types, special ids, add_dummy_prefix', async () => {
  const model = new MessageBuilder();
  const pieces: Array<[string, number, number]> = [['<unk>', 0, 2], ['<s>', 0, 3], ['</s>', 0, 3], ['▁hi', -1.5, 1], ['h', -2, 1]];
  for (const [p, s, t] of pieces) model.message(1, new MessageBuilder().string(1, p).float(2, s).varint(3, t));
  model.message(2, new MessageBuilder().varint(40, 0).varint(41, 1).varint(42, 2));
  model.message(3, new MessageBuilder().varint(3, false));
  const v = vocabularyFromSentencePiece(await encodeMessage(model));
  assert.deepEqual(v.pieces, pieces.map((p) => p[0]));
  assert.deepEqual(Array.from(v.scores), [0, 0, 0, -1.5, -2]);
  assert.deepEqual(Array.from(v.types), [2, 3, 3, 1, 1]);
  assert.equal(v.addSpacePrefix, false);
  assert.throws(() => vocabularyFromSentencePiece(Uint8Array.of(0x0a, 0x05, 0x0a)), (e: Error & { code?: string }) => e.code === 'TRUNCATED' || e.code === 'INVALID_PROTOBUF');
});

test('stories260K: tokenizer.model and the GGUF arrays give the same ids on the calibration text', { skip: !existsSync(stories) && 'no ../shared/models' }, async () => {
  const fromModel = new SpmTokenizer(vocabularyFromSentencePiece(readFileSync(resolve(stories, 'hf/tokenizer.model'))));
  const gguf = await openModel(resolve(stories, 'stories260K-f32.gguf'));
  const fromGguf = new SpmTokenizer(vocabularyFromGguf(gguf.metadata));
  const text = readFileSync(resolve(stories, 'imatrix/calibration.txt'));
  const a = fromModel.encode(text);
  const b = fromGguf.encode(text);
  assert.equal(a.length, 1934);
  assert.deepEqual(a, b);
  assert.equal(a[0], 1);
  assert.equal(fromGguf.decode(a), ` ${text.toString('utf8')}`);
});
