// ONNX models end to end through ONNX Runtime Web in the kernel pool: calibration, activation
// statistics, output sensitivity, QDQ and MatMulNBits outputs (checked by onnx.checker when Debian's
// python3-onnx is there), evaluation. Data is made here: a generated MLP, text lines rendered by
// ImageMagick in both orientations, speech from espeak-ng at 16 kHz; each part skips with a message
// when its tool or ../shared/models is missing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { FileByteSource } from '../../src/core/bytesource';
import { finishActivationStats, momentParams, momentsActivation, newMomentAccumulator, newScanAccumulator, scanActivation } from '../../src/core/onnx/activation-stats';
import { calibrateOnnx, type OnnxCalibration } from '../../src/core/onnx/calibrate';
import { compareOutputs, evaluateOnnx, runModelFile } from '../../src/core/onnx/evaluate';
import { inputSignature, parseDimFlags } from '../../src/core/onnx/feeds';
import { quantizeOnnx } from '../../src/core/onnx/quantize';
import { loadCalibrationSet, syntheticSamples, type CalibrationSet } from '../../src/core/onnx/samples';
import { onnxOutputSensitivity } from '../../src/core/onnx/sensitivity';
import { planMixedPrecision, planTensorsFromSensitivity } from '../../src/core/plan/plan';
import {
  emptyGraph, NO_SOURCE, onnxAttribute, onnxNode, onnxTensor, onnxValueInfo, OnnxDataType, readOnnxModel, writeOnnxModel, type OnnxModel,
} from '../../src/core/readers/onnx';
import { laneStats } from '../../src/core/stats/stats';
import { poolOnnxRunner } from '../../src/kernel/onnx';
import { KernelPool } from '../../src/kernel/pool';

const repoRoot = resolve(__dirname, '../..');
const MODELS = resolve(repoRoot, '../shared/models');
const PPOCR = join(MODELS, 'onnx/ch_ppocr_mobile_v2.0_cls_infer.onnx');
const SILERO = join(MODELS, 'silero-vad/silero_vad_16k_op15.onnx');
const PPOCR_DIMS = parseDimFlags(['p2o.DynamicDimension.1=48', 'p2o.DynamicDimension.2=192']);

let dir: string;
let pool: KernelPool;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'quantlens-onnx-'));
  pool = new KernelPool({ size: 2 });
});
after(() => {
  pool.dispose();
  rmSync(dir, { recursive: true, force: true });
});

function has(tool: string, args: string[]): boolean {
  try {
    execFileSync(tool, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function onnxPython(): string | undefined {
  for (const python of ['python3', '/usr/bin/python3']) if (has(python, ['-c', 'import onnx'])) return python;
  return undefined;
}

/** onnx.checker.check_model(full_check) on every path, when python3-onnx is installed (returns false when skipped). */
function checkWithOnnx(paths: string[]): boolean {
  const python = onnxPython();
  if (!python) return false;
  const script = 'import onnx, sys\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)';
  execFileSync(python, ['-c', script, ...paths], { stdio: 'pipe' });
  return true;
}

async function signatureOf(path: string) {
  const src = await FileByteSource.open(path);
  try {
    return inputSignature((await readOnnxModel(src)).graph);
  } finally {
    await src.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Generated MLP: x [batch, 96] → MatMul W1 [96, 80] → Relu → MatMul W2 [80, 16] (W2: K = 80, a short last block of 32)

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
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

async function writeMlp(path: string): Promise<{ w1: Float32Array; w2: Float32Array }> {
  const w1 = randn(96 * 80, 7).map((v) => v * 0.1);
  const w2 = randn(80 * 16, 11).map((v) => v * 0.1);
  const graph = emptyGraph();
  graph.name = 'mlp';
  graph.inputs.push(onnxValueInfo('x', OnnxDataType.FLOAT, ['batch', 96]));
  graph.outputs.push(onnxValueInfo('y', OnnxDataType.FLOAT, ['batch', 16]));
  graph.initializers.push(onnxTensor('w1', OnnxDataType.FLOAT, [96, 80], bytesOf(w1)), onnxTensor('w2', OnnxDataType.FLOAT, [80, 16], bytesOf(w2)));
  graph.nodes.push(
    onnxNode('MatMul', ['x', 'w1'], ['h'], { name: 'fc1' }),
    onnxNode('Relu', ['h'], ['a'], { name: 'relu' }),
    onnxNode('MatMul', ['a', 'w2'], ['y'], { name: 'fc2' }),
  );
  const model: OnnxModel = { irVersion: 8n, producerName: 'quantlens-test', opsetImports: [{ domain: '', version: 13n }], metadataProps: [], graph, extraFields: [] };
  await writeOnnxModel(model, NO_SOURCE, path);
  return { w1, w2 };
}

/** x @ W for x [rows, k], W [k, n]. */
function matmul(x: Float32Array, w: Float32Array, rows: number, k: number, n: number): Float32Array {
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) y[r * n + j] += x[r * k + i]! * w[i * n + j]!;
  return y;
}

/** Blockwise 4-bit round-to-nearest of W [k, n] along k, as our writer does (symmetric: absmax / 7). */
function int4Reference(w: Float32Array, k: number, n: number, block: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let j = 0; j < n; j++) {
    for (let b = 0; b < k; b += block) {
      let absmax = 0;
      for (let i = b; i < Math.min(k, b + block); i++) absmax = Math.max(absmax, Math.abs(w[i * n + j]!));
      const scale = Math.fround(absmax / 7) || 1;
      for (let i = b; i < Math.min(k, b + block); i++) {
        const q = Math.max(-7, Math.min(7, Math.round(Math.fround(w[i * n + j]! / scale))));
        out[i * n + j] = q * scale;
      }
    }
  }
  return out;
}

test('activation statistics merged over samples equal laneStats of the concatenation', () => {
  const parts = [randn(1000, 1), randn(600, 2).map((v) => v * 3 + 1), randn(1000, 3)];
  parts[1]![5] = NaN;
  const all = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const scan = newScanAccumulator();
  for (const p of parts) scanActivation(scan, p, [p.length]);
  const params = momentParams(scan, 64, 0)!;
  const m = newMomentAccumulator(params);
  let start = 0;
  for (const p of parts) {
    momentsActivation(m, params, p, start);
    start += p.length;
  }
  const got = finishActivationStats(scan, params, m, 64);
  const want = laneStats(all, 64);
  for (const key of ['count', 'finite', 'min', 'max', 'mean', 'std', 'kurtosis'] as const) assert.equal(got[key], want[key], key);
  assert.deepEqual(got.histogram, want.histogram);
  assert.ok(Math.abs(got.outlierShare! - want.outlierShare!) < 1e-3);
  assert.equal(scan.variableShape, true);
});

test('channel absmax per Conv input channel (axis 1 of NCHW)', () => {
  const scan = newScanAccumulator();
  const v = new Float32Array(2 * 3 * 4); // [N=2, C=3, 4]
  v[0 * 12 + 1 * 4 + 2] = -5; // n 0, c 1
  v[1 * 12 + 2 * 4 + 0] = 7; // n 1, c 2
  v[1 * 12 + 0 * 4 + 3] = 0.5;
  scanActivation(scan, v, [2, 3, 4], 1);
  assert.deepEqual(Array.from(scan.channelAbsMax!), [0.5, 5, 7]);
});

test('MatMulNBits on a generated MLP: ONNX Runtime computes x · dequant(W), onnx.checker accepts it', async (t) => {
  const model = join(dir, 'mlp.onnx');
  const { w1, w2 } = await writeMlp(model);
  const set = syntheticSamples(await signatureOf(model), 6, { dims: new Map([['batch', 4]]) });
  assert.equal(set.synthetic, true);
  const runner = poolOnnxRunner(pool);
  const figures: string[] = [];
  for (const asymmetric of [false, true]) {
    const out = join(dir, `mlp-int4-${asymmetric ? 'asym' : 'sym'}.onnx`);
    const result = await quantizeOnnx(model, out, { type: 'int4-matmulnbits', blockSize: 32, asymmetric });
    assert.deepEqual(result.quantized.map((q) => q.name), ['w1', 'w2']);
    const q = await runModelFile(out, set.samples, runner);
    if (!asymmetric) {
      // our own dequantization of the blocks, multiplied out in f32: the packing layout is right
      const d1 = int4Reference(w1, 96, 80, 32);
      const d2 = int4Reference(w2, 80, 16, 32);
      for (const [s, sample] of set.samples.entries()) {
        const x = sample[0]!.data as Float32Array;
        const y = matmul(matmul(x, d1, 4, 96, 80).map((v) => Math.max(0, v)), d2, 4, 80, 16);
        const got = q[s]![0]!.data as Float32Array;
        const [c] = compareOutputs([[{ name: 'y', type: 'float32', dims: [4, 16], data: y }]], [[{ name: 'y', type: 'float32', dims: [4, 16], data: got }]]);
        assert.ok(c!.sqnrDb! > 90, `sample ${s}: ORT vs reference dequantization SQNR ${c!.sqnrDb} dB`);
      }
    }
    const e = await evaluateOnnx(model, out, set, runner);
    assert.ok(e.outputs[0]!.sqnrDb! > 15, `int4 output SQNR ${e.outputs[0]!.sqnrDb}`);
    figures.push(`${asymmetric ? 'asym' : 'sym'} ${e.outputs[0]!.sqnrDb!.toFixed(1)} dB`);
  }
  t.diagnostic(`MLP int4 MatMulNBits (blocks of 32) output SQNR vs float: ${figures.join(', ')}`);
  if (!checkWithOnnx([join(dir, 'mlp-int4-sym.onnx'), join(dir, 'mlp-int4-asym.onnx')])) t.diagnostic('onnx.checker oracle skipped: python3-onnx is not installed');
});

test('opset 9 → 13 upgrade keeps Clip, Slice and Softmax (rank 3, axis 1) meaning in ONNX Runtime', async () => {
  const graph = emptyGraph();
  graph.name = 'opset9';
  graph.inputs.push(onnxValueInfo('x', OnnxDataType.FLOAT, [2, 3, 4]));
  graph.outputs.push(onnxValueInfo('y', OnnxDataType.FLOAT, [2, 3, 2]));
  graph.initializers.push(onnxTensor('w', OnnxDataType.FLOAT, [4, 4], bytesOf(randn(16, 5))));
  graph.nodes.push(
    onnxNode('MatMul', ['x', 'w'], ['m'], { name: 'mm' }),
    onnxNode('Clip', ['m'], ['c'], { name: 'clip', attributes: [onnxAttribute.float('min', -0.5), onnxAttribute.float('max', 1.5)] }),
    onnxNode('Slice', ['c'], ['s'], { name: 'slice', attributes: [onnxAttribute.ints('starts', [1]), onnxAttribute.ints('ends', [3]), onnxAttribute.ints('axes', [2])] }),
    onnxNode('Softmax', ['s'], ['y'], { name: 'softmax', attributes: [onnxAttribute.int('axis', 1)] }),
  );
  const model: OnnxModel = { irVersion: 4n, opsetImports: [{ domain: '', version: 9n }], metadataProps: [], graph, extraFields: [] };
  const path = join(dir, 'opset9.onnx');
  await writeOnnxModel(model, NO_SOURCE, path);
  const out = join(dir, 'opset9-qdq.onnx');
  const r = await quantizeOnnx(path, out, { type: 'int8-qdq' });
  assert.equal(r.opsetFrom, 9);
  assert.equal(r.opsetTo, 13);
  const set = syntheticSamples(await signatureOf(path), 3);
  const e = await evaluateOnnx(path, out, set, poolOnnxRunner(pool));
  assert.ok(e.outputs[0]!.sqnrDb! > 35, `SQNR ${e.outputs[0]!.sqnrDb}`);
  checkWithOnnx([out]);
});

// ---------------------------------------------------------------------------------------------
// Real models

/** Text lines rendered by ImageMagick (DejaVu Sans, tightly cropped like OCR detections), upright and rotated 180°. */
function renderTextLines(folder: string): void {
  mkdirSync(folder, { recursive: true });
  const lines = ['Hello world 2024', 'QUANTLENS text line', 'direction classifier', 'The quick brown fox', 'ONNX Runtime Web', 'int8 per channel'];
  for (const [i, text] of lines.entries()) {
    const up = join(folder, `line${i}_000.png`);
    execFileSync('convert', ['-background', 'white', '-fill', 'black', '-font', 'DejaVu-Sans', '-pointsize', '32', `label:${text}`, '-bordercolor', 'white', '-border', '6', up]);
    execFileSync('convert', [up, '-rotate', '180', join(folder, `line${i}_180.png`)]);
  }
}

function checkEveryNodeHasHistogram(cal: OnnxCalibration, model: OnnxModel): void {
  const skipped = new Set(cal.skipped.map((s) => s.name));
  const byName = new Map(cal.activations.map((a) => [a.name, a]));
  let checked = 0;
  for (const node of model.graph.nodes) {
    if (node.opType === 'Constant') continue;
    for (const name of node.outputs) {
      if (!name || skipped.has(name)) continue;
      const a = byName.get(name);
      assert.ok(a, `no statistics for ${name} (${node.opType})`);
      assert.equal(a.stats.histogram.counts.reduce((x, y) => x + y, 0), a.stats.finite, `histogram of ${name}`);
      checked++;
    }
  }
  assert.ok(checked > 0);
}

test('ch_ppocr direction classifier: histograms of every node, outlier view, int8 QDQ > 30 dB, W8A8 figures, output sensitivity feeds the planner', async (t) => {
  if (!existsSync(PPOCR)) return t.skip('../shared/models is absent');
  if (!has('convert', ['-version'])) return t.skip('ImageMagick (convert) is not installed: apt-get install imagemagick fonts-dejavu-core');
  const images = join(dir, 'lines');
  renderTextLines(images);
  const signature = await signatureOf(PPOCR);
  const set = await loadCalibrationSet(signature, [images], { dims: PPOCR_DIMS, image: { resize: 'pad' } });
  assert.equal(set.samples.length, 12);
  const runner = poolOnnxRunner(pool);

  // the float model reads the rendered lines right: upright → class 0, rotated → class 1
  const base = await runModelFile(PPOCR, set.samples, runner);
  base.forEach((out, i) => {
    const p = out[0]!.data as Float32Array;
    assert.equal(p[1]! > p[0]! ? 1 : 0, i % 2, `sample ${i}: ${Array.from(p)}`);
  });

  const src = await FileByteSource.open(PPOCR);
  const model = await readOnnxModel(src);
  await src.close();
  const cal = await calibrateOnnx(PPOCR, set, runner);
  checkEveryNodeHasHistogram(cal, model);
  assert.equal(cal.channelOutliers.length, 54); // 53 Conv + 1 MatMul inputs
  assert.ok(cal.layers.every((l, i) => i === 0 || l.index > cal.layers[i - 1]!.index), 'layer strip in execution order');

  const wo = join(dir, 'ppocr-int8.onnx');
  const r = await quantizeOnnx(PPOCR, wo, { type: 'int8-qdq' });
  assert.equal(r.quantized.length, 54); // every weight is a Constant node here
  const e = await evaluateOnnx(PPOCR, wo, set, runner);
  const out = e.outputs[0]!;
  assert.ok(out.sqnrDb! > 30, `weight-only int8 output SQNR ${out.sqnrDb} dB`);
  assert.equal(out.top1Agreement, 1);
  const figures = [`weight-only int8 per-channel: ${out.sqnrDb!.toFixed(1)} dB, top-1 ${out.top1Agreement! * 100}%`];
  const written = [wo];
  for (const rangeMethod of ['minmax', 'percentile', 'mse'] as const) {
    const path = join(dir, `ppocr-w8a8-${rangeMethod}.onnx`);
    await quantizeOnnx(PPOCR, path, { type: 'int8-qdq', activations: true, calibration: cal, rangeMethod });
    const w = (await evaluateOnnx(PPOCR, path, set, runner)).outputs[0]!;
    figures.push(`W8A8 ${rangeMethod}: ${w.sqnrDb!.toFixed(1)} dB, top-1 ${(w.top1Agreement! * 100).toFixed(0)}%`);
    written.push(path);
  }
  t.diagnostic(`ppocr on 12 rendered lines: ${figures.join('; ')}`);
  if (!checkWithOnnx(written)) t.diagnostic('onnx.checker oracle skipped: python3-onnx is not installed');

  const few: CalibrationSet = { ...set, samples: set.samples.slice(0, 4) };
  const sens = await onnxOutputSensitivity(PPOCR, few, runner, { types: ['int8-ch-sym', 'int4-ch-sym'] });
  assert.equal(sens.layers.length, 54);
  assert.equal(sens.ranking.length, 54);
  assert.equal(sens.sweep.mode, 'outputs');
  const worst = sens.layers.find((l) => l.weight === sens.ranking[0])!;
  t.diagnostic(`most sensitive layer: ${worst.weight} (${worst.node}), int8 ${worst.formats['int8-ch-sym']!.outputSqnrDb!.toFixed(1)} dB, int4 ${worst.formats['int4-ch-sym']!.outputSqnrDb!.toFixed(1)} dB`);
  const plan = planMixedPrecision(planTensorsFromSensitivity(sens.sweep), 'safetensors', 'outputs', { budget: { kind: 'bitsPerWeight', value: 6 } });
  assert.ok(plan.bitsPerWeight <= 6 + 1e-9);
  assert.ok(Object.keys(plan.assignment).length > 0);
});

/** espeak-ng speech resampled to 16 kHz and written as 16-bit PCM. */
function speechWav(path: string): void {
  const raw = join(dir, 'speech-22k.wav');
  execFileSync('espeak-ng', ['-v', 'en', '-s', '150', '-w', raw, 'Quantization makes models smaller. The detector listens for speech and for silence between the words.']);
  const bytes = readFileSync(raw);
  const rate = bytes.readUInt32LE(24);
  const dataAt = bytes.indexOf('data', 12) + 8;
  const n = (bytes.length - dataAt) >> 1;
  const m = Math.floor((n * 16000) / rate);
  const out = Buffer.alloc(44 + 2 * m);
  out.write('RIFF', 0);
  out.writeUInt32LE(36 + 2 * m, 4);
  out.write('WAVEfmt ', 8);
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(16000, 24);
  out.writeUInt32LE(32000, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36);
  out.writeUInt32LE(2 * m, 40);
  for (let i = 0; i < m; i++) {
    const f = (i * rate) / 16000;
    const i0 = Math.floor(f);
    const a = bytes.readInt16LE(dataAt + 2 * Math.min(i0, n - 1));
    const b = bytes.readInt16LE(dataAt + 2 * Math.min(i0 + 1, n - 1));
    out.writeInt16LE(Math.round(a + (b - a) * (f - i0)), 44 + 2 * i);
  }
  writeFileSync(path, out);
}

test('Silero VAD (initializers, 16 kHz speech): histograms of every node, int8 QDQ > 30 dB, W8A8 figures', async (t) => {
  if (!existsSync(SILERO)) return t.skip('../shared/models is absent');
  if (!has('espeak-ng', ['--version'])) return t.skip('espeak-ng is not installed: apt-get install espeak-ng');
  const wav = join(dir, 'speech.wav');
  speechWav(wav);
  // Silero VAD v5 takes 512 new samples with 64 of context; state (zeros) and sr come from the signature
  const set = await loadCalibrationSet(await signatureOf(SILERO), [wav], { audioWindow: 576, audioHop: 512, maxSamples: 96 });
  assert.deepEqual(set.filledInputs.sort(), ['sr', 'state']);
  assert.equal((set.samples[0]!.find((f) => f.name === 'sr')!.data as BigInt64Array)[0], 16000n);
  const runner = poolOnnxRunner(pool);
  const src = await FileByteSource.open(SILERO);
  const model = await readOnnxModel(src);
  await src.close();
  const cal = await calibrateOnnx(SILERO, set, runner);
  checkEveryNodeHasHistogram(cal, model);
  assert.deepEqual(cal.subgraphNodes.length, 3);

  const figures: string[] = [];
  const written: string[] = [];
  for (const asymmetric of [true, false]) {
    const path = join(dir, `silero-int8-${asymmetric ? 'asym' : 'sym'}.onnx`);
    const r = await quantizeOnnx(SILERO, path, { type: 'int8-qdq', asymmetric });
    assert.equal(r.quantized.length, 6);
    const out = (await evaluateOnnx(SILERO, path, set, runner)).outputs.find((o) => o.name === 'output')!;
    if (asymmetric) assert.ok(out.sqnrDb! > 30, `weight-only int8 (asymmetric per channel) output SQNR ${out.sqnrDb} dB`);
    figures.push(`weight-only int8 ${asymmetric ? 'asym' : 'sym'}: ${out.sqnrDb!.toFixed(1)} dB`);
    written.push(path);
  }
  const w8a8 = join(dir, 'silero-w8a8.onnx');
  await quantizeOnnx(SILERO, w8a8, { type: 'int8-qdq', asymmetric: true, activations: true, calibration: cal, rangeMethod: 'mse' });
  written.push(w8a8);
  const w = (await evaluateOnnx(SILERO, w8a8, set, runner)).outputs.find((o) => o.name === 'output')!;
  figures.push(`W8A8 (mse ranges): ${w.sqnrDb!.toFixed(1)} dB`);
  t.diagnostic(`silero_vad_16k_op15 on ${set.samples.length} windows of espeak-ng speech: ${figures.join('; ')}`);
  if (!checkWithOnnx(written)) t.diagnostic('onnx.checker oracle skipped: python3-onnx is not installed');
});

test('quantlens CLI routes .onnx arguments to the ONNX forms (eval --json)', async (t) => {
  const cli = join(repoRoot, 'dist/cli.js');
  if (!existsSync(cli)) return t.skip('dist/cli.js is not built');
  const model = join(dir, 'mlp-cli.onnx');
  await writeMlp(model);
  const out = join(dir, 'mlp-cli-int4.onnx');
  execFileSync(process.execPath, [cli, 'quantize', model, '-o', out, '--type', 'int4-matmulnbits', '--workers', '1']);
  const json = JSON.parse(execFileSync(process.execPath, [cli, 'eval', out, '--base', model, '--synthetic', '3', '--dim', 'batch=2', '--json', '--workers', '1'], { encoding: 'utf8' }));
  assert.equal(json.synthetic, true);
  assert.equal(json.outputs[0].name, 'y');
  assert.ok(json.outputs[0].sqnrDb > 15);
});


