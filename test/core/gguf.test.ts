import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { FileByteSource, MemoryByteSource, readExact, type ByteSource } from '../../src/core/bytesource';
import { QuantLensError, type ErrorCode } from '../../src/core/errors';
import { encodeGgufHeader, ggufPadding, layoutGgufTensorData, type GgufHeaderSpec } from '../../src/core/gguf/write';
import { GGUF_MAX_ARRAY_DEPTH, GGUF_MAX_ARRAY_LENGTH, GGUF_MAX_STRING_BYTES, GGUF_MAX_TENSORS } from '../../src/core/limits';
import type { MetadataValue } from '../../src/core/model';
import { ggufReader, readGgufHeader, type GgufHeader } from '../../src/core/readers/gguf';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import { safetensorsReader } from '../../src/core/readers/safetensors';
import { buildGguf, GGUF_TYPE, kv, type GgufSpec } from '../fixtures/gguf-builder';

const MODELS = resolve(__dirname, '../../../shared/models');
const haveModels = existsSync(MODELS);
const skipModels = !haveModels && 'shared models folder absent';

const F32 = 0;
const F16 = 1;
const Q4_0 = 2;
const Q8_0 = 8;

function read(bytes: Uint8Array): Promise<GgufHeader> {
  return readGgufHeader(new MemoryByteSource(bytes, 'case.gguf'));
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

let scratch: string | undefined;
async function tempDir(): Promise<string> {
  scratch ??= await mkdtemp(join(tmpdir(), 'quantlens-gguf-'));
  const dir = join(scratch, String((await readdir(scratch)).length));
  await mkdir(dir);
  return dir;
}
after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const two = (): GgufSpec['tensors'] => [
  { name: 'a', ne: [4, 2], type: F32 },
  { name: 'b', ne: [32], type: Q4_0 },
];

describe('GGUF: valid files', () => {
  test('every metadata value type, typed, 64-bit integers as bigint, in file order', async () => {
    const h = await read(
      buildGguf({
        kv: [
          kv.u8('u8', 250), kv.i8('i8', 0xff), kv.u16('u16', 65535), kv.i16('i16', -2), kv.u32('u32', 4294967295),
          kv.i32('i32', -7), kv.f32('f32', 0.5), kv.bool('bool', 1), kv.str('str', 'héllo ▁x 😀'),
          kv.u64('u64', (1n << 64n) - 1n), kv.i64('i64', -(1n << 63n)), kv.f64('f64', Math.PI),
          kv.array('arr.u64', GGUF_TYPE.u64, 2, (b) => b.u64(1).u64(1n << 60n)),
          kv.array('arr.str', GGUF_TYPE.string, 3, (b) => b.str('a').str('').str('▁the')),
          kv.array('arr.bool', GGUF_TYPE.bool, 2, (b) => b.u8(0).u8(1)),
          kv.array('arr.nested', GGUF_TYPE.array, 2, (b) => {
            b.i32(GGUF_TYPE.i16).u64(2).i16(-1).i16(2);
            b.i32(GGUF_TYPE.array).u64(1).i32(GGUF_TYPE.f64).u64(1).f64(1.5);
          }),
        ],
      }),
    );
    const expected: Record<string, MetadataValue> = {
      u8: { type: 'u8', value: 250 },
      i8: { type: 'i8', value: -1 },
      u16: { type: 'u16', value: 65535 },
      i16: { type: 'i16', value: -2 },
      u32: { type: 'u32', value: 4294967295 },
      i32: { type: 'i32', value: -7 },
      f32: { type: 'f32', value: 0.5 },
      bool: { type: 'bool', value: true },
      str: { type: 'string', value: 'héllo ▁x 😀' },
      u64: { type: 'u64', value: (1n << 64n) - 1n },
      i64: { type: 'i64', value: -(1n << 63n) },
      f64: { type: 'f64', value: Math.PI },
      'arr.u64': { type: 'array', itemType: 'u64', value: [1n, 1n << 60n] },
      'arr.str': { type: 'array', itemType: 'string', value: ['a', '', '▁the'] },
      'arr.bool': { type: 'array', itemType: 'bool', value: [false, true] },
      'arr.nested': {
        type: 'array',
        itemType: 'array',
        value: [
          { type: 'array', itemType: 'i16', value: [-1, 2] },
          { type: 'array', itemType: 'array', value: [{ type: 'array', itemType: 'f64', value: [1.5] }] },
        ],
      },
    };
    assert.deepEqual(h.metadata, expected);
    assert.deepEqual(Object.keys(h.metadata), Object.keys(expected));
    assert.deepEqual(h.diagnostics, []);
  });

  test('tensors: ne[] reversed into row-major shape, offsets, sizes, alignment 32', async () => {
    const bytes = buildGguf({ tensors: [...two()!, { name: 'scalar', ne: [], type: F32 }, { name: 'q', ne: [64, 3, 1], type: Q8_0 }] });
    const h = await read(bytes);
    assert.equal(h.version, 3);
    assert.equal(h.alignment, 32);
    assert.equal(h.dataOffset % 32, 0);
    assert.deepEqual(
      h.tensors.map((x) => [x.name, x.dtype, x.shape, x.offset, x.byteLength]),
      [
        ['a', 'F32', [2, 4], 0, 32],
        ['b', 'Q4_0', [32], 32, 18],
        ['scalar', 'F32', [], 64, 4],
        ['q', 'Q8_0', [1, 3, 64], 96, 204],
      ],
    );
    assert.ok(h.tensors.every((x) => x.byteOffset === h.dataOffset + x.offset));
  });

  test('v2 files and general.alignment 64 are honoured', async () => {
    const h = await read(buildGguf({ version: 2, alignment: 64, kv: [kv.u32('general.alignment', 64)], tensors: two() }));
    assert.equal(h.version, 2);
    assert.equal(h.alignment, 64);
    assert.equal(h.dataOffset % 64, 0);
    assert.deepEqual(h.tensors.map((x) => x.offset), [0, 64]);
  });

  test('the reader opens through the registry interface: format, files, tensors', async () => {
    const dir = await tempDir();
    const path = join(dir, 'm.gguf');
    await writeFile(path, buildGguf({ kv: [kv.str('general.architecture', 'llama')], tensors: two() }));
    const m = await ggufReader.read(path, nodeFileAccess);
    assert.equal(m.format, 'gguf');
    assert.deepEqual(m.files, [path]);
    assert.deepEqual(m.tensors.map((x) => [x.name, x.file, x.encoding]), [['a', path, 'raw'], ['b', path, 'raw']]);
    assert.ok(ggufReader.sniff('/x/y.bin', new TextEncoder().encode('GGUF')));
    assert.ok(!ggufReader.sniff('/x/y.safetensors', new Uint8Array(8)));
  });

  test('names and values longer than a read chunk', async () => {
    const longName = 'n'.repeat(100_000);
    const longValue = 'v'.repeat(3_000_000);
    const h = await read(buildGguf({ kv: [kv.str('long', longValue)], tensors: [{ name: longName, ne: [4], type: F32 }] }));
    assert.equal((h.metadata.long as { value: string }).value.length, 3_000_000);
    assert.equal(h.tensors[0]!.name, longName);
    assert.deepEqual(h.diagnostics.map((d) => d.code), ['NAME_TOO_LONG']);
  });

  test('an aborted signal cancels the read', async () => {
    const ac = new AbortController();
    ac.abort();
    await rejectsWith(readGgufHeader(new MemoryByteSource(buildGguf({ tensors: two() }), 'x.gguf'), { signal: ac.signal }), 'CANCELLED');
  });

  test('reading reads the header, not the tensor data', async () => {
    const bytes = buildGguf({ tensors: [{ name: 'big', ne: [1024, 1024], type: F32 }] });
    let readBytes = 0;
    const inner = new MemoryByteSource(bytes, 'spy');
    const spy: ByteSource = {
      name: 'spy',
      size: inner.size,
      read: async (o, into) => {
        const n = await inner.read(o, into);
        readBytes += n;
        return n;
      },
      close: () => inner.close(),
    };
    await readGgufHeader(spy);
    assert.ok(readBytes <= 64 * 1024, `read ${readBytes} bytes of a ${bytes.length}-byte file`);
  });
});

describe('GGUF: malformed input, one case per error code', () => {
  const cases: Array<[string, ErrorCode, () => Uint8Array]> = [
    ['wrong magic', 'BAD_MAGIC', () => buildGguf({ magic: 'GGUG' })],
    ['version 1', 'UNSUPPORTED_VERSION', () => buildGguf({ version: 1 })],
    ['version 4', 'UNSUPPORTED_VERSION', () => buildGguf({ version: 4 })],
    ['big-endian version 3', 'UNSUPPORTED_VERSION', () => buildGguf({ version: 0x03000000 })],
    ['file ends inside the counts', 'TRUNCATED', () => buildGguf().subarray(0, 12)],
    ['string runs past the end', 'TRUNCATED', () => buildGguf({ kv: [kv.raw('k', (b) => b.i32(GGUF_TYPE.string).str('abc', 4096))] })],
    ['more tensors than bytes could hold', 'TRUNCATED', () => buildGguf({ nTensors: 1_000_000 })],
    ['array count past the end', 'TRUNCATED', () => buildGguf({ kv: [kv.array('k', GGUF_TYPE.u32, 1_000_000, () => {})] })],
    ['tensor data past the end of the file', 'TRUNCATED', () => buildGguf({ tensors: two(), dataBytes: 40 })],
    ['tensor count over the limit', 'LIMIT_EXCEEDED', () => buildGguf({ nTensors: GGUF_MAX_TENSORS + 1 })],
    ['string over the length cap', 'LIMIT_EXCEEDED', () => buildGguf({ kv: [kv.raw('k', (b) => b.i32(GGUF_TYPE.string).str('x', GGUF_MAX_STRING_BYTES + 1))] })],
    ['array over the length cap', 'LIMIT_EXCEEDED', () => buildGguf({ kv: [kv.array('k', GGUF_TYPE.u8, GGUF_MAX_ARRAY_LENGTH + 1, () => {})] })],
    [
      'arrays nested too deep',
      'LIMIT_EXCEEDED',
      () =>
        buildGguf({
          kv: [
            kv.raw('k', (b) => {
              b.i32(GGUF_TYPE.array);
              for (let i = 0; i < GGUF_MAX_ARRAY_DEPTH + 1; i++) b.i32(GGUF_TYPE.array).u64(1);
              b.i32(GGUF_TYPE.u8).u64(0);
            }),
          ],
        }),
    ],
    ['five dimensions', 'LIMIT_EXCEEDED', () => buildGguf({ tensors: [{ name: 't', ne: [1, 1, 1, 1, 1], type: F32 }] })],
    ['alignment over the limit', 'LIMIT_EXCEEDED', () => buildGguf({ kv: [kv.u32('general.alignment', 1 << 20)] })],
    ['negative key count', 'INVALID_HEADER', () => buildGguf({ nKv: -1 })],
    ['empty key', 'INVALID_HEADER', () => buildGguf({ kv: [kv.u8('', 1)] })],
    ['value type 13', 'INVALID_VALUE_TYPE', () => buildGguf({ kv: [kv.raw('k', (b) => b.i32(13).u8(0))] })],
    ['array item type -1', 'INVALID_VALUE_TYPE', () => buildGguf({ kv: [kv.array('k', -1, 0, () => {})] })],
    ['alignment not a power of two', 'INVALID_ALIGNMENT', () => buildGguf({ kv: [kv.u32('general.alignment', 48)] })],
    ['alignment zero', 'INVALID_ALIGNMENT', () => buildGguf({ kv: [kv.u32('general.alignment', 0)] })],
    ['alignment stored as u64', 'INVALID_ALIGNMENT', () => buildGguf({ kv: [kv.u64('general.alignment', 32n)] })],
    ['removed ggml type 4 (Q4_2)', 'INVALID_DTYPE', () => buildGguf({ tensors: [{ name: 't', ne: [32], type: 4 }] })],
    ['unknown ggml type 1000', 'INVALID_DTYPE', () => buildGguf({ tensors: [{ name: 't', ne: [32], type: 1000 }] })],
    ['negative extent', 'INVALID_SHAPE', () => buildGguf({ tensors: [{ name: 't', ne: [4, -1], type: F32 }] })],
    ['row not a multiple of the block size', 'INVALID_SHAPE', () => buildGguf({ tensors: [{ name: 't', ne: [33, 2], type: Q4_0 }] })],
    ['element count past int64', 'OVERFLOW', () => buildGguf({ tensors: [{ name: 't', ne: [1n << 32n, 1n << 32n], type: F32 }] })],
    ['extent past 2^53', 'OVERFLOW', () => buildGguf({ tensors: [{ name: 't', ne: [0, 1n << 60n], type: F32 }] })],
    ['offset not aligned', 'INVALID_OFFSETS', () => buildGguf({ tensors: [{ name: 't', ne: [4], type: F32, offset: 4 }], dataBytes: 64 })],
    [
      'overlapping tensors',
      'INVALID_OFFSETS',
      () => buildGguf({ tensors: [{ name: 'a', ne: [64], type: F32, offset: 0 }, { name: 'b', ne: [8], type: F32, offset: 32 }] }),
    ],
    ['duplicate key', 'DUPLICATE_NAME', () => buildGguf({ kv: [kv.u8('k', 1), kv.u8('k', 2)] })],
    ['duplicate tensor name', 'DUPLICATE_NAME', () => buildGguf({ tensors: [{ name: 'a', ne: [4], type: F32 }, { name: 'a', ne: [4], type: F32 }] })],
    ['key not UTF-8', 'INVALID_UTF8', () => buildGguf({ kv: [kv.raw(Uint8Array.from([0x6b, 0xc3]), (b) => b.i32(GGUF_TYPE.u8).u8(0))] })],
    ['tensor name not UTF-8', 'INVALID_UTF8', () => buildGguf({ tensors: [{ name: Uint8Array.from([0xed, 0xa0, 0x80]), ne: [4], type: F32 }] })],
  ];
  for (const [name, code, build] of cases) {
    test(`${code}: ${name}`, async () => {
      await rejectsWith(read(build()), code);
    });
  }

  test('every prefix of a valid file fails with TRUNCATED, never anything untyped', async () => {
    const bytes = buildGguf({ kv: [kv.str('s', 'abc'), kv.array('a', GGUF_TYPE.i32, 2, (b) => b.i32(1).i32(2))], tensors: two() });
    const h = await read(bytes);
    for (let n = 0; n < h.headerEnd; n++) await rejectsWith(read(bytes.subarray(0, n)), 'TRUNCATED');
  });

  test('errors carry offset, tensor and file', async () => {
    const err = await rejectsWith(read(buildGguf({ tensors: [{ name: 'w', ne: [33], type: Q4_0 }] })), 'INVALID_SHAPE');
    assert.equal(err.tensor, 'w');
    assert.equal(err.file, 'case.gguf');
    assert.ok(typeof err.offset === 'number' && err.offset > 24);
  });
});

describe('GGUF: soft issues still open with a diagnostic', () => {
  const codes = (h: GgufHeader) => h.diagnostics.map((d) => d.code);

  test('data not packed in listed order (llama.cpp refuses, we read)', async () => {
    const h = await read(buildGguf({ tensors: [{ name: 'a', ne: [8], type: F32, offset: 32 }, { name: 'b', ne: [8], type: F32, offset: 0 }] }));
    assert.deepEqual(h.tensors.map((x) => x.offset), [32, 0]);
    assert.deepEqual(codes(h), ['NON_CANONICAL_LAYOUT']);
  });

  test('tensor name of 64 bytes or more', async () => {
    const h = await read(buildGguf({ tensors: [{ name: 'x'.repeat(70), ne: [4], type: F32 }] }));
    assert.deepEqual(codes(h), ['NAME_TOO_LONG']);
  });

  test('string value that is not UTF-8, and a bool stored as 2', async () => {
    const h = await read(buildGguf({ kv: [kv.str('tok', Uint8Array.from([0x61, 0xff])), kv.bool('flag', 2)] }));
    assert.deepEqual(h.metadata.tok, { type: 'string', value: 'a\ufffd' });
    assert.deepEqual(h.metadata.flag, { type: 'bool', value: true });
    assert.deepEqual(codes(h), ['INVALID_UTF8_VALUE', 'BOOL_VALUE']);
  });
});

describe('GGUF: split files', () => {
  async function writeSplit(dir: string, shards: Array<{ no: number; count: number; tensors: GgufSpec['tensors']; total?: number }>, prefix = 'm') {
    const paths: string[] = [];
    for (const s of shards) {
      const name = `${prefix}-${String(s.no + 1).padStart(5, '0')}-of-${String(s.count).padStart(5, '0')}.gguf`;
      const extra = s.no === 0 ? [kv.str('general.architecture', 'llama')] : [];
      const bytes = buildGguf({
        kv: [...extra, kv.u16('split.no', s.no), kv.u16('split.count', s.count), kv.i32('split.tensors.count', s.total ?? 3)],
        tensors: s.tensors,
      });
      await writeFile(join(dir, name), bytes);
      paths.push(join(dir, name));
    }
    return paths;
  }
  const shards = (count = 2) => [
    { no: 0, count, tensors: [{ name: 'a', ne: [4], type: F32 }, { name: 'b', ne: [4], type: F16 }] },
    { no: 1, count, tensors: [{ name: 'c', ne: [8], type: F32 }] },
  ];

  test('opening any shard opens all; metadata from the first, tensors carry their shard', async () => {
    const dir = await tempDir();
    const paths = await writeSplit(dir, shards());
    for (const p of paths) {
      const m = await ggufReader.read(p, nodeFileAccess);
      assert.deepEqual(m.files, paths);
      assert.deepEqual(m.tensors.map((x) => [x.name, x.file]), [['a', paths[0]], ['b', paths[0]], ['c', paths[1]]]);
      assert.deepEqual(m.metadata['general.architecture'], { type: 'string', value: 'llama' });
      assert.deepEqual(m.diagnostics, []);
    }
  });

  test('MISSING_SHARD: a shard is absent', async () => {
    const dir = await tempDir();
    const [first] = await writeSplit(dir, shards(3));
    await rejectsWith(ggufReader.read(first!, nodeFileAccess), 'MISSING_SHARD');
  });

  test('DUPLICATE_NAME: a tensor in two shards', async () => {
    const dir = await tempDir();
    const [first] = await writeSplit(dir, [shards()[0]!, { no: 1, count: 2, tensors: [{ name: 'a', ne: [4], type: F32 }] }]);
    await rejectsWith(ggufReader.read(first!, nodeFileAccess), 'DUPLICATE_NAME');
  });

  test('INVALID_HEADER: split.no disagrees with the file name', async () => {
    const dir = await tempDir();
    const [first, second] = await writeSplit(dir, shards());
    await writeFile(second!, buildGguf({ kv: [kv.u16('split.no', 0), kv.u16('split.count', 2)] }));
    await rejectsWith(ggufReader.read(first!, nodeFileAccess), 'INVALID_HEADER');
  });

  test('opens with diagnostics: split.tensors.count off; a renamed shard', async () => {
    const dir = await tempDir();
    const paths = await writeSplit(dir, shards().map((s) => ({ ...s, total: 5 })));
    const m = await ggufReader.read(paths[0]!, nodeFileAccess);
    assert.deepEqual(m.diagnostics.map((d) => d.code), ['SPLIT_TENSOR_COUNT']);
    const renamed = join(dir, 'renamed.gguf');
    await copyFile(paths[0]!, renamed);
    const one = await ggufReader.read(renamed, nodeFileAccess);
    assert.equal(one.tensors.length, 2);
    assert.deepEqual(one.diagnostics.map((d) => d.code), ['SPLIT_UNLOCATED']);
  });
});

describe('GGUF header encoder', () => {
  test('encodes what the builder builds, byte for byte', async () => {
    const bytes = buildGguf({
      kv: [
        kv.str('general.architecture', 'llama'), kv.u32('n', 7), kv.i64('big', -5n), kv.bool('b', 1), kv.f32('f', 0.25),
        kv.array('toks', GGUF_TYPE.string, 2, (b) => b.str('▁a').str('b')),
        kv.array('nest', GGUF_TYPE.array, 1, (b) => b.i32(GGUF_TYPE.u8).u64(2).u8(1).u8(2)),
      ],
      tensors: two(),
    });
    const h = await read(bytes);
    const enc = encodeGgufHeader({ version: h.version, metadata: h.metadata, alignment: h.alignment, tensors: h.tensors });
    assert.equal(enc.length, h.dataOffset);
    assert.deepEqual(enc, bytes.subarray(0, h.dataOffset));
  });

  test('layout places tensors as llama.cpp does: padded to the alignment, in order', () => {
    const { offsets, dataBytes } = layoutGgufTensorData(
      [{ dtype: 'F32', shape: [3] }, { dtype: 'Q4_0', shape: [2, 32] }, { dtype: 'F16', shape: [64] }],
      32,
    );
    assert.deepEqual(offsets, [0, 32, 96]);
    assert.equal(dataBytes, 224);
    assert.equal(ggufPadding(33, 32), 31);
    assert.equal(ggufPadding(64, 32), 0);
  });

  test('refuses specs the reader would refuse', () => {
    const base: GgufHeaderSpec = { version: 3, metadata: {}, tensors: [], alignment: 32 };
    const refuse = (spec: Partial<GgufHeaderSpec>, code: ErrorCode) =>
      assert.throws(() => encodeGgufHeader({ ...base, ...spec }), (e: unknown) => e instanceof QuantLensError && e.code === code);
    refuse({ version: 1 }, 'UNSUPPORTED_VERSION');
    refuse({ alignment: 48 }, 'INVALID_ALIGNMENT');
    refuse({ alignment: 64 }, 'INVALID_ALIGNMENT');
    refuse({ alignment: 64, metadata: { 'general.alignment': { type: 'u64', value: 64n } } }, 'INVALID_ALIGNMENT');
    refuse({ metadata: { k: { type: 'u8', value: 256 } } }, 'INVALID_VALUE_TYPE');
    refuse({ metadata: { k: { type: 'i64', value: 1 as unknown as bigint } } }, 'INVALID_VALUE_TYPE');
    refuse({ tensors: [{ name: 't', dtype: 'F8_E4M3', shape: [4], offset: 0 }] }, 'UNSUPPORTED');
    refuse({ tensors: [{ name: 't', dtype: 'Q4_0', shape: [33], offset: 0 }] }, 'INVALID_SHAPE');
    refuse({ tensors: [{ name: 't', dtype: 'F32', shape: [1, 1, 1, 1, 1], offset: 0 }] }, 'LIMIT_EXCEEDED');
    refuse({ tensors: [{ name: 't', dtype: 'F32', shape: [4], offset: 16 }] }, 'INVALID_OFFSETS');
    refuse({ tensors: [{ name: 't', dtype: 'F32', shape: [4], offset: 0 }, { name: 't', dtype: 'F32', shape: [4], offset: 32 }] }, 'DUPLICATE_NAME');
    assert.doesNotThrow(() => encodeGgufHeader({ ...base, alignment: 64, metadata: { 'general.alignment': { type: 'u32', value: 64 } } }));
  });
});

describe('GGUF: real files in ../shared/models', () => {
  async function ggufFiles(): Promise<string[]> {
    return (await readdir(MODELS, { recursive: true })).filter((f) => f.endsWith('.gguf')).map((f) => join(MODELS, f)).sort();
  }

  test('every .gguf opens with no diagnostics', { skip: skipModels }, async () => {
    const files = await ggufFiles();
    assert.ok(files.length >= 10);
    for (const f of files) {
      const m = await ggufReader.read(f, nodeFileAccess);
      assert.deepEqual(m.diagnostics, [], f);
    }
  });

  test('re-encoding each header gives the file\'s header bytes, padding included', { skip: skipModels }, async () => {
    for (const f of await ggufFiles()) {
      const src = await FileByteSource.open(f);
      try {
        const h = await readGgufHeader(src);
        const enc = encodeGgufHeader({ version: h.version, metadata: h.metadata, alignment: h.alignment, tensors: h.tensors });
        const n = Math.min(enc.length, src.size);
        assert.deepEqual(enc.subarray(0, n), await readExact(src, 0, n), basename(f));
        assert.ok(enc.subarray(n).every((b) => b === 0));
        if (h.tensors.length > 0) assert.equal(enc.length, h.dataOffset, basename(f));
      } finally {
        await src.close();
      }
    }
  });

  test('stories260K-f32.gguf: 48 tensors, llama metadata', { skip: skipModels }, async () => {
    const m = await ggufReader.read(join(MODELS, 'stories260K/stories260K-f32.gguf'), nodeFileAccess);
    assert.equal(m.tensors.length, 48);
    assert.deepEqual(m.metadata['general.architecture'], { type: 'string', value: 'llama' });
    assert.deepEqual(m.metadata['llama.block_count'], { type: 'u32', value: 5 });
    const tokens = m.metadata['tokenizer.ggml.tokens']!;
    assert.ok(tokens.type === 'array' && tokens.itemType === 'string' && tokens.value.length === 512);
    const embd = m.tensors.find((x) => x.name === 'token_embd.weight')!;
    assert.deepEqual([embd.dtype, embd.shape], ['F32', [512, 64]]);
  });

  test('the gguf-split folder gives the same 48 tensors as the single file', { skip: skipModels }, async () => {
    const single = await ggufReader.read(join(MODELS, 'stories260K/stories260K-f32.gguf'), nodeFileAccess);
    const split = await ggufReader.read(join(MODELS, 'stories260K/gguf-split/stories260K-f32-00001-of-00003.gguf'), nodeFileAccess);
    assert.equal(split.files.length, 3);
    const key = (m: typeof single) => m.tensors.map((x) => `${x.name}:${x.dtype}:${x.shape.join('x')}:${x.byteLength}`);
    assert.deepEqual(key(split), key(single));
    // same bytes for a tensor in the last shard
    const name = 'blk.4.ffn_norm.weight';
    const bytesOf = async (m: typeof single) => {
      const t = m.tensors.find((x) => x.name === name)!;
      const src = await FileByteSource.open(t.file);
      try {
        return await readExact(src, t.byteOffset, t.byteLength);
      } finally {
        await src.close();
      }
    };
    assert.deepEqual(await bytesOf(split), await bytesOf(single));
  });

  test('ggml-vocab-llama-spm.gguf: 0 tensors, tokenizer arrays', { skip: skipModels }, async () => {
    const m = await ggufReader.read(join(MODELS, 'gguf-vocab-only/ggml-vocab-llama-spm.gguf'), nodeFileAccess);
    assert.equal(m.tensors.length, 0);
    const tokens = m.metadata['tokenizer.ggml.tokens']!;
    assert.ok(tokens.type === 'array' && tokens.value.length > 1000);
  });

  test('hf/model.safetensors holds the stories260K weights of the GGUF', { skip: skipModels }, async () => {
    const gguf = await ggufReader.read(join(MODELS, 'stories260K/stories260K-f32.gguf'), nodeFileAccess);
    const st = await safetensorsReader.read(join(MODELS, 'stories260K/hf/model.safetensors'), nodeFileAccess);
    // norms are not permuted between the layouts, so their bytes match exactly
    for (const [g, h] of [['output_norm.weight', 'model.norm.weight'], ['blk.2.ffn_norm.weight', 'model.layers.2.post_attention_layernorm.weight']]) {
      const a = gguf.tensors.find((x) => x.name === g)!;
      const b = st.tensors.find((x) => x.name === h)!;
      assert.deepEqual(a.shape, b.shape);
      const read = async (t: typeof a) => {
        const src = await FileByteSource.open(t.file);
        try {
          return await readExact(src, t.byteOffset, t.byteLength);
        } finally {
          await src.close();
        }
      };
      assert.deepEqual(await read(a), await read(b), `${g} vs ${h}`);
    }
  });
});
