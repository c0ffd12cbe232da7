import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { MemoryByteSource, type ByteSource } from '../../src/core/bytesource';
import { QuantLensError } from '../../src/core/errors';
import type { ModelInfo, TensorInfo } from '../../src/core/model';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import { gatherStridedView, pytorchReader } from '../../src/core/readers/pytorch';
import type { FileAccess } from '../../src/core/readers/types';
import {
  concat,
  f32Bytes,
  global,
  legacyCheckpoint,
  ordered,
  pickle,
  PickleWriter,
  reduce,
  tensor,
  tuple,
  type TensorSpec,
} from '../fixtures/pickle-builder';
import { buildZip, torchZip } from '../fixtures/zip-builder';

const MODELS = resolve(__dirname, '../../../shared/models');

/** FileAccess over in-memory files, keyed by absolute path. */
function memoryFiles(files: Record<string, Uint8Array>): FileAccess {
  return {
    async open(path: string): Promise<ByteSource> {
      const bytes = files[path];
      if (!bytes) throw new QuantLensError('IO', `no such file ${path}`, { file: path });
      return new MemoryByteSource(bytes, path);
    },
    async exists(path: string): Promise<boolean> {
      return path in files || Object.keys(files).some((p) => p.startsWith(`${path}/`));
    },
    async list(dir: string): Promise<string[]> {
      return Object.keys(files)
        .filter((p) => dirname(p) === dir)
        .map((p) => p.slice(dir.length + 1))
        .sort();
    },
    async isDirectory(path: string): Promise<boolean> {
      return !(path in files) && Object.keys(files).some((p) => p.startsWith(`${path}/`));
    },
  };
}

async function readOne(bytes: Uint8Array, path = '/m/model.pt'): Promise<ModelInfo> {
  return pytorchReader.read(path, memoryFiles({ [path]: bytes }));
}

function f32At(bytes: Uint8Array, t: TensorInfo): number[] {
  return Array.from(new Float32Array(bytes.slice(t.byteOffset, t.byteOffset + t.byteLength).buffer));
}

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);
const fl = (key: string, numel: number, shape: number[], extra: Partial<TensorSpec> = {}) =>
  tensor({ storageType: 'FloatStorage', key, numel, shape, ...extra });

// -------------------------------------------------------------------------------------------
// Zip checkpoints

test('zip: nested containers are named by dotted keys, simple values go to metadata', async () => {
  const value = {
    model: ordered([
      ['layers.0.w', fl('0', 6, [2, 3])],
      ['norm', fl('1', 3, [3])],
    ]),
    model_args: { dim: 64, lr: 0.5, name: 'tiny', tied: true, dims: [1, 2, 3], nothing: null },
    history: [fl('2', 2, [2])],
  };
  const storages = { '0': f32Bytes(range(6)), '1': f32Bytes([1, 1, 1]), '2': f32Bytes([7, 8]) };
  const bytes = torchZip(value, storages, { archive: 'any folder name' });
  const m = await readOne(bytes);
  assert.equal(m.format, 'pytorch');
  assert.deepEqual(m.files, ['/m/model.pt']);
  assert.deepEqual(
    m.tensors.map((t) => t.name),
    ['model.layers.0.w', 'model.norm', 'history.0'],
  );
  const w = m.tensors[0]!;
  assert.equal(w.encoding, 'pytorch-view');
  assert.equal(w.dtype, 'F32');
  assert.deepEqual(w.shape, [2, 3]);
  assert.equal(w.strides, undefined);
  assert.equal(w.byteOffset % 64, 0, 'torch aligns storages to 64 bytes');
  assert.deepEqual(f32At(bytes, w), range(6));
  assert.deepEqual(f32At(bytes, m.tensors[2]!), [7, 8]);
  assert.deepEqual(m.metadata['model_args.dim'], { type: 'i64', value: 64n });
  assert.deepEqual(m.metadata['model_args.lr'], { type: 'f64', value: 0.5 });
  assert.deepEqual(m.metadata['model_args.name'], { type: 'string', value: 'tiny' });
  assert.deepEqual(m.metadata['model_args.tied'], { type: 'bool', value: true });
  assert.deepEqual(m.metadata['model_args.dims'], { type: 'array', itemType: 'i64', value: [1n, 2n, 3n] });
  assert.equal('model_args.nothing' in m.metadata, false);
  assert.deepEqual(m.diagnostics, []);
});

test('zip: views keep storage offset and strides; shared storages have one key', async () => {
  const value = {
    whole: fl('0', 12, [3, 4]),
    row1: fl('0', 12, [4], { offset: 4 }),
    transposed: fl('0', 12, [4, 3], { stride: [1, 4] }),
    column: fl('0', 12, [3], { offset: 2, stride: [4] }),
    broadcast: fl('0', 12, [2, 3], { offset: 1, stride: [0, 1] }),
    unit: fl('0', 12, [3, 1, 4], { stride: [4, 99, 1] }),
  };
  const bytes = torchZip(value, { '0': f32Bytes(range(12)) });
  const m = await readOne(bytes);
  const by = new Map(m.tensors.map((t) => [t.name, t]));
  const keys = new Set(m.tensors.map((t) => t.storageKey));
  assert.equal(keys.size, 1);
  assert.equal(by.get('row1')!.byteOffset, by.get('whole')!.byteOffset + 16);
  assert.equal(by.get('row1')!.byteLength, 16);
  assert.deepEqual(by.get('transposed')!.strides, [1, 4]);
  assert.equal(by.get('transposed')!.byteLength, 48);
  assert.equal(by.get('unit')!.strides, undefined, 'size-1 dimensions may carry any stride');
  const read = async (offset: number, length: number) => bytes.slice(offset, offset + length);
  const gather = async (name: string) => Array.from(new Float32Array((await gatherStridedView(by.get(name)!, read)).buffer));
  assert.deepEqual(await gather('whole'), range(12));
  assert.deepEqual(await gather('row1'), [4, 5, 6, 7]);
  assert.deepEqual(await gather('transposed'), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  assert.deepEqual(await gather('column'), [2, 6, 10]);
  assert.deepEqual(await gather('broadcast'), [1, 2, 3, 1, 2, 3]);
});

test('zip: deflated data.pkl, zip64 records, every storage dtype', async () => {
  const types: Array<[string, string, number]> = [
    ['DoubleStorage', 'F64', 8], ['FloatStorage', 'F32', 4], ['HalfStorage', 'F16', 2], ['BFloat16Storage', 'BF16', 2],
    ['LongStorage', 'I64', 8], ['IntStorage', 'I32', 4], ['ShortStorage', 'I16', 2], ['CharStorage', 'I8', 1],
    ['ByteStorage', 'U8', 1], ['BoolStorage', 'BOOL', 1],
  ];
  const value = Object.fromEntries(types.map(([st], i) => [st, tensor({ storageType: st, key: String(i), numel: 4, shape: [4] })]));
  const storages = Object.fromEntries(types.map(([, , size], i) => [String(i), new Uint8Array(4 * size).fill(i)]));
  for (const zip64 of [false, true]) {
    const bytes = torchZip(value, storages, { deflatePickle: true, zip64 });
    const m = await readOne(bytes);
    assert.deepEqual(
      m.tensors.map((t) => [t.name, t.dtype, t.byteLength]),
      types.map(([st, dt, size]) => [st, dt, 4 * size]),
    );
    m.tensors.forEach((t, i) => assert.ok(bytes.slice(t.byteOffset, t.byteOffset + t.byteLength).every((b) => b === i)));
  }
});

test('zip: UntypedStorage with _rebuild_tensor_v3 takes the dtype argument', async () => {
  // storage_offset counts elements of the tensor's dtype, the storage's numel counts bytes.
  const value = { w: tensor({ storageType: 'UntypedStorage', key: '0', numel: 12, shape: [2], offset: 1, dtype: 'float32' }) };
  const bytes = torchZip(value, { '0': f32Bytes([1, 2, 3]) });
  const [t] = (await readOne(bytes)).tensors;
  assert.equal(t!.dtype, 'F32');
  assert.deepEqual(f32At(bytes, t!), [2, 3]);
});

test('TorchScript: __torch__ modules named by attribute path, constants.pkl under constants.N', async () => {
  const w = new PickleWriter().proto(2).global('__torch__.net', 'Net').byte(0x29, 0x81);
  w.value({ training: false, conv: null }).byte(0x62);
  const data = new PickleWriter().proto(2);
  data.global('__torch__.net', 'Net').byte(0x29, 0x81).byte(0x7d).mark();
  data.str('training').byte(0x89).str('conv');
  data.global('__torch__.torch.nn.modules.conv', 'Conv1d').byte(0x29, 0x81).byte(0x7d).mark();
  data.str('weight').tensor({ storageType: 'FloatStorage', key: '0', numel: 4, shape: [2, 2] });
  data.str('sizes').value(reduce(global('torch.jit._pickle', 'build_intlist'), [[3, 4]]));
  data.byte(0x75, 0x62).byte(0x75, 0x62).stop();
  const constants = pickle(tuple(tensor({ storageType: 'FloatStorage', key: '0', numel: 1, shape: [] })));
  const bytes = buildZip([
    { name: 'net/data.pkl', data: data.bytes() },
    { name: 'net/code/__torch__/net.py', data: new TextEncoder().encode('import os\nos.system("never read")\n') },
    { name: 'net/data/0', data: f32Bytes([1, 2, 3, 4]) },
    { name: 'net/constants.pkl', data: constants },
    { name: 'net/constants/0', data: f32Bytes([9]) },
  ]);
  const m = await readOne(bytes, '/m/net.jit');
  assert.deepEqual(m.tensors.map((t) => t.name), ['conv.weight', 'constants.0']);
  assert.deepEqual(f32At(bytes, m.tensors[1]!), [9]);
  assert.deepEqual(m.tensors[1]!.shape, []);
  assert.notEqual(m.tensors[0]!.storageKey, m.tensors[1]!.storageKey);
  assert.deepEqual(m.metadata['training'], { type: 'bool', value: false });
  assert.deepEqual(m.metadata['conv.sizes'], { type: 'array', itemType: 'i64', value: [3n, 4n] });
});

// -------------------------------------------------------------------------------------------
// Legacy checkpoints

test('legacy: storages follow the key list, each after its element count; views of a root', async () => {
  const value = ordered([
    ['a', fl('100', 6, [2, 3], { location: 'cuda:0' })],
    ['b', fl('200', 4, [2], { offset: 1 })],
    ['c', fl('100', 6, [2], { view: ['300', 2, 3] })],
  ]);
  const bytes = legacyCheckpoint(value, [
    { key: '200', numel: 4, data: f32Bytes([10, 11, 12, 13]) },
    { key: '100', numel: 6, data: f32Bytes(range(6)) },
  ]);
  const m = await readOne(bytes);
  const by = new Map(m.tensors.map((t) => [t.name, t]));
  assert.deepEqual(f32At(bytes, by.get('a')!), range(6));
  assert.deepEqual(f32At(bytes, by.get('b')!), [11, 12]);
  assert.deepEqual(f32At(bytes, by.get('c')!), [2, 3]);
  assert.equal(by.get('a')!.storageKey, by.get('c')!.storageKey);
  assert.deepEqual(m.diagnostics, []);
});

test('legacy: a pickle larger than the first read window still opens', async () => {
  const names = range(60000).map((i) => [`encoder.block.${i}.attention.scale`, i] as [string, number]);
  const bytes = legacyCheckpoint({ cfg: Object.fromEntries(names), w: fl('1', 2, [2]) }, [{ key: '1', numel: 2, data: f32Bytes([5, 6]) }]);
  assert.ok(bytes.length > 1 << 20);
  const m = await readOne(bytes);
  assert.deepEqual(f32At(bytes, m.tensors[0]!), [5, 6]);
  assert.equal(Object.keys(m.metadata).length, 60000);
});

// -------------------------------------------------------------------------------------------
// Sharded checkpoints

function shardSet(): Record<string, Uint8Array> {
  return {
    '/s/pytorch_model-00001-of-00002.bin': torchZip({ 'a.weight': fl('0', 2, [2]) }, { '0': f32Bytes([1, 2]) }),
    '/s/pytorch_model-00002-of-00002.bin': torchZip({ 'b.weight': fl('0', 2, [2]) }, { '0': f32Bytes([3, 4]) }),
    '/s/pytorch_model.bin.index.json': new TextEncoder().encode(
      JSON.stringify({
        metadata: { total_size: 16 },
        weight_map: { 'a.weight': 'pytorch_model-00001-of-00002.bin', 'b.weight': 'pytorch_model-00002-of-00002.bin' },
      }),
    ),
  };
}

test('sharded: pytorch_model.bin.index.json and its folder open every shard', async () => {
  const files = shardSet();
  for (const path of ['/s/pytorch_model.bin.index.json', '/s']) {
    const m = await pytorchReader.read(path, memoryFiles(files));
    assert.deepEqual(m.tensors.map((t) => t.name), ['a.weight', 'b.weight']);
    assert.deepEqual(m.files, ['/s/pytorch_model.bin.index.json', '/s/pytorch_model-00001-of-00002.bin', '/s/pytorch_model-00002-of-00002.bin']);
    assert.equal(m.tensors[1]!.file, '/s/pytorch_model-00002-of-00002.bin');
    assert.notEqual(m.tensors[0]!.storageKey, m.tensors[1]!.storageKey);
    assert.deepEqual(f32At(files[m.tensors[1]!.file]!, m.tensors[1]!), [3, 4]);
  }
});

test('sniff: zip and pickle magic, index names; not safetensors or GGUF', () => {
  assert.ok(pytorchReader.sniff('/x/model.bin', Uint8Array.from([0x50, 0x4b, 3, 4])));
  assert.ok(pytorchReader.sniff('/x/anything', Uint8Array.from([0x80, 2, 0x8a, 0x0a])));
  assert.ok(pytorchReader.sniff('/x/m.pth', Uint8Array.from([0x80, 2, 0x7d])));
  assert.ok(pytorchReader.sniff('/x/pytorch_model.bin.index.json', new Uint8Array(0)));
  assert.ok(!pytorchReader.sniff('/x/m.gguf', new TextEncoder().encode('GGUF')));
  assert.ok(!pytorchReader.sniff('/x/m.pkl.txt', Uint8Array.from([0x80, 2, 0x7d])));
});

// -------------------------------------------------------------------------------------------
// Malformed input: one case per error code, then files that must still open

const ok = (value: unknown, storages: Record<string, Uint8Array> = {}) => torchZip(value, storages);
const validZip = ok({ w: fl('0', 2, [2]) }, { '0': f32Bytes([1, 2]) });
const validLegacy = legacyCheckpoint({ w: fl('1', 2, [2]) }, [{ key: '1', numel: 2, data: f32Bytes([1, 2]) }]);
const rawPickle = (w: PickleWriter) => torchZip(null, {}, { dataPkl: w.bytes() });

const MALFORMED: Array<{ name: string; bytes: Uint8Array; code: string; mentions?: string; path?: string }> = [
  { name: 'os.system in data.pkl', bytes: ok(reduce(global('os', 'system'), ['rm -rf /'])), code: 'FORBIDDEN_GLOBAL', mentions: 'os.system' },
  {
    name: 'builtins.eval via STACK_GLOBAL',
    bytes: rawPickle(new PickleWriter().proto(4).str('builtins').str('eval').byte(0x93).str('1').byte(0x85, 0x52).stop()),
    code: 'FORBIDDEN_GLOBAL',
    mentions: 'builtins.eval',
  },
  { name: 'numpy global in a legacy file', bytes: legacyCheckpoint(reduce(global('numpy.core.multiarray', 'scalar'), []), []), code: 'FORBIDDEN_GLOBAL' },
  { name: 'truncated data.pkl', bytes: torchZip(null, {}, { dataPkl: pickle({ w: [1, 2, 3] }).subarray(0, 10) }), code: 'TRUNCATED' },
  { name: 'truncated legacy pickle', bytes: validLegacy.subarray(0, 60), code: 'TRUNCATED' },
  { name: 'truncated legacy storage bytes', bytes: validLegacy.subarray(0, validLegacy.length - 3), code: 'TRUNCATED' },
  { name: 'bad opcode', bytes: torchZip(null, {}, { dataPkl: Uint8Array.from([0x80, 0x02, 0xf0, 0x2e]) }), code: 'INVALID_PICKLE' },
  { name: 'memo out of range', bytes: torchZip(null, {}, { dataPkl: Uint8Array.from([0x80, 0x02, 0x6a, 9, 9, 0, 0, 0x2e]) }), code: 'INVALID_PICKLE' },
  { name: 'storage record missing', bytes: ok({ w: fl('3', 2, [2]) }, { '0': f32Bytes([1, 2]) }), code: 'MISSING_STORAGE', mentions: 'data/3' },
  {
    name: 'legacy storage not in the key list',
    bytes: legacyCheckpoint({ w: fl('1', 2, [2]) }, [], { keys: [] }),
    code: 'MISSING_STORAGE',
  },
  { name: 'bad zip: no end of central directory', bytes: validZip.subarray(0, validZip.length - 22), code: 'INVALID_ZIP' },
  {
    name: 'bad zip: CRC mismatch in data.pkl',
    bytes: (() => {
      // Protocol 2 → 3 keeps the pickle valid, so only the CRC can tell.
      const b = validZip.slice();
      b[findBytes(b, Uint8Array.from([0x80, 0x02])) + 1] = 0x03;
      return b;
    })(),
    code: 'INVALID_ZIP',
  },
  { name: 'zip without data.pkl', bytes: buildZip([{ name: 'a/other.txt', data: new Uint8Array(3) }]), code: 'INVALID_ZIP' },
  { name: 'legacy magic number mismatch', bytes: legacyCheckpoint({}, [], { magic: 12345n }), code: 'BAD_MAGIC' },
  { name: 'neither zip nor pickle', bytes: new TextEncoder().encode('hello world'), code: 'BAD_MAGIC' },
  { name: 'legacy protocol version 999', bytes: legacyCheckpoint({}, [], { protocolVersion: 999 }), code: 'UNSUPPORTED_VERSION' },
  {
    name: 'v3 dtype argument is not a dtype',
    bytes: (() => {
      const w = new PickleWriter().proto(2).global('torch._utils', '_rebuild_tensor_v3').mark();
      w.mark().str('storage').global('torch', 'UntypedStorage').str('0').str('cpu').int(8).byte(0x74, 0x51);
      w.int(0).value(tuple(2)).value(tuple(1)).byte(0x89).byte(0x4e).str('float32').byte(0x74, 0x52).stop();
      return torchZip(null, { '0': new Uint8Array(8) }, { dataPkl: w.bytes() });
    })(),
    code: 'INVALID_DTYPE',
  },
  { name: 'view past the end of its storage', bytes: ok({ w: fl('0', 2, [3]) }, { '0': f32Bytes([1, 2]) }), code: 'SIZE_MISMATCH' },
  { name: 'strided view past the end', bytes: ok({ w: fl('0', 4, [2, 2], { stride: [3, 1] }) }, { '0': f32Bytes(range(4)) }), code: 'SIZE_MISMATCH' },
  { name: 'storage record shorter than numel', bytes: ok({ w: fl('0', 4, [2]) }, { '0': f32Bytes([1, 2]) }), code: 'SIZE_MISMATCH' },
  {
    name: 'legacy count disagrees with the pickle',
    bytes: legacyCheckpoint({ w: fl('1', 2, [2]) }, [{ key: '1', numel: 3, data: f32Bytes([1, 2, 3]) }]),
    code: 'SIZE_MISMATCH',
  },
  { name: 'tensor of 9 dimensions', bytes: ok({ w: fl('0', 1, [1, 1, 1, 1, 1, 1, 1, 1, 1]) }, { '0': f32Bytes([1]) }), code: 'LIMIT_EXCEEDED' },
  {
    name: 'dimension beyond 2^53',
    bytes: ok({ w: fl('0', 1, [2 ** 60], { stride: [0] }) }, { '0': f32Bytes([1]) }),
    code: 'OVERFLOW',
  },
  {
    name: 'deflated storage record',
    bytes: buildZip([
      { name: 'a/data.pkl', data: pickle({ w: fl('0', 2, [2]) }) },
      { name: 'a/data/0', data: f32Bytes([1, 2]), deflate: true },
    ]),
    code: 'UNSUPPORTED_COMPRESSION',
  },
];

function findBytes(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

for (const c of MALFORMED) {
  test(`malformed PyTorch file: ${c.name} → ${c.code}`, async () => {
    await assert.rejects(readOne(c.bytes, c.path), (err: unknown) => {
      assert.ok(err instanceof QuantLensError, `not a QuantLensError: ${String(err)}`);
      assert.equal(err.code, c.code, err.message);
      if (c.mentions) assert.ok(err.message.includes(c.mentions), err.message);
      return true;
    });
  });
}

test('malformed shard sets: missing shard, weight_map lies, unsafe path', async () => {
  const missing = shardSet();
  delete missing['/s/pytorch_model-00002-of-00002.bin'];
  await assert.rejects(pytorchReader.read('/s', memoryFiles(missing)), { code: 'MISSING_SHARD' });
  const lies = shardSet();
  lies['/s/pytorch_model.bin.index.json'] = new TextEncoder().encode(
    JSON.stringify({ weight_map: { 'a.weight': 'pytorch_model-00002-of-00002.bin', 'b.weight': 'pytorch_model-00002-of-00002.bin' } }),
  );
  await assert.rejects(pytorchReader.read('/s', memoryFiles(lies)), { code: 'TENSOR_NOT_FOUND' });
  const escape = shardSet();
  escape['/s/pytorch_model.bin.index.json'] = new TextEncoder().encode(JSON.stringify({ weight_map: { a: '../etc/passwd' } }));
  await assert.rejects(pytorchReader.read('/s', memoryFiles(escape)), { code: 'UNSAFE_PATH' });
});

test('must still open: unmodelled dtypes, duplicate names, odd keys, cycles, empty tensors, trailing bytes', async () => {
  const selfList = new PickleWriter().proto(2).byte(0x7d).mark().str('loop').byte(0x5d).binput().byte(0x68, 0).byte(0x61);
  selfList.str('w').tensor({ storageType: 'FloatStorage', key: '0', numel: 2, shape: [2] }).byte(0x75).stop();
  const cyclic = await readOne(torchZip(null, { '0': f32Bytes([1, 2]) }, { dataPkl: selfList.bytes() }));
  assert.deepEqual(cyclic.tensors.map((t) => t.name), ['w']);

  const m = await readOne(
    ok(
      ordered([
        ['c', tensor({ storageType: 'ComplexFloatStorage', key: '0', numel: 2, shape: [2] })],
        ['a.b', fl('1', 2, [2])],
        ['a', { b: fl('1', 2, [2]) }],
        ['__proto__', 5],
        [3, fl('2', 0, [0, 4])],
      ]),
      { '0': new Uint8Array(16), '1': f32Bytes([1, 2]), '2': new Uint8Array(0) },
    ),
  );
  assert.deepEqual(m.tensors.map((t) => t.name), ['a.b', '3']);
  assert.equal(m.tensors[1]!.byteLength, 0);
  assert.deepEqual(m.diagnostics.map((d) => [d.code, d.tensor]), [['UNSUPPORTED_DTYPE', 'c'], ['DUPLICATE_NAME', 'a.b']]);
  assert.deepEqual(Object.getOwnPropertyDescriptor(m.metadata, '__proto__')?.value, { type: 'i64', value: 5n });
  assert.equal(({} as Record<string, unknown>).type, undefined);

  const trailing = await readOne(concat([validLegacy, new Uint8Array(5)]));
  assert.deepEqual(trailing.diagnostics.map((d) => d.code), ['TRAILING_BYTES']);
});

// -------------------------------------------------------------------------------------------
// Real checkpoints in ../shared/models

function safetensorsTensor(path: string, name: string): Uint8Array {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
  const [a, b] = header[name]!.data_offsets;
  return new Uint8Array(bytes.subarray(8 + n + a, 8 + n + b));
}

function tensorBytes(t: TensorInfo): Uint8Array {
  return new Uint8Array(readFileSync(t.file).subarray(t.byteOffset, t.byteOffset + t.byteLength));
}

const REAL: Array<[string, number]> = [
  ['stories260K/stories260K.pt', 48],
  ['stories260K/stories260K-legacy.pt', 48],
  ['stories260K/stories260K-ckpt-nested.pt', 48],
  ['stories260K/hf/pytorch_model.bin', 47],
  ['pytorch-legacy/pnet.pt', 13],
  ['pytorch-legacy/rnet.pt', 16],
  ['pytorch-legacy/alex_v0.1.pth', 5],
  ['silero-vad/silero_vad.jit', 33],
];

test('real checkpoints open with the expected tensor counts', async (t) => {
  if (!existsSync(MODELS)) return t.skip('../shared/models is absent');
  for (const [rel, count] of REAL) {
    const m = await pytorchReader.read(join(MODELS, rel), nodeFileAccess);
    assert.equal(m.tensors.length, count, rel);
    for (const x of m.tensors) {
      assert.equal(x.encoding, 'pytorch-view');
      assert.ok(x.byteOffset + x.byteLength <= readFileSync(x.file).length);
    }
  }
});

test('real: stories260K .pt, legacy and nested hold the same bytes; the embedding equals the safetensors one', async (t) => {
  if (!existsSync(MODELS)) return t.skip('../shared/models is absent');
  const dir = join(MODELS, 'stories260K');
  const zip = await pytorchReader.read(join(dir, 'stories260K.pt'), nodeFileAccess);
  const legacy = await pytorchReader.read(join(dir, 'stories260K-legacy.pt'), nodeFileAccess);
  const nested = await pytorchReader.read(join(dir, 'stories260K-ckpt-nested.pt'), nodeFileAccess);
  assert.equal(zip.tensors[0]!.name, 'tok_embeddings.weight');
  const legacyBy = new Map(legacy.tensors.map((x) => [x.name, x]));
  const nestedBy = new Map(nested.tensors.map((x) => [x.name, x]));
  for (const x of zip.tensors) {
    assert.deepEqual(tensorBytes(legacyBy.get(x.name)!), tensorBytes(x), x.name);
    assert.deepEqual(tensorBytes(nestedBy.get(`model.${x.name}`)!), tensorBytes(x), x.name);
  }
  assert.deepEqual(nested.metadata['model_args.dim'], { type: 'i64', value: 64n });
  assert.deepEqual(nested.metadata['model_args.n_layers'], { type: 'i64', value: 5n });

  const st = join(dir, 'hf/model.safetensors');
  assert.deepEqual(tensorBytes(zip.tensors[0]!), safetensorsTensor(st, 'model.embed_tokens.weight'));
  const norm = zip.tensors.find((x) => x.name === 'norm.weight')!;
  assert.deepEqual(tensorBytes(norm), safetensorsTensor(st, 'model.norm.weight'));
  const first = new Float32Array(tensorBytes(zip.tensors[0]!).buffer);
  assert.ok(first.some((v) => v !== 0) && first.every(Number.isFinite));

  const hf = await pytorchReader.read(join(dir, 'hf'), nodeFileAccess);
  assert.equal(hf.files[0], join(dir, 'hf/pytorch_model.bin'));
  for (const x of hf.tensors) assert.deepEqual(tensorBytes(x), safetensorsTensor(st, x.name), x.name);
});

test('real: transposed conv weights in pnet.pt gather to row-major; the STFT basis in silero .jit matches its safetensors', async (t) => {
  if (!existsSync(MODELS)) return t.skip('../shared/models is absent');
  const pnet = await pytorchReader.read(join(MODELS, 'pytorch-legacy/pnet.pt'), nodeFileAccess);
  const conv1 = pnet.tensors.find((x) => x.name === 'conv1.weight')!;
  assert.deepEqual(conv1.shape, [10, 3, 3, 3]);
  assert.deepEqual(conv1.strides, [1, 10, 30, 90]);
  const file = readFileSync(conv1.file);
  const read = async (offset: number, length: number) => new Uint8Array(file.subarray(offset, offset + length));
  const gathered = new Float32Array((await gatherStridedView(conv1, read)).buffer);
  const span = new Float32Array((await read(conv1.byteOffset, conv1.byteLength)).slice().buffer);
  // element [o, i, h, w] lives at o + 10 i + 30 h + 90 w of the span
  assert.equal(gathered[1 * 27 + 2 * 9 + 1 * 3 + 2], span[1 + 10 * 2 + 30 * 1 + 90 * 2]);

  const jit = await pytorchReader.read(join(MODELS, 'silero-vad/silero_vad.jit'), nodeFileAccess);
  assert.deepEqual(jit.tensors.find((x) => x.name === '_model.decoder.rnn.weight_ih')!.shape, [512, 128]);
  // The safetensors export is of another training run; the STFT basis is a constant both share.
  const basis = jit.tensors.find((x) => x.name === '_model.stft.forward_basis_buffer')!;
  assert.deepEqual(basis.shape, [258, 1, 256]);
  assert.equal(basis.strides, undefined);
  assert.deepEqual(tensorBytes(basis), safetensorsTensor(join(MODELS, 'silero-vad/silero_vad_16k.safetensors'), 'stft_conv.weight'));
});
