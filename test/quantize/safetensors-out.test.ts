import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PRESETS, llamaConfig, llamaTensors, writeSafetensorsModel, type GenDType } from '../../src/core/generate';
import type { ModelInfo, TensorInfo } from '../../src/core/model';
import { bf16ToF32, f32ToBf16 } from '../../src/core/quant/fp16';
import { dequantizeRtn, quantizeRtn } from '../../src/core/quant/rtn';
import { parseScheme } from '../../src/core/quant/scheme';
import {
  bnbQuantStateJson, packInt32Columns, packInt32Rows, packNibbles, pythonFloatRepr, quantizeToSafetensors,
} from '../../src/core/quantize/to-safetensors';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import { readSafetensorsHeader } from '../../src/core/readers/safetensors';
import { FileByteSource } from '../../src/core/bytesource';
import { summarizeModel } from '../../src/core/summary';
import { tensorRowsF32 } from '../../src/core/tensor-rows';
import { safetensorsBytes } from '../fixtures/safetensors-builder';

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'ql-st-out-'));
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The tiny generated Llama with its config.json and a tokenizer file beside it. */
function tinyModel(dir: string, dtype: GenDType = 'F32'): string {
  const input = join(dir, 'in');
  writeSafetensorsModel(input, llamaTensors(PRESETS.tiny.shape), dtype, 7);
  writeFileSync(join(input, 'config.json'), `${JSON.stringify(llamaConfig(PRESETS.tiny.shape, dtype), null, 2)}\n`);
  writeFileSync(join(input, 'tokenizer.json'), '{"model": {}}');
  return input;
}

async function values(model: ModelInfo, t: TensorInfo): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for await (const c of tensorRowsF32(model, t, nodeFileAccess, { maxElements: 4096 })) parts.push(c.values.slice());
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      bad++;
      if (first < 0) first = i;
    }
  }
  assert.equal(bad, 0, `${what}: ${bad} of ${a.length} values differ, first at ${first}: ${a[first]} vs ${b[first]}`);
}

function headerOf(path: string) {
  return FileByteSource.open(path).then(async (src) => {
    try {
      return await readSafetensorsHeader(src);
    } finally {
      await src.close();
    }
  });
}

test('pack_to_int32 by hand: 4-bit rows, eight values per word, element i at bits 4i', () => {
  const q = Int8Array.from([...Array.from({ length: 16 }, (_, i) => i - 8), ...new Array(16).fill(0)]);
  assert.deepEqual([...packInt32Rows(q, 2, 16, 4)], [0x76543210, 0xfedcba98 | 0, 0x88888888 | 0, 0x88888888 | 0]);
  // 8-bit: four per word, + 128
  assert.deepEqual([...packInt32Rows(Int8Array.from([-128, -1, 0, 127, 5]), 1, 5, 8)], [0xff807f00 | 0, 133]);
  // 3-bit: ten per word, the last two bits unused
  assert.deepEqual([...packInt32Rows(Int8Array.from(new Array(11).fill(3)), 1, 11, 3)], [0b111111111111111111111111111111, 7]);
  // packed_dim=0 (zero points [out, groups]): rows 0…7 in the first word of each column
  const z = Int8Array.from([-8, -7, -6, -5, -4, -3, -2, -1, 0, 7]);
  assert.deepEqual([...packInt32Columns(z, 10, 1, 4)], [0x76543210, 0xf8]);
  assert.deepEqual([...packInt32Columns(Int8Array.from([1, 2, 3, 4]), 2, 2, 4)], [0xb9, 0xca]);
  // bitsandbytes: first code in the high nibble
  assert.deepEqual([...packNibbles(Uint8Array.from([1, 2, 3]))], [0x12, 0x30]);
});

test("Python's float repr and the bitsandbytes quant state JSON", () => {
  const cases: Array<[number, string]> = [
    [0.5, '0.5'], [6, '6.0'], [1e-5, '1e-05'], [0.0001, '0.0001'], [0.00012345, '0.00012345'], [-2.5e-7, '-2.5e-07'],
    [1234.5, '1234.5'], [1e16, '1e+16'], [123456789012345680000, '1.2345678901234568e+20'], [1e15, '1000000000000000.0'],
    [Math.fround(0.1), '0.10000000149011612'], [0, '0.0'],
  ];
  for (const [x, s] of cases) assert.equal(pythonFloatRepr(x), s, String(x));
  assert.equal(
    bnbQuantStateJson([512, 256], 64, 'bfloat16', 0.015625),
    '{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [512, 256], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.015625}',
  );
  assert.equal(bnbQuantStateJson([4, 8], 32, 'float32'), '{"quant_type": "nf4", "blocksize": 32, "dtype": "float32", "shape": [4, 8]}');
});

test('a 2×16 int4 channel tensor: exact weight_packed words, scales and weight_shape', async () => {
  const dir = scratch();
  try {
    const input = join(dir, 'in');
    mkdirSync(input);
    const row0 = [...Array.from({ length: 15 }, (_, i) => (i - 7) * 0.5), 0];
    const data = Float32Array.from([...row0, ...new Array(16).fill(1)]);
    writeFileSync(join(input, 'model.safetensors'), safetensorsBytes([{ name: 'model.layers.0.mlp.down_proj.weight', dtype: 'F32', shape: [2, 16], data: new Uint8Array(data.buffer) }]));
    await quantizeToSafetensors(input, join(dir, 'out'), { scheme: 'int4-ch-sym' });
    const path = join(dir, 'out', 'model.safetensors');
    const h = await headerOf(path);
    const bytes = readFileSync(path);
    const byName = new Map(h.tensors.map((t) => [t.name, t]));
    const at = (n: string) => byName.get(`model.layers.0.mlp.down_proj.${n}`)!;
    assert.deepEqual(h.tensors.map((t) => [t.name.split('.').pop(), t.dtype, t.shape]), [
      ['weight_packed', 'I32', [2, 2]], ['weight_scale', 'F32', [2, 1]], ['weight_shape', 'I64', [2]],
    ]);
    const words = new Int32Array(bytes.buffer.slice(bytes.byteOffset + at('weight_packed').byteOffset, bytes.byteOffset + at('weight_packed').byteOffset + 16));
    // row 0: levels −7…7 then 0, stored + 8; row 1: all 7 (+ 8 = 15)
    assert.deepEqual([...words], [0x87654321 | 0, 0x8fedcba9 | 0, -1, -1]);
    const scales = new Float32Array(bytes.buffer.slice(bytes.byteOffset + at('weight_scale').byteOffset, bytes.byteOffset + at('weight_scale').byteOffset + 8));
    assert.deepEqual([...scales], [0.5, Math.fround(1 / 7)]);
    const shape = new BigInt64Array(bytes.buffer.slice(bytes.byteOffset + at('weight_shape').byteOffset, bytes.byteOffset + at('weight_shape').byteOffset + 16));
    assert.deepEqual([...shape], [2n, 16n]);
    assert.deepEqual(h.metadata.format, { type: 'string', value: 'pt' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const SCHEMES = ['int4-g128-sym', 'int4-g64-asym', 'int8-ch-sym', 'int8-ch-asym', 'int4-t-asym', 'int3-g32-asym', 'int4-g128-sym-mse', 'fp8-e4m3-ch', 'fp8-e4m3-t', 'nf4-g64', 'nf4-g64-dq'];

test('every layout reads back through openModel as logical tensors equal, bit for bit, to the RTN twin', async () => {
  const dir = scratch();
  try {
    const input = tinyModel(dir);
    const before = sha256(join(input, 'model.safetensors'));
    const original = await openModel(input);
    const originalValues = new Map<string, Float32Array>();
    for (const t of original.tensors) originalValues.set(t.name, await values(original, t));
    for (const name of SCHEMES) {
      const out = join(dir, name);
      const result = await quantizeToSafetensors(input, out, { scheme: name });
      const model = await openModel(out);
      assert.deepEqual(model.diagnostics, [], name);
      assert.deepEqual(model.tensors.map((t) => t.name), original.tensors.map((t) => t.name), `${name}: one logical tensor per weight, in order`);
      const scheme = parseScheme(name);
      for (const t of model.tensors) {
        const src = original.tensors.find((o) => o.name === t.name)!;
        const x = originalValues.get(t.name)!;
        const planned = result.tensors.find((r) => r.name === t.name)!.scheme;
        if (planned === null) {
          assert.equal(t.encoding, 'raw', `${name} ${t.name}`);
          sameBits(await values(model, t), x, `${name} ${t.name} kept`);
          continue;
        }
        assert.equal(t.encoding, 'quantized', `${name} ${t.name}`);
        assert.deepEqual(t.shape, src.shape);
        assert.equal(t.dtype, scheme.kind === 'int' ? 'CT_INT' : scheme.kind === 'fp8' ? 'CT_FP8' : 'BNB_NF4');
        const [rows, cols] = src.shape as [number, number];
        sameBits(await values(model, t), dequantizeRtn(quantizeRtn(x, rows, cols, scheme)), `${name} ${t.name}`);
      }
      // totals: parameters as the original, bytes all parts
      const totals = summarizeModel(model);
      assert.equal(totals.params, summarizeModel(original).params, name);
      assert.equal(totals.bytes, result.bytes, name);
    }
    assert.equal(sha256(join(input, 'model.safetensors')), before, 'the input is never modified');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compressed-tensors config.json: groups, targets, ignore; the input config kept as text', async () => {
  const dir = scratch();
  try {
    const input = tinyModel(dir);
    await quantizeToSafetensors(input, join(dir, 'out'), { scheme: 'int4-g128-asym' });
    const text = readFileSync(join(dir, 'out', 'config.json'), 'utf8');
    const original = readFileSync(join(input, 'config.json'), 'utf8');
    assert.ok(text.startsWith(original.slice(0, original.lastIndexOf('}')).trimEnd()), 'original keys kept byte for byte');
    const q = JSON.parse(text).quantization_config;
    assert.equal(q.quant_method, 'compressed-tensors');
    assert.equal(q.format, 'pack-quantized');
    assert.equal(q.quantization_status, 'compressed');
    assert.deepEqual(q.ignore, ['lm_head']);
    assert.deepEqual(Object.keys(q.config_groups), ['group_0']);
    const g = q.config_groups.group_0;
    assert.deepEqual(g.weights, {
      num_bits: 4, type: 'int', symmetric: false, group_size: 128, strategy: 'group', block_structure: null, dynamic: false, actorder: null, observer: 'minmax', observer_kwargs: {},
    });
    assert.equal(g.input_activations, null);
    assert.equal(g.targets.length, 14);
    assert.ok(g.targets.includes('model.layers.0.self_attn.q_proj') && g.targets.includes('model.layers.1.mlp.down_proj'));
    assert.ok(existsSync(join(dir, 'out', 'tokenizer.json')), 'tokenizer copied');
    // asymmetric zero points: int32 packed along the output dimension
    const h = await headerOf(join(dir, 'out', 'model.safetensors'));
    const zp = h.tensors.find((t) => t.name === 'model.layers.0.mlp.down_proj.weight_zero_point')!;
    assert.deepEqual([zp.dtype, zp.shape], ['I32', [256 / 8, 512 / 128]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a plan gives several config groups (mixed-precision with FP8) and reads back exactly', async () => {
  const dir = scratch();
  try {
    const input = tinyModel(dir);
    const original = await openModel(input);
    const plan: Record<string, string> = {};
    for (const t of original.tensors) {
      if (t.name.includes('mlp.')) plan[t.name] = 'int4-g128-sym';
      else if (t.name.includes('self_attn.')) plan[t.name] = t.name.includes('.0.') ? 'int8-ch-sym' : 'fp8-e4m3-ch';
    }
    await quantizeToSafetensors(input, join(dir, 'out'), { plan });
    const q = JSON.parse(readFileSync(join(dir, 'out', 'config.json'), 'utf8')).quantization_config;
    assert.equal(q.format, 'mixed-precision');
    const groups = Object.values(q.config_groups) as Array<{ targets: string[]; format: string; weights: { num_bits: number; type: string } }>;
    assert.deepEqual(groups.map((g) => [g.format, g.weights.type, g.weights.num_bits, g.targets.length]), [
      ['float-quantized', 'float', 8, 4], ['pack-quantized', 'int', 4, 6], ['pack-quantized', 'int', 8, 4],
    ]);
    assert.deepEqual(q.ignore, ['lm_head']);
    const model = await openModel(join(dir, 'out'));
    for (const [name, scheme] of Object.entries(plan)) {
      const t = model.tensors.find((x) => x.name === name)!;
      const [rows, cols] = t.shape as [number, number];
      const x = await values(original, original.tensors.find((o) => o.name === name)!);
      sameBits(await values(model, t), dequantizeRtn(quantizeRtn(x, rows, cols, parseScheme(scheme))), name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bitsandbytes NF4: tensors, quant state and quantization_config as transformers loads them', async () => {
  const dir = scratch();
  try {
    const input = tinyModel(dir);
    const result = await quantizeToSafetensors(input, join(dir, 'out'), { scheme: 'nf4-g64-dq' });
    assert.equal(result.layout, 'bitsandbytes');
    const text = readFileSync(join(dir, 'out', 'config.json'), 'utf8');
    assert.match(text, /"llm_int8_threshold": 6\.0/);
    const q = JSON.parse(text).quantization_config;
    assert.deepEqual(q, {
      _load_in_4bit: true, _load_in_8bit: false, bnb_4bit_compute_dtype: 'float32', bnb_4bit_quant_storage: 'uint8', bnb_4bit_quant_type: 'nf4',
      bnb_4bit_use_double_quant: true, llm_int8_enable_fp32_cpu_offload: false, llm_int8_has_fp16_weight: false, llm_int8_skip_modules: null,
      llm_int8_threshold: 6, load_in_4bit: true, load_in_8bit: false, quant_method: 'bitsandbytes',
    });
    const path = join(dir, 'out', 'model.safetensors');
    const h = await headerOf(path);
    const w = 'model.layers.0.mlp.up_proj.weight';
    const parts = h.tensors.filter((t) => t.name.startsWith(w)).map((t) => [t.name.slice(w.length), t.dtype, t.shape]);
    const blocks = (512 * 256) / 64;
    assert.deepEqual(parts.slice(0, 5), [
      ['', 'U8', [(512 * 256) / 2, 1]], ['.absmax', 'U8', [blocks]], ['.quant_map', 'F32', [16]], ['.nested_absmax', 'F32', [Math.ceil(blocks / 256)]], ['.nested_quant_map', 'F32', [256]],
    ]);
    const stateInfo = h.tensors.find((t) => t.name === `${w}.quant_state.bitsandbytes__nf4`)!;
    const bytes = readFileSync(path);
    const state = bytes.subarray(stateInfo.byteOffset, stateInfo.byteOffset + stateInfo.byteLength).toString('utf8');
    const original = await openModel(input);
    const x = await values(original, original.tensors.find((t) => t.name === w)!);
    const twin = quantizeRtn(x, 512, 256, parseScheme('nf4-g64-dq'));
    assert.equal(state, bnbQuantStateJson([512, 256], 64, 'float32', twin.nested!.offset));
    // the packed codes: the twin's level indices, two per byte, high nibble first
    const packed = bytes.subarray(h.tensors.find((t) => t.name === w)!.byteOffset, h.tensors.find((t) => t.name === w)!.byteOffset + 16);
    assert.deepEqual([...packed], [...packNibbles(twin.q.subarray(0, 32) as Uint8Array)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fake-quant writes BF16 of the dequantized weights in the original layout', async () => {
  const dir = scratch();
  try {
    const input = tinyModel(dir);
    const plan = { 'model.layers.0.mlp.down_proj.weight': 'nf4-g64-dq', 'model.layers.1.self_attn.q_proj.weight': 'int4-t-sym', 'lm_head.weight': 'fp8-e5m2-ch' };
    const result = await quantizeToSafetensors(input, join(dir, 'out'), { plan, fakeQuant: true });
    assert.equal(result.layout, 'fake-quant');
    const model = await openModel(join(dir, 'out'));
    const original = await openModel(input);
    assert.equal(JSON.parse(readFileSync(join(dir, 'out', 'config.json'), 'utf8')).quantization_config, undefined);
    assert.deepEqual(JSON.parse((model.metadata['quantlens.fake_quant'] as { value: string }).value), plan);
    for (const t of model.tensors) {
      const src = original.tensors.find((o) => o.name === t.name)!;
      const scheme = (plan as Record<string, string>)[t.name];
      assert.equal(t.dtype, scheme ? 'BF16' : src.dtype, t.name);
      if (!scheme) continue;
      const [rows, cols] = src.shape as [number, number];
      const expected = dequantizeRtn(quantizeRtn(await values(original, src), rows, cols, parseScheme(scheme))).map((v) => bf16ToF32(f32ToBf16(v)));
      sameBits(await values(model, t), expected, t.name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('large outputs are sharded with an index that reads back', async () => {
  const dir = scratch();
  try {
    const input = tinyModel(dir);
    const result = await quantizeToSafetensors(input, join(dir, 'out'), { scheme: 'int8-ch-sym', shardBytes: 400_000 });
    const names = readdirSync(join(dir, 'out')).sort();
    assert.ok(result.files.length > 3 && names.includes('model.safetensors.index.json') && names.includes('model-00001-of-00005.safetensors'), names.join(' '));
    const index = JSON.parse(readFileSync(join(dir, 'out', 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.metadata.total_size, result.bytes);
    assert.equal(index.weight_map['model.layers.1.mlp.down_proj.weight_packed'], index.weight_map['model.layers.1.mlp.down_proj.weight_scale'], 'companions stay with their weight');
    const model = await openModel(join(dir, 'out'));
    assert.equal(model.tensors.filter((t) => t.encoding === 'quantized').length, 14);
    assert.equal(summarizeModel(model).bytes, result.bytes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('BF16 models keep BF16 scales, and levels are taken against the stored scale', async () => {
  const dir = scratch();
  try {
    const input = tinyModel(dir, 'BF16');
    await quantizeToSafetensors(input, join(dir, 'out'), { scheme: 'int4-g128-sym' });
    const h = await headerOf(join(dir, 'out', 'model.safetensors'));
    assert.equal(h.tensors.find((t) => t.name.endsWith('down_proj.weight_scale'))!.dtype, 'BF16');
    const model = await openModel(join(dir, 'out'));
    const original = await openModel(input);
    const name = 'model.layers.0.mlp.down_proj.weight';
    const x = await values(original, original.tensors.find((t) => t.name === name)!);
    const got = await values(model, model.tensors.find((t) => t.name === name)!);
    // no value further from x than half a step of its group (a clamp never bites: the range is symmetric)
    const twin = quantizeRtn(x, 256, 512, parseScheme('int4-g128-sym'));
    for (let i = 0; i < x.length; i++) {
      const step = bf16ToF32(f32ToBf16(twin.scales[Math.floor(i / 128)]!));
      assert.ok(Math.abs(got[i]! - x[i]!) <= step * 0.5 + 1e-6 * Math.abs(x[i]!) + 1e-12, `value ${i}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cancel, an existing output and a read-only folder leave nothing behind', async () => {
  const dir = scratch();
  try {
    const input = tinyModel(dir);
    const controller = new AbortController();
    await assert.rejects(
      quantizeToSafetensors(input, join(dir, 'out'), { scheme: 'int4-g128-sym', signal: controller.signal, onProgress: (p) => p.tensorsDone === 3 && controller.abort() }),
      (e: { code?: string }) => e.code === 'CANCELLED',
    );
    assert.deepEqual(readdirSync(dir), ['in'], 'no output, no temporary folder');
    mkdirSync(join(dir, 'exists'));
    await assert.rejects(quantizeToSafetensors(input, join(dir, 'exists'), { scheme: 'int4-g128-sym' }), (e: { code?: string }) => e.code === 'OUTPUT');
    await assert.rejects(quantizeToSafetensors(input, join(dir, 'mixed'), { plan: { 'lm_head.weight': 'nf4-g64', 'model.layers.0.mlp.up_proj.weight': 'int4-g128-sym' } }), (e: { code?: string }) => e.code === 'USAGE');
    await assert.rejects(quantizeToSafetensors(input, join(dir, 'e5m2'), { scheme: 'fp8-e5m2-ch' }), (e: { code?: string }) => e.code === 'UNSUPPORTED');
    if (process.getuid?.() !== 0) {
      const ro = join(dir, 'ro');
      mkdirSync(ro);
      chmodSync(ro, 0o555);
      await assert.rejects(quantizeToSafetensors(input, join(ro, 'out'), { scheme: 'int4-g128-sym' }), (e: { code?: string; message: string }) => e.code === 'OUTPUT' && /not writable/.test(e.message));
      chmodSync(ro, 0o755);
      assert.deepEqual(readdirSync(ro), []);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a NaN or Inf in a weight to quantize is a NON_FINITE error for every layout, and no output is left', async () => {
  const dir = scratch();
  try {
    const values = new Float32Array(16 * 64).map((_, i) => Math.cos(i));
    values[3 * 64 + 1] = -Infinity;
    const input = join(dir, 'inf.safetensors');
    writeFileSync(input, safetensorsBytes([{ name: 'proj.weight', dtype: 'F32', shape: [16, 64], data: new Uint8Array(values.buffer) }]));
    for (const [scheme, fakeQuant] of [['int4-g32-sym', false], ['int8-t-sym', false], ['nf4-g64-dq', false], ['fp8-e4m3-ch', false], ['int4-g32-asym', true]] as const) {
      await assert.rejects(
        quantizeToSafetensors(input, join(dir, 'out'), { scheme, fakeQuant }),
        (e: { code?: string; tensor?: string; message: string }) => e.code === 'NON_FINITE' && e.tensor === 'proj.weight' && /element 193\b/.test(e.message),
        scheme,
      );
      assert.deepEqual(readdirSync(dir), ['inf.safetensors'], scheme);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model with no tensor the scheme quantizes gets an error that says why', async () => {
  const dir = scratch();
  try {
    const rnn = join(dir, 'rnn.safetensors');
    writeFileSync(rnn, safetensorsBytes([{ name: 'rnn.weight_ih', dtype: 'F32', shape: [8, 32] }, { name: 'rnn.bias', dtype: 'F32', shape: [8] }]));
    await assert.rejects(
      quantizeToSafetensors(rnn, join(dir, 'out'), { scheme: 'int4-g32-sym' }),
      (e: { code?: string; message: string }) => e.code === 'USAGE' && /2-D Linear weights/.test(e.message),
    );
    const narrow = join(dir, 'narrow.safetensors');
    writeFileSync(narrow, safetensorsBytes([{ name: 'proj.weight', dtype: 'F32', shape: [4, 48] }]));
    await assert.rejects(
      quantizeToSafetensors(narrow, join(dir, 'out'), { scheme: 'int4-g32-sym' }),
      (e: { code?: string; message: string }) => e.code === 'USAGE' && /proj\.weight: /.test(e.message),
    );
    assert.deepEqual(readdirSync(dir).sort(), ['narrow.safetensors', 'rnn.safetensors']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function cliContext(args: string[]) {
  let stdout = '';
  const sink = (write: (s: string) => void) => ({ write: (s: string) => (write(s), true) }) as unknown as NodeJS.WritableStream;
  return { ctx: { args, stdout: sink((s) => (stdout += s)), stderr: sink(() => undefined), signal: new AbortController().signal }, out: () => stdout };
}

test('quantlens quantize: a scheme name as --type, --plan and --fake-quant write safetensors folders (kernel = twin, byte for byte)', async () => {
  const { quantizeCommand } = await import('../../src/cli/commands/quantize');
  const dir = scratch();
  try {
    const input = tinyModel(dir);
    const a = cliContext([input, '--type', 'int4-g128-asym', '--json']);
    await quantizeCommand(a.ctx);
    const result = JSON.parse(a.out());
    assert.equal(result.output, join(dir, 'in-int4-g128-asym'));
    assert.equal(result.layout, 'compressed-tensors');
    assert.equal(result.quantizationConfig.quant_method, 'compressed-tensors');
    await quantizeToSafetensors(input, join(dir, 'twin'), { scheme: 'int4-g128-asym' });
    assert.ok(readFileSync(join(dir, 'twin', 'model.safetensors')).equals(readFileSync(join(dir, 'in-int4-g128-asym', 'model.safetensors'))), 'kernel and twin outputs are identical');
    writeFileSync(join(dir, 'plan.json'), JSON.stringify({ target: 'safetensors', assignment: { 'model.layers.0.mlp.up_proj.weight': 'nf4-g64-dq', 'model.layers.1.mlp.up_proj.weight': 'nf4-g128' } }));
    const b = cliContext([input, '--plan', join(dir, 'plan.json'), '-o', join(dir, 'nf4'), '--json']);
    await quantizeCommand(b.ctx);
    assert.deepEqual(JSON.parse(b.out()).quantizationConfig.llm_int8_skip_modules.length, 13);
    await quantizeToSafetensors(input, join(dir, 'nf4-twin'), { plan: { 'model.layers.0.mlp.up_proj.weight': 'nf4-g64-dq', 'model.layers.1.mlp.up_proj.weight': 'nf4-g128' } });
    assert.ok(readFileSync(join(dir, 'nf4-twin', 'model.safetensors')).equals(readFileSync(join(dir, 'nf4', 'model.safetensors'))));
    const c = cliContext([input, '--type', 'fp8-e5m2-ch', '--fake-quant']);
    await quantizeCommand(c.ctx);
    assert.match(c.out(), /in-fp8-e5m2-ch-fake: fake-quant, 14 tensors quantized/);
    await assert.rejects(quantizeCommand(cliContext([input, '--type', 'int4-g128-sym', '-o', join(dir, 'nf4')]).ctx), (e: { code?: string }) => e.code === 'USAGE');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
