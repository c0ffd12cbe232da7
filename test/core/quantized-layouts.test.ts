import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ModelInfo, TensorInfo } from '../../src/core/model';
import { f16ToF32, f32ToF16 } from '../../src/core/quant/fp16';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import { summarizeModel } from '../../src/core/summary';
import { tensorRowsF32 } from '../../src/core/tensor-rows';
import { readTensorBytes } from '../../src/core/tensordata';
import { awqPack, gptqQweight, gptqQzeros, levels, spec } from '../fixtures/quantized-builder';
import { safetensorsBytes, type SafetensorsTensorSpec } from '../fixtures/safetensors-builder';

/** Writes one safetensors file (and config.json when given) into a fresh folder; returns the folder. */
function checkpoint(tensors: SafetensorsTensorSpec[], config?: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'ql-qlayout-'));
  writeFileSync(join(dir, 'model.safetensors'), safetensorsBytes(tensors, { format: 'pt' }));
  if (config) writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

async function values(model: ModelInfo, t: TensorInfo): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for await (const c of tensorRowsF32(model, t, nodeFileAccess, { maxElements: 40 })) parts.push(c.values.slice());
  return Float32Array.from(parts.flatMap((p) => [...p]));
}

function json(name: string, text: string): SafetensorsTensorSpec {
  const bytes = new TextEncoder().encode(text);
  return spec(name, 'U8', [bytes.length], bytes);
}

function f16Codes(v: number[]): Uint16Array {
  return Uint16Array.from(v.map(f32ToF16));
}

function matrix(rows: number, cols: number, f: (r: number, c: number) => number): number[][] {
  return Array.from({ length: rows }, (_, r) => Array.from({ length: cols }, (_, c) => f(r, c)));
}

/** A random GPTQ layer: levels q[out][in], zero points z[group][out], f16 scales s[group][out]. */
function gptqLayer(out: number, inputs: number, groups: number, bits: number, seed: number) {
  const rnd = levels(seed);
  const q = matrix(out, inputs, () => rnd(1 << bits));
  const z = matrix(groups, out, () => 1 + rnd((1 << bits) - 1));
  const s = matrix(groups, out, () => (1 + rnd(100)) / 1024);
  return { q, z, s };
}

test('GPTQ 4-bit (config.json): qweight along inputs, qzeros minus one, f16 scales, g_idx', async () => {
  const [out, inputs, group] = [8, 64, 32];
  const { q, z, s } = gptqLayer(out, inputs, 2, 4, 1);
  const m = 'model.layers.0.mlp.down_proj';
  const dir = checkpoint(
    [
      spec(`${m}.qweight`, 'I32', [8, out], gptqQweight(q, 4)),
      spec(`${m}.qzeros`, 'I32', [2, 1], gptqQzeros(z, 4)),
      spec(`${m}.scales`, 'F16', [2, out], f16Codes(s.flat())),
      spec(`${m}.g_idx`, 'I32', [inputs], Int32Array.from({ length: inputs }, (_, i) => Math.floor(i / group))),
      spec(`${m}.bias`, 'F16', [out], new Uint16Array(out)),
    ],
    { architectures: ['LlamaForCausalLM'], quantization_config: { quant_method: 'gptq', bits: 4, group_size: group, desc_act: false, sym: false } },
  );
  try {
    const model = await openModel(dir);
    assert.deepEqual(model.tensors.map((t) => [t.name, t.dtype, t.shape, t.encoding]), [
      [`${m}.weight`, 'GPTQ', [out, inputs], 'quantized'],
      [`${m}.bias`, 'F16', [out], 'raw'],
    ]);
    const w = model.tensors[0]!;
    assert.deepEqual([w.quantized!.bits, w.quantized!.groupSize, w.quantized!.zeroPointOffset], [4, 32, 1]);
    const expected = Float32Array.from(matrix(out, inputs, (j, i) => (q[j]![i]! - z[Math.floor(i / group)]![j]!) * f16ToF32(f32ToF16(s[Math.floor(i / group)]![j]!))).flat());
    assert.deepEqual(await values(model, w), expected);
    const totals = summarizeModel(model);
    assert.equal(totals.params, out * inputs + out);
    assert.equal(totals.bytes, 8 * out * 4 + 2 * 4 + 2 * out * 2 + inputs * 4 + out * 2);
    await assert.rejects(readTensorBytes(model, w, nodeFileAccess), (e: { code?: string }) => e.code === 'UNSUPPORTED');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GPTQ 3-bit with act-order g_idx and no config: bits from the shapes, values straddling words', async () => {
  const [out, inputs] = [32, 64];
  const { q, z, s } = gptqLayer(out, inputs, 2, 3, 2);
  const rnd = levels(9);
  const gIdx = Int32Array.from({ length: inputs }, () => rnd(2));
  const m = 'transformer.h.0.mlp.c_fc';
  const dir = checkpoint([
    spec(`${m}.qweight`, 'I32', [6, out], gptqQweight(q, 3)),
    spec(`${m}.qzeros`, 'I32', [2, 3], gptqQzeros(z, 3)),
    spec(`${m}.scales`, 'F16', [2, out], f16Codes(s.flat())),
    spec(`${m}.g_idx`, 'I32', [inputs], gIdx),
  ]);
  try {
    const model = await openModel(dir);
    const w = model.tensors[0]!;
    assert.deepEqual([w.name, w.dtype, w.shape, w.quantized!.bits], [`${m}.weight`, 'GPTQ', [out, inputs], 3]);
    const expected = Float32Array.from(matrix(out, inputs, (j, i) => (q[j]![i]! - z[gIdx[i]!]![j]!) * f16ToF32(f32ToF16(s[gIdx[i]!]![j]!))).flat());
    assert.deepEqual(await values(model, w), expected);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GPTQ v2 checkpoints store zero points as they are', async () => {
  const [out, inputs] = [8, 32];
  const { q, z, s } = gptqLayer(out, inputs, 1, 4, 3);
  const m = 'model.layers.0.self_attn.q_proj';
  const dir = checkpoint(
    [
      spec(`${m}.qweight`, 'I32', [4, out], gptqQweight(q, 4)),
      spec(`${m}.qzeros`, 'I32', [1, 1], gptqQzeros(z, 4, false)),
      spec(`${m}.scales`, 'F16', [1, out], f16Codes(s.flat())),
    ],
    { quantization_config: { quant_method: 'gptq', bits: 4, group_size: -1, checkpoint_format: 'gptq_v2' } },
  );
  try {
    const model = await openModel(dir);
    const expected = Float32Array.from(matrix(out, inputs, (j, i) => (q[j]![i]! - z[0]![j]!) * f16ToF32(f32ToF16(s[0]![j]!))).flat());
    assert.deepEqual(await values(model, model.tensors[0]!), expected);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('AWQ GEMM: outputs packed in the order [0, 2, 4, 6, 1, 3, 5, 7], with and without config.json', async () => {
  const [out, inputs, group] = [16, 32, 16];
  const rnd = levels(4);
  const q = matrix(out, inputs, () => rnd(16));
  const z = matrix(2, out, () => rnd(16));
  const s = matrix(2, out, () => (1 + rnd(50)) / 256);
  const m = 'model.layers.3.mlp.up_proj';
  const tensors = [
    spec(`${m}.qweight`, 'I32', [inputs, out / 8], awqPack(matrix(inputs, out, (i, j) => q[j]![i]!))),
    spec(`${m}.qzeros`, 'I32', [2, out / 8], awqPack(z)),
    spec(`${m}.scales`, 'F16', [2, out], f16Codes(s.flat())),
  ];
  const expected = Float32Array.from(matrix(out, inputs, (j, i) => (q[j]![i]! - z[Math.floor(i / group)]![j]!) * f16ToF32(f32ToF16(s[Math.floor(i / group)]![j]!))).flat());
  for (const config of [{ quantization_config: { quant_method: 'awq', bits: 4, group_size: group, zero_point: true, version: 'gemm' } }, undefined]) {
    const dir = checkpoint(tensors, config);
    try {
      const model = await openModel(dir);
      const w = model.tensors[0]!;
      assert.deepEqual([model.tensors.length, w.name, w.dtype, w.shape], [1, `${m}.weight`, 'AWQ', [out, inputs]]);
      assert.deepEqual(await values(model, w), expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('bitsandbytes 4-bit: the quant state JSON, a file quant map, a short last block, double-quantized absmax', async () => {
  const map = Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 8);
  // shape [2, 3]: six codes, blocks of 4 (the last block holds two)
  const codes = [15, 0, 3, 12, 7, 8];
  const absmax = Float32Array.from([2, 0.5]);
  const state = (extra: string) => new TextEncoder().encode(`{"quant_type": "fp4", "blocksize": 4, "dtype": "bfloat16", "shape": [2, 3]${extra}}`);
  const packed = Uint8Array.from([0xf0, 0x3c, 0x78]);
  const m = 'model.layers.0.mlp.gate_proj';
  let dir = checkpoint([
    spec(`${m}.weight`, 'U8', [3, 1], packed),
    spec(`${m}.weight.absmax`, 'F32', [2], absmax),
    spec(`${m}.weight.quant_map`, 'F32', [16], map),
    spec(`${m}.weight.quant_state.bitsandbytes__fp4`, 'U8', [state('').length], state('')),
  ]);
  try {
    const model = await openModel(dir);
    const w = model.tensors[0]!;
    assert.deepEqual([model.tensors.length, w.name, w.dtype, w.shape], [1, `${m}.weight`, 'BNB_FP4', [2, 3]]);
    assert.deepEqual(await values(model, w), Float32Array.from(codes.map((c, k) => map[c]! * absmax[Math.floor(k / 4)]!)));
    assert.equal(summarizeModel(model).params, 6);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // double quantization: absmax = nested_map[code] · nested_absmax[block / 2] + offset, in f32
  const nestedMap = Float32Array.from({ length: 256 }, (_, i) => (i - 128) / 128);
  const nested = Float32Array.from([0.75]);
  const absmaxCodes = Uint8Array.from([200, 64]);
  const withNested = state(', "nested_blocksize": 2, "nested_dtype": "float32", "nested_offset": 0.1');
  dir = checkpoint([
    spec(`${m}.weight`, 'U8', [3, 1], packed),
    spec(`${m}.weight.absmax`, 'U8', [2], absmaxCodes),
    spec(`${m}.weight.quant_map`, 'F32', [16], map),
    spec(`${m}.weight.nested_absmax`, 'F32', [1], nested),
    spec(`${m}.weight.nested_quant_map`, 'F32', [256], nestedMap),
    spec(`${m}.weight.quant_state.bitsandbytes__fp4`, 'U8', [withNested.length], withNested),
  ]);
  try {
    const model = await openModel(dir);
    const a = [...absmaxCodes].map((c) => Math.fround(Math.fround(nestedMap[c]! * nested[0]!) + Math.fround(0.1)));
    assert.deepEqual(await values(model, model.tensors[0]!), Float32Array.from(codes.map((c, k) => map[c]! * a[Math.floor(k / 4)]!)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LLM.int8 (SCB) and compressed-tensors int-quantized with zero points and g_idx', async () => {
  const q = Int8Array.from([127, -127, 5, 0, 64, -1]);
  const scb = Float32Array.from([2, 0.5]);
  let dir = checkpoint([
    spec('lm.fc.weight', 'I8', [2, 3], q),
    spec('lm.fc.SCB', 'F32', [2], scb),
    spec('lm.fc.weight_format', 'U8', [], Uint8Array.from([0])),
  ]);
  try {
    const model = await openModel(dir);
    assert.deepEqual(model.tensors.map((t) => [t.name, t.dtype]), [['lm.fc.weight', 'BNB_INT8']]);
    assert.deepEqual(await values(model, model.tensors[0]!), Float32Array.from([...q].map((v, i) => (v * scb[Math.floor(i / 3)]!) / 127)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // int-quantized: weight int8 [2, 4], two groups per row chosen by g_idx, asymmetric
  const w = Int8Array.from([1, 2, 3, 4, -5, -6, -7, -8]);
  const scale = Float32Array.from([0.5, 0.25, 2, 4]);
  const zp = Int8Array.from([1, -1, 0, 2]);
  const gIdx = Int32Array.from([1, 0, 1, 0]);
  dir = checkpoint([
    spec('m.proj.weight', 'I8', [2, 4], w),
    spec('m.proj.weight_scale', 'F32', [2, 2], scale),
    spec('m.proj.weight_zero_point', 'I8', [2, 2], zp),
    spec('m.proj.weight_g_idx', 'I32', [4], gIdx),
  ]);
  try {
    const model = await openModel(dir);
    assert.deepEqual(model.tensors.map((t) => [t.name, t.dtype, t.quantized?.format]), [['m.proj.weight', 'CT_INT', 'compressed-tensors-int']]);
    const expected = Float32Array.from([...w].map((v, i) => {
      const r = Math.floor(i / 4);
      const g = gIdx[i % 4]!;
      return (v - zp[r * 2 + g]!) * scale[r * 2 + g]!;
    }));
    assert.deepEqual(await values(model, model.tensors[0]!), expected);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('layouts whose parts do not fit stay as stored tensors, with a warning', async () => {
  const cases: Array<[string, SafetensorsTensorSpec[]]> = [
    ['GPTQ scales of the wrong width', [
      spec('a.qweight', 'I32', [4, 8], new Int32Array(32)),
      spec('a.qzeros', 'I32', [1, 1], new Int32Array(1)),
      spec('a.scales', 'F16', [1, 7], new Uint16Array(7)),
      spec('a.g_idx', 'I32', [32], new Int32Array(32)),
    ]],
    ['pack-quantized rows that weight_shape contradicts', [
      spec('b.weight_packed', 'I32', [2, 2], new Int32Array(4)),
      spec('b.weight_scale', 'F32', [2, 1], new Float32Array(2)),
      spec('b.weight_shape', 'I64', [2], BigInt64Array.from([3n, 16n])),
    ]],
    ['a quant state that is not JSON', [
      spec('c.weight', 'U8', [2, 1], new Uint8Array(2)),
      spec('c.weight.absmax', 'F32', [1], new Float32Array(1)),
      spec('c.weight.quant_map', 'F32', [16], new Float32Array(16)),
      spec('c.weight.quant_state.bitsandbytes__nf4', 'U8', [3], Uint8Array.from([0x7b, 0x7b, 0xff])),
    ]],
    ['a quant state whose shape needs more codes than stored', [
      spec('d.weight', 'U8', [2, 1], new Uint8Array(2)),
      spec('d.weight.absmax', 'F32', [1], new Float32Array(1)),
      spec('d.weight.quant_map', 'F32', [16], new Float32Array(16)),
      json('d.weight.quant_state.bitsandbytes__nf4', '{"quant_type": "nf4", "blocksize": 64, "shape": [1000, 1000]}'),
    ]],
  ];
  for (const [what, tensors] of cases) {
    const dir = checkpoint(tensors);
    try {
      const model = await openModel(dir);
      assert.equal(model.tensors.length, tensors.length, what);
      assert.ok(model.tensors.every((t) => t.encoding === 'raw'), what);
      assert.deepEqual(model.diagnostics.map((d) => d.code), ['QUANT_LAYOUT'], what);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
