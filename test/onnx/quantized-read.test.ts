/**
 * Quantized ONNX read back as logical tensors: QDQ (DequantizeLinear of a constant) and MatMulNBits
 * weights are one tensor each, named and shaped as the float weight, so the comparison matches every
 * weight. The dequantized values are checked bit for bit against ONNX Runtime's own (the
 * DequantizeLinear outputs made graph outputs; MatMulNBits times the identity).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { FileByteSource } from '../../src/core/bytesource';
import { compareModels, ErrorAccumulator } from '../../src/core/compare';
import type { OnnxFeed } from '../../src/core/onnx/feeds';
import { inputSignature, parseDimFlags } from '../../src/core/onnx/feeds';
import { quantizeOnnx, type OnnxQuantizeOptions } from '../../src/core/onnx/quantize';
import { modelBytes } from '../../src/core/onnx/runner';
import { syntheticSamples } from '../../src/core/onnx/samples';
import type { ModelInfo, TensorInfo } from '../../src/core/model';
import { elementCount } from '../../src/core/model';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import {
  emptyGraph, encodeOnnxModel, NO_SOURCE, onnxAttribute, onnxNode, onnxTensor, onnxValueInfo, OnnxDataType, readOnnxModel, writeOnnxModel, type OnnxModel,
} from '../../src/core/readers/onnx';
import { summarizeModel } from '../../src/core/summary';
import { tensorRowsF32 } from '../../src/core/tensor-rows';
import { poolOnnxRunner, quantizeOnnxInPool } from '../../src/kernel/onnx';
import { KernelPool } from '../../src/kernel/pool';

const repoRoot = resolve(__dirname, '../..');
const PPOCR = resolve(repoRoot, '../shared/models/onnx/ch_ppocr_mobile_v2.0_cls_infer.onnx');
const PPOCR_DIMS = parseDimFlags(['p2o.DynamicDimension.1=48', 'p2o.DynamicDimension.2=192']);

let dir: string;
let pool: KernelPool;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'quantlens-onnx-q-'));
  pool = new KernelPool({ size: 2 });
});
after(() => {
  pool.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function randn(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = 0.1 * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

/** x [batch, 96] → MatMul w1 [96, 80] → Relu → MatMul w2 [80, 16] (K = 80: a short last block of 32) → Add b2 [16]. */
async function writeMlp(path: string): Promise<void> {
  const raw = (a: Float32Array) => new Uint8Array(a.buffer);
  const graph = emptyGraph();
  graph.name = 'mlp';
  graph.inputs.push(onnxValueInfo('x', OnnxDataType.FLOAT, ['batch', 96]));
  graph.outputs.push(onnxValueInfo('y', OnnxDataType.FLOAT, ['batch', 16]));
  graph.initializers.push(
    onnxTensor('w1', OnnxDataType.FLOAT, [96, 80], raw(randn(96 * 80, 7))),
    onnxTensor('w2', OnnxDataType.FLOAT, [80, 16], raw(randn(80 * 16, 11))),
    onnxTensor('b2', OnnxDataType.FLOAT, [16], raw(randn(16, 13))),
  );
  graph.nodes.push(
    onnxNode('MatMul', ['x', 'w1'], ['h'], { name: 'fc1' }),
    onnxNode('Relu', ['h'], ['a'], { name: 'relu' }),
    onnxNode('MatMul', ['a', 'w2'], ['z'], { name: 'fc2' }),
    onnxNode('Add', ['z', 'b2'], ['y'], { name: 'bias' }),
  );
  const model: OnnxModel = { irVersion: 8n, producerName: 'quantlens-test', opsetImports: [{ domain: '', version: 13n }], metadataProps: [], graph, extraFields: [] };
  await writeOnnxModel(model, NO_SOURCE, path);
}

async function readGraph(path: string): Promise<{ model: OnnxModel; source: FileByteSource }> {
  const source = await FileByteSource.open(path);
  return { model: await readOnnxModel(source), source };
}

async function valuesOf(model: ModelInfo, t: TensorInfo): Promise<Float32Array> {
  const out = new Float32Array(elementCount(t.shape));
  let at = 0;
  for await (const chunk of tensorRowsF32(model, t, nodeFileAccess, { maxElements: 1000 })) {
    out.set(chunk.values, at);
    at += chunk.values.length;
  }
  return out;
}

/**
 * ONNX Runtime's dequantized weights of the quantized model at `path`: DequantizeLinear outputs as
 * graph outputs (one run of `sample`), MatMulNBits as identity × B in a one-node model.
 */
async function ortDequantized(path: string, sample: OnnxFeed[]): Promise<Map<string, Float32Array>> {
  const { model, source } = await readGraph(path);
  const runner = poolOnnxRunner(pool);
  const out = new Map<string, Float32Array>();
  try {
    const dq = model.graph.nodes.filter((n) => n.opType === 'DequantizeLinear' && model.graph.initializers.some((t) => t.name === n.inputs[0]));
    if (dq.length > 0) {
      const names = dq.map((n) => n.outputs[0]!);
      model.graph.outputs.push(...names.map((n) => onnxValueInfo(n)));
      const [feeds] = await runner.run(modelBytes(await encodeOnnxModel(model, source)), [sample], names);
      for (const f of feeds!) out.set(f.name, f.data as Float32Array);
    }
    for (const node of model.graph.nodes.filter((n) => n.opType === 'MatMulNBits')) {
      const k = Number(node.attributes.find((a) => a.name === 'K')!.i);
      const n = Number(node.attributes.find((a) => a.name === 'N')!.i);
      const graph = emptyGraph();
      graph.name = 'nbits';
      graph.inputs.push(onnxValueInfo('A', OnnxDataType.FLOAT, [k, k]));
      graph.outputs.push(onnxValueInfo('W', OnnxDataType.FLOAT, [k, n]));
      graph.initializers.push(...model.graph.initializers.filter((t) => node.inputs.slice(1).includes(t.name)));
      graph.nodes.push({ ...node, inputs: ['A', ...node.inputs.slice(1)], outputs: ['W'] });
      const one: OnnxModel = { ...model, graph };
      const identity = new Float32Array(k * k);
      for (let i = 0; i < k; i++) identity[i * k + i] = 1;
      const [[w]] = await runner.run(modelBytes(await encodeOnnxModel(one, source)), [[{ name: 'A', type: 'float32', dims: [k, k], data: identity }]]);
      out.set(node.inputs[1]!.replace(/_Q4$/, ''), w!.data as Float32Array);
    }
  } finally {
    await source.close();
  }
  return out;
}

/** Quantizes, then checks logical tensors, ORT's values, the comparison's figures and the totals. */
async function checkQuantized(t: { diagnostic(message: string): void }, input: string, label: string, options: OnnxQuantizeOptions, sample: OnnxFeed[]): Promise<void> {
  const output = join(dir, `${label}.onnx`);
  const result = await quantizeOnnx(input, output, options);
  const a = await openModel(input);
  const b = await openModel(output);
  const layout = options.type === 'int8-qdq' ? 'ONNX_QDQ' : 'MATMUL_NBITS';

  // one logical tensor per weight, named and shaped as the float weight
  const logical = b.tensors.filter((x) => x.encoding === 'quantized');
  assert.deepEqual(logical.map((x) => x.name).sort(), result.quantized.map((q) => q.name).sort());
  for (const x of logical) {
    assert.equal(x.dtype, layout);
    assert.deepEqual(x.shape, a.tensors.find((y) => y.name === x.name)!.shape, x.name);
  }
  assert.equal(b.tensors.filter((x) => /_quantized$|_scale$|_zero_point$|_Q4$|_scales$|_zero_points$/.test(x.name)).length, 0, 'no part is listed on its own');

  // our dequantization is ONNX Runtime's, bit for bit
  const ort = await ortDequantized(output, sample);
  assert.equal(ort.size, logical.length);
  for (const x of logical) {
    const ours = await valuesOf(b, x);
    const theirs = ort.get(x.name)!;
    assert.equal(ours.length, theirs.length, x.name);
    let differ = 0;
    for (let i = 0; i < ours.length; i++) if (!Object.is(ours[i], theirs[i])) differ++;
    assert.equal(differ, 0, `${x.name}: ${differ} of ${ours.length} values differ from ONNX Runtime's`);
  }

  // the comparison matches every weight, and its SQNR is the one of the dequantized values
  const { summary, tensors } = await compareModels(a, b, nodeFileAccess);
  assert.deepEqual(summary.onlyInA, []);
  assert.deepEqual(summary.shapeMismatch, []);
  let worst = Infinity;
  for (const x of logical) {
    const row = tensors.find((r) => r.name === x.name)!;
    assert.equal(row.dtypeB, layout);
    const acc = new ErrorAccumulator();
    acc.add(await valuesOf(a, a.tensors.find((y) => y.name === x.name)!), ort.get(x.name)!);
    const direct = acc.result().sqnrDb!;
    assert.ok(Math.abs(row.sqnrDb! - direct) < 1e-9 * Math.abs(direct), `${x.name}: comparison ${row.sqnrDb} dB, direct ${direct} dB`);
    worst = Math.min(worst, direct);
  }

  // totals: a quantized weight counts its original elements and every byte of its parts
  const totalsA = summarizeModel(a);
  const totalsB = summarizeModel(b);
  const d = totalsB.byDtype[layout]!;
  const elements = logical.reduce((s, x) => s + elementCount(x.shape), 0);
  assert.equal(d.params, elements);
  const { model: graph, source } = await readGraph(output);
  await source.close();
  const partBytes = logical.reduce((s, x) => s + Object.values(x.quantized!.parts).reduce((p, part) => p + elementCount(part.shape) * (part.dtype === 'F32' ? 4 : 1), 0), 0);
  assert.equal(d.bytes, partBytes);
  assert.ok(graph.graph.initializers.length > 0);
  t.diagnostic(
    `${label}: ${logical.length} weights matched (${summary.matched} tensors, only in the output: ${summary.onlyInB.length}), worst weight SQNR ${worst.toFixed(2)} dB; ` +
      `${totalsA.params} → ${totalsB.params} params, ${totalsA.bytes} → ${totalsB.bytes} bytes (${layout}: ${d.params} elements in ${d.bytes} bytes)`,
  );
}

test('MLP: int8 QDQ (sym, asym) and int4 MatMulNBits (sym, asym) read back as one tensor per weight, equal to ONNX Runtime’s', async (t) => {
  const model = join(dir, 'mlp.onnx');
  await writeMlp(model);
  const { model: graph, source } = await readGraph(model);
  await source.close();
  const [sample] = syntheticSamples(inputSignature(graph.graph), 1, { dims: new Map([['batch', 2]]) }).samples;
  await checkQuantized(t, model, 'mlp-int8-sym', { type: 'int8-qdq' }, sample!);
  await checkQuantized(t, model, 'mlp-int8-asym', { type: 'int8-qdq', asymmetric: true }, sample!);
  await checkQuantized(t, model, 'mlp-int4-sym', { type: 'int4-matmulnbits', blockSize: 32 }, sample!);
  await checkQuantized(t, model, 'mlp-int4-asym-b16', { type: 'int4-matmulnbits', blockSize: 16, asymmetric: true }, sample!);
});

test('ch_ppocr (weights in Constant nodes): int8 QDQ and int4 MatMulNBits match every weight', async (t) => {
  if (!existsSync(PPOCR)) return t.skip('../shared/models is absent');
  const source = await FileByteSource.open(PPOCR);
  const signature = inputSignature((await readOnnxModel(source)).graph);
  await source.close();
  const [sample] = syntheticSamples(signature, 1, { dims: PPOCR_DIMS }).samples;
  await checkQuantized(t, PPOCR, 'ppocr-int8', { type: 'int8-qdq' }, sample!);
  await checkQuantized(t, PPOCR, 'ppocr-int4', { type: 'int4-matmulnbits' }, sample!);
});

test('quantlens diff model.onnx out.onnx: every weight matched', async (t) => {
  const cli = join(repoRoot, 'dist/cli.js');
  if (!existsSync(cli)) return t.skip('dist/cli.js is not built');
  const model = join(dir, 'mlp-diff.onnx');
  await writeMlp(model);
  for (const type of ['int8-qdq', 'int4-matmulnbits'] as const) {
    const out = join(dir, `mlp-diff-${type}.onnx`);
    await quantizeOnnx(model, out, { type });
    const json = JSON.parse(execFileSync(process.execPath, [cli, 'diff', model, out, '--json'], { encoding: 'utf8' }));
    assert.equal(json.summary.onlyInA, 0, type);
    assert.equal(json.summary.onlyInB, 0, type);
    assert.equal(json.summary.matched, 3, type);
    const quantized = json.tensors.filter((r: { dtypeB: string }) => r.dtypeB !== 'F32');
    assert.deepEqual(quantized.map((r: { name: string }) => r.name).sort(), ['w1', 'w2']);
    for (const r of quantized) assert.ok(r.sqnrDb > (type === 'int8-qdq' ? 35 : 15), `${type} ${r.name} ${r.sqnrDb} dB`);
  }
});

test('hand-built QDQ forms: Constant-node parts, uint8 per tensor, int32 bias without zero point, per-axis on axis 0, and a mismatch left as stored', async () => {
  const i8 = (v: number[]) => new Uint8Array(Int8Array.from(v).buffer);
  const f32 = (v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
  const i32 = (v: number[]) => new Uint8Array(Int32Array.from(v).buffer);
  const constant = (name: string, type: number, dims: number[], raw: Uint8Array) => onnxNode('Constant', [], [name], { attributes: [onnxAttribute.tensor('value', onnxTensor(name, type, dims, raw))] });
  const graph = emptyGraph();
  graph.name = 'qdq';
  graph.inputs.push(onnxValueInfo('x', OnnxDataType.FLOAT, [1, 2]));
  graph.outputs.push(onnxValueInfo('y', OnnxDataType.FLOAT, [1, 3]));
  graph.nodes.push(
    // W [2, 3] per channel on axis 1, every part a Constant node
    constant('W_q', OnnxDataType.INT8, [2, 3], i8([-128, 0, 127, 5, -5, 1])),
    constant('W_s', OnnxDataType.FLOAT, [3], f32([0.5, 0.25, 2])),
    constant('W_z', OnnxDataType.INT8, [3], i8([0, 1, -1])),
    onnxNode('DequantizeLinear', ['W_q', 'W_s', 'W_z'], ['W']),
    onnxNode('MatMul', ['x', 'W'], ['h']),
  );
  graph.initializers.push(
    onnxTensor('b_q', OnnxDataType.INT32, [3], i32([1000, -7, 3])),
    onnxTensor('b_s', OnnxDataType.FLOAT, [], f32([0.001])),
    onnxTensor('G_q', OnnxDataType.UINT8, [2, 2], Uint8Array.of(0, 128, 255, 130)),
    onnxTensor('G_s', OnnxDataType.FLOAT, [1], f32([0.1])),
    onnxTensor('G_z', OnnxDataType.UINT8, [1], Uint8Array.of(128)),
    onnxTensor('V_q', OnnxDataType.INT8, [2, 2], i8([1, 2, 3, 4])),
    onnxTensor('V_s', OnnxDataType.FLOAT, [2], f32([1, 10])),
    onnxTensor('bad_q', OnnxDataType.INT8, [2, 2], i8([1, 2, 3, 4])),
    onnxTensor('bad_s', OnnxDataType.FLOAT, [3], f32([1, 2, 3])),
  );
  graph.nodes.push(
    onnxNode('DequantizeLinear', ['b_q', 'b_s'], ['b']),
    onnxNode('Add', ['h', 'b'], ['y']),
    onnxNode('DequantizeLinear', ['G_q', 'G_s', 'G_z'], ['G']),
    onnxNode('DequantizeLinear', ['V_q', 'V_s'], ['V'], { attributes: [onnxAttribute.int('axis', 0)] }),
    onnxNode('DequantizeLinear', ['bad_q', 'bad_s'], ['bad']),
  );
  const path = join(dir, 'qdq-forms.onnx');
  await writeOnnxModel({ irVersion: 8n, producerName: 'quantlens-test', opsetImports: [{ domain: '', version: 13n }], metadataProps: [], graph, extraFields: [] }, NO_SOURCE, path);
  const model = await openModel(path);
  assert.deepEqual(model.tensors.map((t) => [t.name, t.dtype]), [['b', 'ONNX_QDQ'], ['G', 'ONNX_QDQ'], ['V', 'ONNX_QDQ'], ['bad_q', 'I8'], ['bad_s', 'F32'], ['W', 'ONNX_QDQ']]);
  const at = (name: string) => valuesOf(model, model.tensors.find((t) => t.name === name)!);
  assert.deepEqual(Array.from(await at('W')), [-64, -0.25, 256, 2.5, -1.5, 4]);
  assert.deepEqual(Array.from(await at('b')), [1000, -7, 3].map((v) => Math.fround(v * Math.fround(0.001))));
  assert.deepEqual(Array.from(await at('G')), [-128, 0, 127, 2].map((v) => Math.fround(v * Math.fround(0.1))));
  assert.deepEqual(Array.from(await at('V')), [1, 2, 30, 40]);
  const w = model.tensors.find((t) => t.name === 'W')!;
  assert.equal(w.quantized!.axis, 1);
  assert.equal(w.byteLength, 6 + 12 + 3, 'parts counted at their values\' size');
  assert.equal(summarizeModel(model).byDtype.ONNX_QDQ!.params, 6 + 3 + 4 + 4);
  const warning = model.diagnostics.find((d) => d.code === 'QUANT_LAYOUT');
  assert.match(warning!.message, /neither one scale nor one per index of axis 1/);
});

test('quantizeOnnx in a kernel worker: the same file as on the host, progress in steps; cancel leaves neither output nor temp file', async (t) => {
  const model = join(dir, 'mlp-pool.onnx');
  await writeMlp(model);
  const onHost = join(dir, 'mlp-pool-host.onnx');
  const inPool = join(dir, 'mlp-pool-worker.onnx');
  await quantizeOnnx(model, onHost, { type: 'int4-matmulnbits', asymmetric: true });
  const steps: Array<[number, number]> = [];
  const r = await quantizeOnnxInPool(pool, model, inPool, { type: 'int4-matmulnbits', asymmetric: true, onProgress: (d, n) => steps.push([d, n]) });
  assert.equal(r.output, inPool);
  assert.deepEqual(r.quantized.map((q) => q.name), ['w1', 'w2']);
  assert.deepEqual(readFileSync(inPool), readFileSync(onHost));
  assert.deepEqual(steps[steps.length - 1], [3, 3]);

  if (!existsSync(PPOCR)) return t.skip('cancel on ch_ppocr: ../shared/models is absent');
  const folder = mkdtempSync(join(dir, 'cancel-'));
  const output = join(folder, 'ppocr-int8.onnx');
  const before = createHash('sha256').update(readFileSync(PPOCR)).digest('hex');
  const controller = new AbortController();
  let seen = 0;
  await assert.rejects(
    quantizeOnnxInPool(pool, PPOCR, output, { type: 'int8-qdq', signal: controller.signal, onProgress: (d) => { seen = d; if (d >= 3) controller.abort(); } }),
    (e: Error & { code?: string }) => e.code === 'CANCELLED',
  );
  assert.deepEqual(readdirSync(folder), [], `left behind after a cancel at step ${seen}`);
  assert.equal(createHash('sha256').update(readFileSync(PPOCR)).digest('hex'), before, 'the input is never modified');
  t.diagnostic(`cancelled at step ${seen} of 55: folder empty`);
});
