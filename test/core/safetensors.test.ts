import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { MemoryByteSource, type ByteSource } from '../../src/core/bytesource';
import { QuantLensError, type ErrorCode } from '../../src/core/errors';
import { SAFETENSORS_MAX_HEADER_BYTES } from '../../src/core/limits';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import { readSafetensorsHeader, safetensorsReader } from '../../src/core/readers/safetensors';
import { headerFor, rawSafetensors, safetensorsBytes, tensorBytes } from '../fixtures/safetensors-builder';

const MODELS = resolve(__dirname, '../../../shared/models');

function read(bytes: Uint8Array) {
  return readSafetensorsHeader(new MemoryByteSource(bytes, 'case.safetensors'));
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<QuantLensError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof QuantLensError, `expected a QuantLensError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it opened`);
}

const t = (name: string, dtype: string, shape: number[]) => ({ name, dtype, shape });
const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

let scratch: string | undefined;
async function tempDir(): Promise<string> {
  scratch ??= await mkdtemp(join(tmpdir(), 'quantlens-st-'));
  const dir = join(scratch, String((await readdir(scratch)).length));
  await mkdir(dir);
  return dir;
}
after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('safetensors: valid files', () => {
  test('reads dtypes, shapes, offsets and __metadata__ as typed strings', async () => {
    const bytes = safetensorsBytes([t('a', 'F32', [2, 3]), t('b', 'BF16', [4]), t('c', 'I64', [])], { format: 'pt', note: 'x' });
    const h = await read(bytes);
    assert.deepEqual(h.metadata, { format: { type: 'string', value: 'pt' }, note: { type: 'string', value: 'x' } });
    assert.deepEqual(
      h.tensors.map((x) => [x.name, x.dtype, x.shape, x.byteOffset - h.dataOffset, x.byteLength, x.encoding]),
      [
        ['a', 'F32', [2, 3], 0, 24, 'raw'],
        ['b', 'BF16', [4], 24, 8, 'raw'],
        ['c', 'I64', [], 32, 8, 'raw'],
      ],
    );
    assert.equal(h.headerLength % 8, 0);
    assert.deepEqual(h.diagnostics, [], 'reference space padding is not a diagnostic');
  });

  test('JSON key order is free: tensors come sorted by offset', async () => {
    const header = { b: entry('F32', [1], [4, 8]), a: entry('F32', [1], [0, 4]) };
    const h = await read(rawSafetensors(JSON.stringify(header), 8));
    assert.deepEqual(h.tensors.map((x) => x.name), ['a', 'b']);
  });

  test('zero-element tensors and a tensor named __proto__', async () => {
    const header = { __proto__x: entry('F16', [0, 5], [0, 0]), e: entry('F32', [3, 0], [0, 0]) };
    const text = JSON.stringify(header).replace('__proto__x', '__proto__');
    const h = await read(rawSafetensors(text, 0));
    assert.deepEqual(h.tensors.map((x) => [x.name, x.byteLength]).sort(), [['__proto__', 0], ['e', 0]]);
  });

  test('reading the header reads no tensor data', async () => {
    const bytes = safetensorsBytes([t('w', 'F32', [256, 256])]);
    let readEnd = 0;
    const inner = new MemoryByteSource(bytes, 'spy');
    const spy: ByteSource = {
      name: 'spy',
      size: inner.size,
      read: async (offset, into) => {
        const n = await inner.read(offset, into);
        readEnd = Math.max(readEnd, offset + n);
        return n;
      },
      close: () => inner.close(),
    };
    const h = await readSafetensorsHeader(spy);
    assert.equal(readEnd, h.dataOffset);
  });
});

describe('safetensors: malformed input, one case per error code', () => {
  const cases: Array<[string, ErrorCode, () => Uint8Array]> = [
    ['file shorter than the length prefix', 'TRUNCATED', () => new Uint8Array(5)],
    ['header length past the end of the file', 'TRUNCATED', () => rawSafetensors('{}', 0, { declaredLength: 1000n })],
    ['data shorter than the offsets say', 'TRUNCATED', () => rawSafetensors(JSON.stringify({ a: entry('F32', [4], [0, 16]) }), 12)],
    ['header over 100 MB', 'HEADER_TOO_LARGE', () => rawSafetensors('{}', 0, { declaredLength: BigInt(SAFETENSORS_MAX_HEADER_BYTES + 1) })],
    ['header length 2^64-1', 'HEADER_TOO_LARGE', () => rawSafetensors('{}', 0, { declaredLength: (1n << 64n) - 1n })],
    ['header not UTF-8', 'INVALID_UTF8', () => rawSafetensors(Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]))],
    ['header not starting with {', 'INVALID_HEADER', () => rawSafetensors(' {}')],
    ['header a JSON array', 'INVALID_HEADER', () => rawSafetensors('[]')],
    ['tensor entry not an object', 'INVALID_HEADER', () => rawSafetensors('{"a":[1,2]}')],
    ['__metadata__ with a number value', 'INVALID_HEADER', () => rawSafetensors('{"__metadata__":{"n":3}}')],
    ['header not JSON', 'INVALID_JSON', () => rawSafetensors('{"a":')],
    ['NUL padding after the JSON', 'INVALID_JSON', () => rawSafetensors('{}\0\0\0\0\0\0')],
    ['unknown dtype', 'INVALID_DTYPE', () => rawSafetensors(JSON.stringify({ a: entry('F17', [1], [0, 4]) }), 4)],
    ['dtype not a string', 'INVALID_DTYPE', () => rawSafetensors('{"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}', 4)],
    ['negative extent', 'INVALID_SHAPE', () => rawSafetensors(JSON.stringify({ a: entry('F32', [-1], [0, 4]) }), 4)],
    ['fractional extent', 'INVALID_SHAPE', () => rawSafetensors(JSON.stringify({ a: entry('F32', [1.5], [0, 4]) }), 4)],
    ['shape not an array', 'INVALID_SHAPE', () => rawSafetensors(JSON.stringify({ a: entry('F32', '4', [0, 4]) }), 4)],
    ['gap between tensors', 'INVALID_OFFSETS', () => rawSafetensors(JSON.stringify({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }), 12)],
    ['overlapping tensors', 'INVALID_OFFSETS', () => rawSafetensors(JSON.stringify({ a: entry('F32', [2], [0, 8]), b: entry('F32', [1], [4, 8]) }), 8)],
    ['first tensor not at 0', 'INVALID_OFFSETS', () => rawSafetensors(JSON.stringify({ a: entry('F32', [1], [4, 8]) }), 8)],
    ['end before begin', 'INVALID_OFFSETS', () => rawSafetensors(JSON.stringify({ a: entry('F32', [0], [4, 0]) }), 4)],
    ['offsets not a pair', 'INVALID_OFFSETS', () => rawSafetensors(JSON.stringify({ a: entry('F32', [1], [0]) }), 4)],
    ['shape and byte span disagree', 'SIZE_MISMATCH', () => rawSafetensors(JSON.stringify({ a: entry('F32', [2, 2], [0, 12]) }), 12)],
    ['bytes after the last tensor', 'SIZE_MISMATCH', () => rawSafetensors(JSON.stringify({ a: entry('F32', [1], [0, 4]) }), 8)],
    ['odd count of 4-bit elements', 'SIZE_MISMATCH', () => rawSafetensors(JSON.stringify({ a: entry('F4', [3], [0, 2]) }), 2)],
    ['shape product past 2^64', 'OVERFLOW', () => rawSafetensors(JSON.stringify({ a: entry('F32', [2 ** 40, 2 ** 40], [0, 4]) }), 4)],
    ['extent past 2^53', 'OVERFLOW', () => rawSafetensors('{"a":{"dtype":"U8","shape":[1e20],"data_offsets":[0,1]}}', 1)],
    ['offset past 2^53', 'OVERFLOW', () => rawSafetensors('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1e17]}}', 1)],
    ['nine dimensions', 'LIMIT_EXCEEDED', () => rawSafetensors(JSON.stringify({ a: entry('U8', [1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 1]) }), 1)],
    ['same tensor name twice', 'DUPLICATE_NAME', () => rawSafetensors('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1)],
  ];
  for (const [name, code, build] of cases) {
    test(`${code}: ${name}`, async () => {
      await rejectsWith(read(build()), code);
    });
  }

  test('errors name the tensor and the file', async () => {
    const err = await rejectsWith(read(rawSafetensors(JSON.stringify({ w: entry('F32', [2, 2], [0, 12]) }), 12)), 'SIZE_MISMATCH');
    assert.equal(err.tensor, 'w');
    assert.equal(err.file, 'case.safetensors');
  });
});

describe('safetensors: soft issues still open with a diagnostic', () => {
  test('whitespace padding beyond the reference writer', async () => {
    const text = JSON.stringify(headerFor([t('a', 'F32', [1])])) + '\n\t        ';
    const h = await read(rawSafetensors(text, 4));
    assert.equal(h.tensors.length, 1);
    assert.deepEqual(h.diagnostics.map((d) => [d.severity, d.code]), [['warning', 'HEADER_PADDING']]);
  });

  test('a safetensors dtype QuantLens does not model is left out, its bytes still checked', async () => {
    const header = { e8: entry('F8_E8M0', [4], [0, 4]), f: entry('F32', [1], [4, 8]) };
    const h = await read(rawSafetensors(JSON.stringify(header), 8));
    assert.deepEqual(h.tensors.map((x) => x.name), ['f']);
    assert.deepEqual(h.diagnostics.map((d) => [d.code, d.tensor]), [['UNSUPPORTED_DTYPE', 'e8']]);
  });
});

describe('safetensors: sharded checkpoints', () => {
  async function shardSet(index: unknown, shards: Record<string, Uint8Array>): Promise<string> {
    const dir = await tempDir();
    for (const [name, bytes] of Object.entries(shards)) await writeFile(join(dir, name), bytes);
    await writeFile(join(dir, 'model.safetensors.index.json'), typeof index === 'string' ? index : JSON.stringify(index));
    return dir;
  }
  const shardA = () => safetensorsBytes([t('a', 'F32', [2]), t('b', 'F16', [2])], { format: 'pt' });
  const shardB = () => safetensorsBytes([t('c', 'F32', [3])], { format: 'pt', extra: 'b' });
  const goodMap = { a: 'm-1.safetensors', b: 'm-1.safetensors', c: 'm-2.safetensors' };

  test('index and folder open every shard; tensors carry their shard file', async () => {
    const dir = await shardSet({ metadata: { total_size: 24 }, weight_map: goodMap }, { 'm-1.safetensors': shardA(), 'm-2.safetensors': shardB() });
    for (const path of [join(dir, 'model.safetensors.index.json'), dir]) {
      const m = await safetensorsReader.read(path, nodeFileAccess);
      assert.equal(m.format, 'safetensors');
      assert.deepEqual(m.files, [join(dir, 'model.safetensors.index.json'), join(dir, 'm-1.safetensors'), join(dir, 'm-2.safetensors')]);
      assert.deepEqual(m.tensors.map((x) => [x.name, x.file]), [['a', join(dir, 'm-1.safetensors')], ['b', join(dir, 'm-1.safetensors')], ['c', join(dir, 'm-2.safetensors')]]);
      assert.deepEqual(Object.keys(m.metadata), ['format', 'extra']);
      assert.deepEqual(m.diagnostics, []);
    }
  });

  test('MISSING_SHARD: weight_map names an absent file', async () => {
    const dir = await shardSet({ weight_map: goodMap }, { 'm-1.safetensors': shardA() });
    await rejectsWith(safetensorsReader.read(dir, nodeFileAccess), 'MISSING_SHARD');
  });

  test('TENSOR_NOT_FOUND: weight_map puts a tensor in a shard that lacks it', async () => {
    const dir = await shardSet({ weight_map: { ...goodMap, c: 'm-1.safetensors', a: 'm-2.safetensors' } }, { 'm-1.safetensors': shardA(), 'm-2.safetensors': shardB() });
    await rejectsWith(safetensorsReader.read(dir, nodeFileAccess), 'TENSOR_NOT_FOUND');
  });

  test('DUPLICATE_NAME: the same tensor in two shards', async () => {
    const dir = await shardSet({ weight_map: goodMap }, { 'm-1.safetensors': shardA(), 'm-2.safetensors': safetensorsBytes([t('c', 'F32', [1]), t('a', 'F32', [1])]) });
    await rejectsWith(safetensorsReader.read(dir, nodeFileAccess), 'DUPLICATE_NAME');
  });

  test('UNSAFE_PATH: a shard outside the index folder', async () => {
    const dir = await shardSet({ weight_map: { a: '../m-1.safetensors' } }, {});
    await rejectsWith(safetensorsReader.read(dir, nodeFileAccess), 'UNSAFE_PATH');
  });

  test('INVALID_JSON, INVALID_HEADER: a broken index', async () => {
    await rejectsWith(safetensorsReader.read(await shardSet('{"weight_map": ', {}), nodeFileAccess), 'INVALID_JSON');
    await rejectsWith(safetensorsReader.read(await shardSet({ metadata: {} }, {}), nodeFileAccess), 'INVALID_HEADER');
    await rejectsWith(safetensorsReader.read(await shardSet({ weight_map: { a: 3 } }, {}), nodeFileAccess), 'INVALID_HEADER');
  });

  test('opens with diagnostics: tensor missing from weight_map, total_size off', async () => {
    const dir = await shardSet({ metadata: { total_size: 999 }, weight_map: { a: 'm-1.safetensors', c: 'm-2.safetensors' } }, { 'm-1.safetensors': shardA(), 'm-2.safetensors': shardB() });
    const m = await safetensorsReader.read(dir, nodeFileAccess);
    assert.equal(m.tensors.length, 3);
    assert.deepEqual(m.diagnostics.map((d) => [d.code, d.tensor]), [['NOT_IN_WEIGHT_MAP', 'b'], ['TOTAL_SIZE_MISMATCH', undefined]]);
  });

  test('a folder of safetensors files without an index opens as shards, with a warning', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'x.safetensors'), shardA());
    await writeFile(join(dir, 'y.safetensors'), shardB());
    const m = await safetensorsReader.read(dir, nodeFileAccess);
    assert.deepEqual(m.tensors.map((x) => x.name), ['a', 'b', 'c']);
    assert.deepEqual(m.diagnostics.map((d) => d.code), ['NO_INDEX']);
  });

  test('an aborted signal cancels the read', async () => {
    const dir = await shardSet({ weight_map: goodMap }, { 'm-1.safetensors': shardA(), 'm-2.safetensors': shardB() });
    const ac = new AbortController();
    ac.abort();
    await rejectsWith(safetensorsReader.read(dir, nodeFileAccess, { signal: ac.signal }), 'CANCELLED');
  });

  test('sniff claims safetensors names and heads, not others', () => {
    const head = safetensorsBytes([t('a', 'F32', [1])]).subarray(0, 64);
    assert.ok(safetensorsReader.sniff('/x/model.bin', head));
    assert.ok(safetensorsReader.sniff('/x/model.safetensors.index.json', new Uint8Array()));
    assert.ok(!safetensorsReader.sniff('/x/model.gguf', new TextEncoder().encode('GGUF\x03\0\0\0')));
  });
});

describe('safetensors: real checkpoints in ../shared/models', () => {
  const have = existsSync(MODELS);

  test('every .safetensors opens', { skip: !have && 'shared models folder absent' }, async () => {
    const files = (await readdir(MODELS, { recursive: true })).filter((f) => f.endsWith('.safetensors'));
    assert.ok(files.length >= 5);
    for (const f of files) {
      const m = await safetensorsReader.read(join(MODELS, f), nodeFileAccess);
      assert.ok(m.tensors.length > 0, f);
      assert.deepEqual(m.diagnostics, [], f);
    }
  });

  test('stories260K in F32, BF16, F16 and sharded holds the same 47 tensors', { skip: !have && 'shared models folder absent' }, async () => {
    const dir = join(MODELS, 'stories260K');
    const f32 = await safetensorsReader.read(join(dir, 'hf/model.safetensors'), nodeFileAccess);
    assert.equal(f32.tensors.length, 47);
    assert.deepEqual(f32.metadata, { format: { type: 'string', value: 'pt' } });
    const embed = f32.tensors.find((x) => x.name === 'model.embed_tokens.weight')!;
    assert.deepEqual([embed.dtype, embed.shape, embed.byteLength], ['F32', [512, 64], 512 * 64 * 4]);
    const shape = (m: typeof f32) => m.tensors.map((x) => `${x.name}:${x.shape.join('x')}`).sort();
    for (const [sub, dtype] of [['hf-bf16', 'BF16'], ['hf-f16', 'F16']] as const) {
      const m = await safetensorsReader.read(join(dir, sub, 'model.safetensors'), nodeFileAccess);
      assert.deepEqual(shape(m), shape(f32));
      assert.ok(m.tensors.every((x) => x.dtype === dtype && x.byteLength === tensorBytes(dtype, x.shape)));
    }
    const sharded = await safetensorsReader.read(join(dir, 'hf-sharded'), nodeFileAccess);
    assert.deepEqual(shape(sharded), shape(f32));
    assert.equal(sharded.files.length, 3);
    assert.equal(new Set(sharded.tensors.map((x) => x.file)).size, 2);
  });

  test('silero-vad: 15 F32 tensors, no __metadata__', { skip: !have && 'shared models folder absent' }, async () => {
    const m = await safetensorsReader.read(join(MODELS, 'silero-vad/silero_vad_16k.safetensors'), nodeFileAccess);
    assert.equal(m.tensors.length, 15);
    assert.deepEqual(m.metadata, {});
  });
});
