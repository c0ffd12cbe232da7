import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { FileByteSource, MemoryByteSource, readExact, type ByteSource } from '../../src/core/bytesource';
import { QuantLensError } from '../../src/core/errors';
import { ONNX_MAX_GRAPH_DEPTH } from '../../src/core/limits';
import type { ModelInfo, TensorInfo } from '../../src/core/model';
import {
  decodeOnnxFieldValues,
  encodeOnnxModel,
  onnxAttribute,
  onnxNode,
  onnxReader,
  onnxTensor,
  onnxValueInfo,
  readOnnxModel,
  writeOnnxModel,
  OnnxDataType,
  type OnnxGraph,
  type OnnxModel,
} from '../../src/core/readers/onnx';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import {
  attr,
  concat,
  constantNode,
  DataType,
  f32Bytes,
  f64Bytes,
  graphProto,
  key,
  lField,
  modelProto,
  modelWithInitializer,
  nodeProto,
  sField,
  tensorProto,
  valueInfo,
  varint,
  vField,
  type Bytes,
} from '../fixtures/onnx-builder';

const MODELS = resolve(__dirname, '../../../shared/models');
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quantlens-onnx-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCounter = 0;
async function writeModel(bytes: Bytes, name = `m${fileCounter++}.onnx`, sub = ''): Promise<string> {
  const folder = join(dir, sub);
  await mkdir(folder, { recursive: true });
  const path = join(folder, name);
  await writeFile(path, bytes);
  return path;
}

async function readModel(bytes: Bytes): Promise<ModelInfo> {
  return onnxReader.read(await writeModel(bytes), nodeFileAccess);
}

/** A tensor's values as little-endian bytes of its dtype, through the file (or an already open `src`). */
async function valuesOf(t: TensorInfo, src?: ByteSource): Promise<Uint8Array> {
  const source = src ?? (await FileByteSource.open(t.file));
  try {
    return decodeOnnxFieldValues(t, await readExact(source, t.byteOffset, t.byteLength));
  } finally {
    if (!src) await source.close();
  }
}

function byName(model: ModelInfo, name: string): TensorInfo {
  const t = model.tensors.find((x) => x.name === name);
  assert.ok(t, `tensor ${name} not in [${model.tensors.map((x) => x.name).join(', ')}]`);
  return t;
}

const le = {
  u16: (v: number[]) => new Uint8Array(Uint16Array.from(v).buffer),
  i8: (v: number[]) => new Uint8Array(Int8Array.from(v).buffer),
  i16: (v: number[]) => new Uint8Array(Int16Array.from(v).buffer),
  i32: (v: number[]) => new Uint8Array(Int32Array.from(v).buffer),
  u32: (v: number[]) => new Uint8Array(Uint32Array.from(v).buffer),
  i64: (v: bigint[]) => new Uint8Array(BigInt64Array.from(v).buffer),
  u64: (v: bigint[]) => new Uint8Array(BigUint64Array.from(v).buffer),
};

async function rejectsWith(promise: Promise<unknown>, code: string, tensor?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof QuantLensError, `expected a QuantLensError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (tensor !== undefined) assert.equal(err.tensor, tensor);
    return true;
  });
}

/** A model with every storage form the reader handles. */
function everyKindModel(): Bytes {
  const subgraph = (suffix: string) =>
    graphProto({
      name: `branch_${suffix}`,
      initializers: [tensorProto({ name: 'shared', dims: [2], dataType: DataType.FLOAT, raw: f32Bytes([suffix === 'then' ? 1 : 2, 3]) })],
      nodes: [constantNode('branch_const', tensorProto({ dims: [1], dataType: DataType.INT64, int64Data: [suffix === 'then' ? 5 : 6] }))],
      outputs: [valueInfo('shared', DataType.FLOAT, [2])],
    });
  const loopBody = graphProto({
    name: 'body',
    nodes: [constantNode('loop_const', tensorProto({ dims: [2], dataType: DataType.FLOAT, floatData: [7, 8] }))],
  });
  return modelProto({
    irVersion: 9,
    producerName: 'fixture',
    producerVersion: '1.0',
    domain: 'test.quantlens',
    modelVersion: 3,
    docString: 'every kind',
    opsets: [
      ['', 17],
      ['com.microsoft', 1],
    ],
    metadata: { author: 'tests', license: 'MIT' },
    graph: graphProto({
      name: 'main',
      initializers: [
        tensorProto({ name: 'raw_f32', dims: [2, 3], dataType: DataType.FLOAT, raw: f32Bytes([1, 2, 3, 4, 5, 6]) }),
        tensorProto({ name: 'shared', dims: [1], dataType: DataType.FLOAT, raw: f32Bytes([9]) }),
        tensorProto({ name: 'float_packed', dims: [3], dataType: DataType.FLOAT, floatData: [0.5, -1, 2] }),
        tensorProto({ name: 'float_unpacked', dims: [3], dataType: DataType.FLOAT, floatData: [1.5, 2.5, -3.5], unpacked: true }),
        tensorProto({ name: 'f16_bits', dims: [2], dataType: DataType.FLOAT16, int32Data: [0x3c00, 0xc000] }),
        tensorProto({ name: 'bf16_bits', dims: [2], dataType: DataType.BFLOAT16, int32Data: [0x3f80, 0xbf80] }),
        tensorProto({ name: 'i8', dims: [3], dataType: DataType.INT8, int32Data: [-1, 127, -128] }),
        tensorProto({ name: 'u8', dims: [2], dataType: DataType.UINT8, int32Data: [0, 255] }),
        tensorProto({ name: 'i16', dims: [2], dataType: DataType.INT16, int32Data: [-300, 300] }),
        tensorProto({ name: 'bool', dims: [3], dataType: DataType.BOOL, int32Data: [1, 0, 1] }),
        tensorProto({ name: 'i32_unpacked', dims: [2], dataType: DataType.INT32, int32Data: [-5, 1 << 30], unpacked: true }),
        tensorProto({ name: 'i64', dims: [2], dataType: DataType.INT64, int64Data: [-1n, 2n ** 62n] }),
        tensorProto({ name: 'f64', dims: [2], dataType: DataType.DOUBLE, doubleData: [1.25, -1e300] }),
        tensorProto({ name: 'f64_unpacked', dims: [1], dataType: DataType.DOUBLE, doubleData: [3.5], unpacked: true }),
        tensorProto({ name: 'u32', dims: [1], dataType: DataType.UINT32, uint64Data: [4294967295] }),
        tensorProto({ name: 'u64', dims: [1], dataType: DataType.UINT64, uint64Data: [2n ** 64n - 1n] }),
        tensorProto({ name: 'f8', dims: [2], dataType: DataType.FLOAT8E4M3FN, raw: Uint8Array.of(0x38, 0xb8) }),
        tensorProto({ name: 'scalar', dims: [], dataType: DataType.FLOAT, raw: f32Bytes([42]) }),
        tensorProto({ name: 'empty', dims: [0, 4], dataType: DataType.FLOAT }),
      ],
      nodes: [
        constantNode('const_value', tensorProto({ dims: [2, 2], dataType: DataType.FLOAT, raw: f32Bytes([1, 2, 3, 4]) }), 'c0'),
        nodeProto({ opType: 'Constant', outputs: ['const_float'], attributes: [attr.float('value_float', 0.25)] }),
        nodeProto({ opType: 'Constant', outputs: ['const_floats'], attributes: [attr.floats('value_floats', [1, -2, 3])] }),
        nodeProto({ opType: 'Constant', outputs: ['const_floats_packed'], attributes: [attr.floats('value_floats', [4, 5], true)] }),
        nodeProto({ opType: 'Constant', outputs: ['const_int'], attributes: [attr.int('value_int', -9)] }),
        nodeProto({ opType: 'Constant', outputs: ['const_ints'], attributes: [attr.ints('value_ints', [1, -2, 2n ** 40n])] }),
        nodeProto({ opType: 'Constant', outputs: ['const_ints_packed'], attributes: [attr.ints('value_ints', [7, 8], true)] }),
        nodeProto({
          opType: 'If',
          name: 'branch',
          inputs: ['cond'],
          outputs: ['y'],
          attributes: [attr.graph('then_branch', subgraph('then')), attr.graph('else_branch', subgraph('else'))],
        }),
        nodeProto({ opType: 'Loop', name: 'loop', inputs: ['', 'cond'], outputs: ['z'], attributes: [attr.graph('body', loopBody)] }),
        nodeProto({ opType: 'Conv', name: 'conv', inputs: ['x', 'raw_f32'], outputs: ['c'], attributes: [attr.ints('kernel_shape', [3, 3]), attr.string('auto_pad', 'SAME_UPPER')] }),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, ['batch', 3, 224]), valueInfo('cond', DataType.BOOL, [])],
      outputs: [valueInfo('y', DataType.FLOAT, ['batch', 2])],
    }),
  });
}

test('every storage form: names, dtypes, shapes, encodings and decoded values', async () => {
  const model = await readModel(everyKindModel());
  assert.equal(model.format, 'onnx');
  assert.deepEqual(
    model.diagnostics.map((d) => [d.code, d.tensor]),
    [['DUPLICATE_NAME', 'branch/shared']],
  );
  const expectValues = async (name: string, dtype: string, shape: number[], encoding: string, bytes: Uint8Array) => {
    const t = byName(model, name);
    assert.equal(t.dtype, dtype, name);
    assert.deepEqual(t.shape, shape, name);
    assert.equal(t.encoding, encoding, name);
    assert.deepEqual(await valuesOf(t), bytes, name);
  };
  await expectValues('raw_f32', 'F32', [2, 3], 'raw', f32Bytes([1, 2, 3, 4, 5, 6]));
  await expectValues('float_packed', 'F32', [3], 'onnx-typed-field', f32Bytes([0.5, -1, 2]));
  await expectValues('float_unpacked', 'F32', [3], 'onnx-typed-field', f32Bytes([1.5, 2.5, -3.5]));
  await expectValues('f16_bits', 'F16', [2], 'onnx-typed-field', le.u16([0x3c00, 0xc000]));
  await expectValues('bf16_bits', 'BF16', [2], 'onnx-typed-field', le.u16([0x3f80, 0xbf80]));
  await expectValues('i8', 'I8', [3], 'onnx-typed-field', le.i8([-1, 127, -128]));
  await expectValues('u8', 'U8', [2], 'onnx-typed-field', Uint8Array.of(0, 255));
  await expectValues('i16', 'I16', [2], 'onnx-typed-field', le.i16([-300, 300]));
  await expectValues('bool', 'BOOL', [3], 'onnx-typed-field', Uint8Array.of(1, 0, 1));
  await expectValues('i32_unpacked', 'I32', [2], 'onnx-typed-field', le.i32([-5, 1 << 30]));
  await expectValues('i64', 'I64', [2], 'onnx-typed-field', le.i64([-1n, 2n ** 62n]));
  await expectValues('f64', 'F64', [2], 'onnx-typed-field', f64Bytes([1.25, -1e300]));
  await expectValues('f64_unpacked', 'F64', [1], 'onnx-typed-field', f64Bytes([3.5]));
  await expectValues('u32', 'U32', [1], 'onnx-typed-field', le.u32([4294967295]));
  await expectValues('u64', 'U64', [1], 'onnx-typed-field', le.u64([2n ** 64n - 1n]));
  await expectValues('f8', 'F8_E4M3', [2], 'raw', Uint8Array.of(0x38, 0xb8));
  await expectValues('scalar', 'F32', [], 'raw', f32Bytes([42]));
  await expectValues('empty', 'F32', [0, 4], 'raw', new Uint8Array(0));
  // Constants are named by their output.
  await expectValues('const_value', 'F32', [2, 2], 'raw', f32Bytes([1, 2, 3, 4]));
  await expectValues('const_float', 'F32', [], 'onnx-attribute', f32Bytes([0.25]));
  await expectValues('const_floats', 'F32', [3], 'onnx-attribute', f32Bytes([1, -2, 3]));
  await expectValues('const_floats_packed', 'F32', [2], 'onnx-attribute', f32Bytes([4, 5]));
  await expectValues('const_int', 'I64', [], 'onnx-attribute', le.i64([-9n]));
  await expectValues('const_ints', 'I64', [3], 'onnx-attribute', le.i64([1n, -2n, 2n ** 40n]));
  await expectValues('const_ints_packed', 'I64', [2], 'onnx-attribute', le.i64([7n, 8n]));
  // Subgraph tensors: the then-branch's `shared` collides with the top-level initializer, the
  // else-branch's collides with both, so they take the If node's name as a prefix (and a suffix).
  await expectValues('branch/shared', 'F32', [2], 'raw', f32Bytes([1, 3]));
  await expectValues('branch_const', 'I64', [1], 'onnx-typed-field', le.i64([5n]));
  await expectValues('branch/branch_const', 'I64', [1], 'onnx-typed-field', le.i64([6n]));
  await expectValues('loop_const', 'F32', [2], 'onnx-typed-field', f32Bytes([7, 8]));
  assert.ok(model.tensors.some((t) => t.name === 'branch/shared#2'));
  assert.equal(model.tensors.length, 19 + 7 + 4 + 1);
});

test('metadata: ir_version, producer, domain, model_version, doc_string, opsets, metadata_props, typed', async () => {
  const model = await readModel(everyKindModel());
  assert.deepEqual(model.metadata, {
    'onnx.ir_version': { type: 'i64', value: 9n },
    'onnx.producer_name': { type: 'string', value: 'fixture' },
    'onnx.producer_version': { type: 'string', value: '1.0' },
    'onnx.domain': { type: 'string', value: 'test.quantlens' },
    'onnx.model_version': { type: 'i64', value: 3n },
    'onnx.doc_string': { type: 'string', value: 'every kind' },
    'onnx.opset.ai.onnx': { type: 'i64', value: 17n },
    'onnx.opset.com.microsoft': { type: 'i64', value: 1n },
    'onnx.graph.name': { type: 'string', value: 'main' },
    author: { type: 'string', value: 'tests' },
    license: { type: 'string', value: 'MIT' },
  });
});

test('graph API: nodes, attributes, inputs/outputs with symbolic dims, subgraphs', async () => {
  const path = await writeModel(everyKindModel());
  const src = await FileByteSource.open(path);
  try {
    const model = await readOnnxModel(src);
    const g = model.graph;
    assert.equal(g.nodes.length, 10);
    const conv = g.nodes.find((n) => n.opType === 'Conv')!;
    assert.deepEqual([conv.name, conv.inputs, conv.outputs], ['conv', ['x', 'raw_f32'], ['c']]);
    assert.deepEqual(conv.attributes.find((a) => a.name === 'kernel_shape')!.ints, [3n, 3n]);
    assert.equal(new TextDecoder().decode(conv.attributes.find((a) => a.name === 'auto_pad')!.s), 'SAME_UPPER');
    assert.deepEqual(g.inputs[0], {
      name: 'x',
      type: { kind: 'tensor', elemType: OnnxDataType.FLOAT, shape: [{ param: 'batch' }, { value: 3 }, { value: 224 }], extraFields: [] },
      extraFields: [],
    });
    assert.deepEqual(g.inputs[1]!.type, { kind: 'tensor', elemType: OnnxDataType.BOOL, shape: [], extraFields: [] });
    const ifNode = g.nodes.find((n) => n.opType === 'If')!;
    const thenBranch = ifNode.attributes.find((a) => a.name === 'then_branch')!.g!;
    assert.equal(thenBranch.name, 'branch_then');
    assert.equal(thenBranch.initializers[0]!.name, 'shared');
    assert.equal(thenBranch.initializers[0]!.data.kind, 'source');
    assert.deepEqual(g.nodes[2]!.attributes[0]!.floats, [1, -2, 3]);
    assert.deepEqual(model.opsetImports, [{ version: 17n }, { domain: 'com.microsoft', version: 1n }]);
  } finally {
    await src.close();
  }
});

test('a model larger than the in-memory threshold is scanned streamed, with the same result', async () => {
  const big = new Float32Array(600_000).map((_, i) => i % 97);
  const bytes = modelProto({
    graph: graphProto({
      initializers: [tensorProto({ name: 'big', dims: [600, 1000], dataType: DataType.FLOAT, raw: new Uint8Array(big.buffer) })],
      nodes: [constantNode('c', tensorProto({ dims: [2], dataType: DataType.FLOAT, floatData: [1, 2] }))],
    }),
  });
  const model = await readModel(bytes);
  assert.deepEqual(await valuesOf(byName(model, 'big')), new Uint8Array(big.buffer));
  assert.deepEqual(await valuesOf(byName(model, 'c')), f32Bytes([1, 2]));
  const src = new MemoryByteSource(bytes);
  const streamed = await readOnnxModel(src, { inMemoryMessageBytes: 16 });
  const inMemory = await readOnnxModel(src);
  assert.deepEqual(streamed, inMemory);
});

test('external data: resolved inside the model folder, checked against the data file', async () => {
  const values = f32Bytes([1, 2, 3, 4, 5, 6]);
  await mkdir(join(dir, 'ext', 'weights'), { recursive: true });
  await writeFile(join(dir, 'ext', 'weights', 'data.bin'), concat(new Uint8Array(16), values));
  const path = await writeModel(
    modelWithInitializer(
      tensorProto({ name: 'w', dims: [2, 3], dataType: DataType.FLOAT, external: { location: 'weights/data.bin', offset: '16', length: '24' } }),
    ),
    'ext.onnx',
    'ext',
  );
  const model = await onnxReader.read(path, nodeFileAccess);
  const w = byName(model, 'w');
  assert.equal(w.file, join(dir, 'ext', 'weights', 'data.bin'));
  assert.deepEqual([w.byteOffset, w.byteLength, w.encoding], [16, 24, 'raw']);
  assert.deepEqual(model.files, [path, w.file]);
  assert.deepEqual(await valuesOf(w), values);
});

/** One malformed case per error code; each reads a model built around `tensor` (or the given bytes). */
test('malformed-input table: one case per error code', async () => {
  const f32 = (name: string, dims: number[], raw: Uint8Array) => modelWithInitializer(tensorProto({ name, dims, dataType: DataType.FLOAT, raw }));
  const cases: Array<[string, Bytes | (() => Promise<unknown>), string, string?]> = [
    ['bad varint (11 bytes)', concat(vField(1, 8), key(7, 2), new Uint8Array(11).fill(0xff)), 'INVALID_PROTOBUF'],
    ['wire type 7', concat(vField(1, 8), key(7, 7)), 'INVALID_PROTOBUF'],
    ['wire type 3 (group)', concat(vField(1, 8), key(9, 3)), 'INVALID_PROTOBUF'],
    ['known field with the wrong wire type', concat(vField(1, 8), key(7, 0), varint(1)), 'INVALID_PROTOBUF'],
    ['nested length overruns its message', modelProto({ graph: concat(key(5, 2), varint(50), tensorProto({ dims: [1], dataType: 1 })), extra: [sField(20, 'x'.repeat(64))] }), 'INVALID_PROTOBUF'],
    ['length overruns the file', concat(vField(1, 8), key(7, 2), varint(1000), new Uint8Array(10)), 'TRUNCATED'],
    ['file cut inside raw_data', f32('w', [4], f32Bytes([1, 2, 3, 4])).subarray(0, -3), 'TRUNCATED'],
    ['no graph', concat(vField(1, 8), sField(2, 'producer')), 'INVALID_HEADER'],
    ['raw_data length ≠ product(dims) × size', f32('w', [2, 3], f32Bytes([1, 2, 3, 4, 5])), 'SIZE_MISMATCH', 'w'],
    ['packed float_data count ≠ product(dims)', modelWithInitializer(tensorProto({ name: 'w', dims: [3], dataType: 1, floatData: [1, 2] })), 'SIZE_MISMATCH', 'w'],
    ['values missing', modelWithInitializer(tensorProto({ name: 'w', dims: [3], dataType: 1 })), 'SIZE_MISMATCH', 'w'],
    ['float_data on an INT64 tensor', modelWithInitializer(tensorProto({ name: 'w', dims: [1], dataType: DataType.INT64, floatData: [1] })), 'INVALID_DTYPE', 'w'],
    ['negative dim', modelWithInitializer(tensorProto({ name: 'w', dims: [-2], dataType: 1, raw: new Uint8Array(0) })), 'INVALID_SHAPE'],
    ['element count over 2^53', modelWithInitializer(tensorProto({ name: 'w', dims: [2 ** 30, 2 ** 30, 2 ** 30], dataType: 1, raw: new Uint8Array(0) })), 'OVERFLOW', 'w'],
    ['rank over MAX_TENSOR_DIMS', modelWithInitializer(tensorProto({ name: 'w', dims: new Array(9).fill(1), dataType: 1, raw: f32Bytes([1]) })), 'LIMIT_EXCEEDED'],
    ['subgraphs nested too deep', nestedIfModel(ONNX_MAX_GRAPH_DEPTH + 1), 'LIMIT_EXCEEDED'],
    ['external path with ..', modelWithInitializer(tensorProto({ name: 'w', dims: [1], dataType: 1, external: { location: '../outside.bin' } })), 'UNSAFE_PATH', 'w'],
    ['absolute external path', modelWithInitializer(tensorProto({ name: 'w', dims: [1], dataType: 1, external: { location: '/etc/passwd' } })), 'UNSAFE_PATH', 'w'],
    ['Windows-style escaping path', modelWithInitializer(tensorProto({ name: 'w', dims: [1], dataType: 1, external: { location: 'a\\..\\..\\x.bin' } })), 'UNSAFE_PATH', 'w'],
    ['external file missing', modelWithInitializer(tensorProto({ name: 'w', dims: [1], dataType: 1, external: { location: 'missing.bin' } })), 'MISSING_SHARD', 'w'],
    ['external offset not a number', modelWithInitializer(tensorProto({ name: 'w', dims: [1], dataType: 1, external: { location: 'x.bin', offset: '-4' } })), 'INVALID_OFFSETS', 'w'],
    ['external length ≠ size', modelWithInitializer(tensorProto({ name: 'w', dims: [2], dataType: 1, external: { location: 'x.bin', length: '4' } })), 'SIZE_MISMATCH', 'w'],
    ['external data past the end of its file', modelWithInitializer(tensorProto({ name: 'w', dims: [2], dataType: 1, external: { location: 'small.bin', offset: '4' } })), 'TRUNCATED', 'w'],
  ];
  await writeFile(join(dir, 'x.bin'), new Uint8Array(64));
  await writeFile(join(dir, 'small.bin'), new Uint8Array(8));
  for (const [label, input, code, tensor] of cases) {
    await test(label, async () => {
      const run = typeof input === 'function' ? input() : onnxReader.read(await writeModel(input as Bytes), nodeFileAccess);
      await rejectsWith(run, code, tensor);
    });
  }
});

test('decodeOnnxFieldValues: wrong counts and forms are typed errors', () => {
  const t = (over: Partial<TensorInfo>): TensorInfo => ({
    name: 't',
    dtype: 'I64',
    shape: [2],
    file: 'f',
    byteOffset: 0,
    byteLength: 0,
    encoding: 'onnx-typed-field',
    fieldWire: 'packed-varint',
    ...over,
  });
  const throwsCode = (fn: () => unknown, code: string) => assert.throws(fn, (e: unknown) => e instanceof QuantLensError && e.code === code);
  throwsCode(() => decodeOnnxFieldValues(t({}), concat(varint(1))), 'SIZE_MISMATCH');
  throwsCode(() => decodeOnnxFieldValues(t({}), concat(varint(1), varint(2), varint(3))), 'SIZE_MISMATCH');
  throwsCode(() => decodeOnnxFieldValues(t({}), Uint8Array.of(0x80)), 'INVALID_PROTOBUF');
  throwsCode(() => decodeOnnxFieldValues(t({ dtype: 'F32', fieldWire: 'packed-varint' }), concat(varint(1), varint(2))), 'INVALID_DTYPE');
  throwsCode(() => decodeOnnxFieldValues(t({ dtype: 'F32', fieldWire: 'packed-f32' }), new Uint8Array(4)), 'SIZE_MISMATCH');
  throwsCode(() => decodeOnnxFieldValues(t({ fieldWire: 'varint' }), concat(vField(7, 1), vField(8, 2))), 'INVALID_PROTOBUF');
  assert.deepEqual(decodeOnnxFieldValues(t({}), concat(varint(-1), varint(5))), le.i64([-1n, 5n]));
});

test('must still open: unknown and unsupported data types, non-numeric Constants, unknown fields, duplicates', async () => {
  const model = await readModel(
    modelProto({
      graph: graphProto({
        initializers: [
          tensorProto({ name: 'unknown_type', dims: [1], dataType: 99, raw: new Uint8Array(4) }),
          tensorProto({ name: 'undefined_type', dims: [1], dataType: 0, raw: new Uint8Array(4) }),
          tensorProto({ name: 'strings', dims: [1], dataType: DataType.STRING, extra: [sField(6, 'text')] }),
          tensorProto({ name: 'complex', dims: [1], dataType: DataType.COMPLEX64, floatData: [1, 2] }),
          tensorProto({ name: 'w', dims: [1], dataType: 1, raw: f32Bytes([1]), extra: [sField(12, 'doc'), vField(99, 5)] }),
          tensorProto({ name: 'w', dims: [1], dataType: 1, raw: f32Bytes([2]) }),
        ],
        nodes: [
          nodeProto({ opType: 'Constant', outputs: ['s'], attributes: [attr.string('value_string', 'hi')] }),
          nodeProto({ opType: 'Constant', outputs: ['nothing'] }),
          nodeProto({ opType: 'Relu', inputs: ['w'], outputs: ['r'] }),
        ],
        extra: [sField(10, 'graph doc'), lField(77, Uint8Array.of(1, 2, 3))],
      }),
      extra: [lField(25, sField(1, 'function')), vField(1000, 1)],
    }),
  );
  assert.deepEqual(
    model.tensors.map((t) => t.name),
    ['w', 'w#2'],
  );
  assert.deepEqual(await valuesOf(byName(model, 'w#2')), f32Bytes([2]));
  const codes = model.diagnostics.map((d) => `${d.code}:${d.tensor}`);
  assert.deepEqual(codes, [
    'INVALID_DTYPE:unknown_type',
    'INVALID_DTYPE:undefined_type',
    'UNSUPPORTED_DTYPE:strings',
    'UNSUPPORTED_DTYPE:complex',
    'DUPLICATE_NAME:w',
    'UNSUPPORTED_DTYPE:s',
    'ONNX_CONSTANT_WITHOUT_VALUE:nothing',
  ]);
  // An empty model (no tensors) opens too.
  assert.equal((await readModel(modelProto({ graph: graphProto({}) }))).tensors.length, 0);
});

test('sniff: .onnx by extension, or a ModelProto head', () => {
  assert.equal(onnxReader.sniff('/a/model.ONNX', new Uint8Array(0)), true);
  assert.equal(onnxReader.sniff('/a/model.bin', modelProto({ graph: graphProto({}) }).subarray(0, 8)), true);
  assert.equal(onnxReader.sniff('/a/model.bin', Uint8Array.of(0x50, 0x4b, 3, 4)), false);
  assert.equal(onnxReader.sniff('/a/model.safetensors', Uint8Array.of(0x08, 0x1a, 0, 0, 0, 0, 0, 0)), false);
});

test('only typed errors come out of mutated files (bounded fuzz)', async () => {
  const base = everyKindModel();
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 300; i++) {
    const bytes = base.slice(0, rand(4) === 0 ? rand(base.length) : base.length);
    for (let k = 0; k < 1 + rand(4); k++) if (bytes.length) bytes[rand(bytes.length)] = rand(4) === 0 ? 0xff : rand(256);
    try {
      const model = await onnxReader.read(await writeModel(bytes, 'fuzz.onnx', 'fuzz'), nodeFileAccess);
      for (const t of model.tensors) {
        if (t.file.endsWith('fuzz.onnx')) await valuesOf(t);
      }
    } catch (err) {
      assert.ok(err instanceof QuantLensError, `mutation ${i}: ${String((err as Error).stack)}`);
    }
  }
});

function nestedIfModel(depth: number): Bytes {
  let g = graphProto({ name: `g${depth}` });
  for (let d = depth; d > 0; d--) {
    g = graphProto({ name: `g${d - 1}`, nodes: [nodeProto({ opType: 'If', name: `if${d}`, inputs: ['c'], attributes: [attr.graph('then_branch', g)] })] });
  }
  return modelProto({ graph: g });
}

test(`subgraphs nested ${ONNX_MAX_GRAPH_DEPTH} deep still open`, async () => {
  const model = await readModel(nestedIfModel(ONNX_MAX_GRAPH_DEPTH));
  assert.equal(model.tensors.length, 0);
});

// ---- encoder ----

async function reencode(path: string, edit: (m: OnnxModel) => void = () => {}): Promise<{ out: string; original: ModelInfo; edited: ModelInfo }> {
  const src = await FileByteSource.open(path);
  try {
    const model = await readOnnxModel(src);
    edit(model);
    const out = join(dir, `re-${fileCounter++}.onnx`);
    await writeOnnxModel(model, src, out);
    return { out, original: await onnxReader.read(path, nodeFileAccess), edited: await onnxReader.read(out, nodeFileAccess) };
  } finally {
    await src.close();
  }
}

async function sameTensorValues(a: ModelInfo, b: ModelInfo): Promise<void> {
  assert.deepEqual(
    a.tensors.map((t) => [t.name, t.dtype, t.shape]),
    b.tensors.map((t) => [t.name, t.dtype, t.shape]),
  );
  const [srcA, srcB] = [await FileByteSource.open(a.files[0]!), await FileByteSource.open(b.files[0]!)];
  try {
    for (let i = 0; i < a.tensors.length; i++) {
      const [ta, tb] = [a.tensors[i]!, b.tensors[i]!];
      assert.deepEqual(await valuesOf(tb, tb.file === b.files[0] ? srcB : undefined), await valuesOf(ta, ta.file === a.files[0] ? srcA : undefined), ta.name);
    }
  } finally {
    await srcA.close();
    await srcB.close();
  }
}

test('encoder: an unchanged fixture re-encodes to identical bytes', async () => {
  const path = await writeModel(everyKindModel());
  const { out } = await reencode(path);
  assert.deepEqual(await readFile(out), await readFile(path));
});

test('encoder: added outputs, nodes, initializers and a replaced Constant show up after re-reading', async () => {
  const path = await writeModel(everyKindModel());
  const { edited, out } = await reencode(path, (m) => {
    const g: OnnxGraph = m.graph;
    g.outputs.push(onnxValueInfo('c', OnnxDataType.FLOAT, ['batch', null, 224]));
    g.initializers.push(onnxTensor('scale', OnnxDataType.FLOAT, [1], f32Bytes([0.5])));
    g.nodes.push(onnxNode('DequantizeLinear', ['raw_f32', 'scale'], ['raw_f32_dq'], { name: 'dq', attributes: [onnxAttribute.int('axis', 0)] }));
    const c0 = g.nodes.find((n) => n.name === 'c0')!;
    c0.attributes = [onnxAttribute.tensor('value', onnxTensor('', OnnxDataType.FLOAT, [3], f32Bytes([7, 8, 9])))];
  });
  assert.deepEqual(await valuesOf(byName(edited, 'scale')), f32Bytes([0.5]));
  assert.deepEqual(byName(edited, 'const_value').shape, [3]);
  assert.deepEqual(await valuesOf(byName(edited, 'const_value')), f32Bytes([7, 8, 9]));
  assert.deepEqual(await valuesOf(byName(edited, 'raw_f32')), f32Bytes([1, 2, 3, 4, 5, 6]));
  const src = await FileByteSource.open(out);
  try {
    const reread = await readOnnxModel(src);
    assert.deepEqual(
      reread.graph.outputs.map((o) => o.name),
      ['y', 'c'],
    );
    assert.deepEqual(reread.graph.outputs[1]!.type, {
      kind: 'tensor',
      elemType: OnnxDataType.FLOAT,
      shape: [{ param: 'batch' }, {}, { value: 224 }],
      extraFields: [],
    });
    const dq = reread.graph.nodes.at(-1)!;
    assert.deepEqual([dq.opType, dq.name, dq.inputs, dq.outputs, dq.attributes[0]!.i], ['DequantizeLinear', 'dq', ['raw_f32', 'scale'], ['raw_f32_dq'], 0n]);
  } finally {
    await src.close();
  }
});

test('encoder: unmodelled fields (doc strings, unknown fields, functions) survive re-encoding', async () => {
  const bytes = modelProto({
    graph: graphProto({
      initializers: [tensorProto({ name: 'w', dims: [1], dataType: 1, raw: f32Bytes([1]), extra: [sField(12, 'doc'), vField(99, 5)] })],
      extra: [sField(10, 'graph doc'), lField(77, Uint8Array.of(1, 2, 3))],
    }),
    extra: [lField(25, sField(1, 'function')), vField(1000, 1)],
  });
  const src = new MemoryByteSource(bytes);
  const model = await readOnnxModel(src);
  model.graph.outputs.push(onnxValueInfo('w'));
  const encoded = await encodeOnnxModel(model, src);
  for (const piece of [sField(12, 'doc'), vField(99, 5), sField(10, 'graph doc'), lField(77, Uint8Array.of(1, 2, 3)), lField(25, sField(1, 'function')), vField(1000, 1)]) {
    assert.ok(Buffer.from(encoded).includes(Buffer.from(piece)), `missing ${Buffer.from(piece).toString('hex')}`);
  }
});

// ---- real files ----

const REAL = [
  'onnx/ch_ppocr_mobile_v2.0_cls_infer.onnx',
  'onnx/silero_vad_legacy.onnx',
  'silero-vad/silero_vad.onnx',
  'silero-vad/silero_vad_16k_op15.onnx',
  'silero-vad/silero_vad_half.onnx',
];

async function graphOf(path: string): Promise<OnnxGraph> {
  const src = await FileByteSource.open(path);
  try {
    return (await readOnnxModel(src)).graph;
  } finally {
    await src.close();
  }
}

const subgraphs = (g: OnnxGraph): OnnxGraph[] => g.nodes.flatMap((n) => n.attributes.flatMap((a) => (a.g ? [a.g] : [])));
const allGraphs = (g: OnnxGraph): OnnxGraph[] => [g, ...subgraphs(g).flatMap(allGraphs)];
const constants = (g: OnnxGraph) => g.nodes.filter((n) => n.opType === 'Constant').length;

test('real files: every .onnx under shared/models opens, with the documented counts', async (t) => {
  if (!existsSync(MODELS)) return t.skip('../shared/models is absent');
  const found = (await readdir(MODELS, { recursive: true })).filter((f) => f.endsWith('.onnx')).sort();
  for (const rel of found) {
    const model = await onnxReader.read(join(MODELS, rel), nodeFileAccess);
    assert.ok(model.tensors.length > 0, rel);
    assert.deepEqual(model.diagnostics, [], rel);
    assert.equal(new Set(model.tensors.map((x) => x.name)).size, model.tensors.length, `${rel}: names are unique`);
  }
  const path = (rel: string) => join(MODELS, rel);
  if (existsSync(path(REAL[0]!))) {
    const g = await graphOf(path(REAL[0]!));
    assert.equal(g.initializers.length, 0);
    assert.equal(constants(g), 250);
    const model = await onnxReader.read(path(REAL[0]!), nodeFileAccess);
    assert.equal(model.tensors.length, 250);
    assert.equal(model.metadata['onnx.opset.ai.onnx']!.value, 9n);
  }
  if (existsSync(path(REAL[1]!))) {
    const g = await graphOf(path(REAL[1]!));
    assert.equal(g.initializers.length, 69);
    assert.equal(subgraphs(g).reduce((n, s) => n + s.initializers.length, 0), 90);
    assert.equal(allGraphs(g).reduce((n, s) => n + s.initializers.length, 0), 259);
    assert.equal((await onnxReader.read(path(REAL[1]!), nodeFileAccess)).tensors.length, 259);
  }
  if (existsSync(path(REAL[2]!))) {
    const g = await graphOf(path(REAL[2]!));
    assert.equal(allGraphs(g).reduce((n, s) => n + s.initializers.length, 0), 0);
    const model = await onnxReader.read(path(REAL[2]!), nodeFileAccess);
    assert.equal(model.metadata['onnx.opset.ai.onnx']!.value, 16n);
    // The weights are Constants inside the If subgraphs (34 F32 among 341, counted with onnx's Python API).
    assert.equal(model.tensors.length, 341);
    assert.equal(model.tensors.filter((x) => x.dtype === 'F32').length, 34);
    assert.equal(constants(g), 1);
    assert.equal(model.tensors.length, allGraphs(g).reduce((n, s) => n + constants(s), 0));
  }
  for (const rel of [REAL[3]!, REAL[4]!]) {
    if (!existsSync(path(rel))) continue;
    const g = await graphOf(path(rel));
    assert.equal(g.initializers.length, 15, rel);
    assert.ok(g.initializers.every((x) => x.dataType === OnnxDataType.FLOAT), rel);
  }
});

test('real files: re-encoding unchanged gives identical bytes; an added output re-reads', async (t) => {
  if (!existsSync(MODELS)) return t.skip('../shared/models is absent');
  for (const rel of REAL) {
    const path = join(MODELS, rel);
    if (!existsSync(path)) continue;
    const { out, original, edited } = await reencode(path);
    assert.deepEqual(await readFile(out), await readFile(path), rel);
    await sameTensorValues(original, edited);
  }
  const path = join(MODELS, REAL[0]!);
  if (!existsSync(path)) return;
  const g = await graphOf(path);
  const inner = g.nodes.find((n) => n.opType === 'Conv')!.outputs[0]!;
  // onnx.checker wants a shape on graph outputs: a Conv output has rank 4.
  const { out, original, edited } = await reencode(path, (m) => m.graph.outputs.push(onnxValueInfo(inner, OnnxDataType.FLOAT, [null, null, null, null])));
  await sameTensorValues(original, edited);
  assert.deepEqual(
    (await graphOf(out)).outputs.map((o) => o.name),
    [...g.outputs.map((o) => o.name), inner],
  );
  withAddedOutput = out;
});

/** The shared model with an added output, written by the test above, for the onnx.checker oracle. */
let withAddedOutput: string | undefined;

/** python3 with the `onnx` package (Debian python3-onnx) as an oracle, when installed. */
function onnxPython(): string | undefined {
  for (const python of ['python3', '/usr/bin/python3']) {
    try {
      execFileSync(python, ['-c', 'import onnx'], { stdio: 'ignore' });
      return python;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** Runs onnx.checker.check_model(full_check) on every path in one python process (importing onnx is slow). */
function checkWithOnnx(python: string, paths: string[]): void {
  const script = 'import onnx, sys\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)';
  execFileSync(python, ['-c', script, ...paths], { stdio: 'pipe' });
}

test('onnx.checker accepts re-encoded and edited models (oracle, skipped without python3-onnx)', async (t) => {
  const python = onnxPython();
  if (!python) return t.skip('python3 with onnx is not installed');
  const fixture = await writeModel(
    modelProto({
      opsets: [['', 17]],
      graph: graphProto({
        inputs: [valueInfo('x', DataType.FLOAT, ['N', 3])],
        initializers: [tensorProto({ name: 'w', dims: [3, 2], dataType: DataType.FLOAT, raw: f32Bytes([1, 2, 3, 4, 5, 6]) })],
        nodes: [
          constantNode('b', tensorProto({ dims: [2], dataType: DataType.FLOAT, floatData: [0.5, -0.5] }), 'bias'),
          nodeProto({ opType: 'MatMul', name: 'mm', inputs: ['x', 'w'], outputs: ['h'] }),
          nodeProto({ opType: 'Add', name: 'add', inputs: ['h', 'b'], outputs: ['y'] }),
        ],
        outputs: [valueInfo('y', DataType.FLOAT, ['N', 2])],
      }),
    }),
  );
  const { out } = await reencode(fixture, (m) => {
    const g = m.graph;
    // QDQ around the weight, an extra output and a replaced Constant: what later issues do.
    g.initializers.push(onnxTensor('w_scale', OnnxDataType.FLOAT, [], f32Bytes([0.05])), onnxTensor('w_zp', OnnxDataType.INT8, [], Uint8Array.of(0)));
    g.nodes.unshift(
      onnxNode('QuantizeLinear', ['w', 'w_scale', 'w_zp'], ['w_q'], { name: 'w_quant' }),
      onnxNode('DequantizeLinear', ['w_q', 'w_scale', 'w_zp'], ['w_dq'], { name: 'w_dequant' }),
    );
    g.nodes.find((n) => n.name === 'mm')!.inputs[1] = 'w_dq';
    g.nodes.find((n) => n.name === 'bias')!.attributes = [onnxAttribute.tensor('value', onnxTensor('', OnnxDataType.FLOAT, [2], f32Bytes([1, 1])))];
    g.outputs.push(onnxValueInfo('h', OnnxDataType.FLOAT, ['N', 2]));
  });
  const paths = [fixture, out];
  if (withAddedOutput) paths.push(withAddedOutput);
  const ppocr = join(MODELS, REAL[0]!);
  if (existsSync(ppocr)) paths.push((await reencode(ppocr)).out);
  checkWithOnnx(python, paths);
});
