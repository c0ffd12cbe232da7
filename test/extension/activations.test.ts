import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InputSpec } from '../../src/core/onnx/feeds';
import { KernelPool } from '../../src/kernel/pool';
import { DEFAULT_IMAGE_NORMALISATION, onnxCalibrationSet, quantizedPathFor, symbolicDimsOf, type OnnxModelFacts } from '../../src/extension/activations/onnx';

// workers start only when a job needs one (the file-backed calibration set)
const pool = new KernelPool({ size: 1 });
after(() => pool.dispose());

const SIGNATURE: InputSpec[] = [
  { name: 'x', type: 'float32', dims: ['batch', 3, 'height', null] },
  { name: 'state', type: 'float32', dims: [2, 'batch', 'height'] },
  { name: 'sr', type: 'int64', dims: [] },
];

function facts(signature: InputSpec[]): OnnxModelFacts {
  return { signature, inputs: signature.map((s) => ({ name: s.name, type: s.type, dims: s.dims })), symbolicDims: symbolicDimsOf(signature), weightOfNode: new Map() };
}

test('symbolic dims the panel asks for: every symbol but the batch, unnamed unknowns as input:axis', () => {
  assert.deepEqual(symbolicDimsOf(SIGNATURE), ['height', 'x:3']);
  assert.deepEqual(symbolicDimsOf([{ name: 'input', type: 'float32', dims: [1, 3, 224, 224] }]), []);
});

test('synthetic calibration set: dims from the panel, refused while one is missing', async () => {
  const f = facts(SIGNATURE);
  const signal = new AbortController().signal;
  const request = { kind: 'onnx' as const, source: 'synthetic' as const, path: '', image: DEFAULT_IMAGE_NORMALISATION, samples: 3, dims: { height: 4 } as Record<string, number> };
  await assert.rejects(onnxCalibrationSet(f, request, pool, signal), (e: Error & { code?: string }) => e.code === 'USAGE' && /x:3/.test(e.message));
  const set = await onnxCalibrationSet(f, { ...request, dims: { height: 4, 'x:3': 5 } }, pool, signal);
  assert.equal(set.samples.length, 3);
  assert.equal(set.synthetic, true);
  assert.deepEqual(set.samples[0]!.find((s) => s.name === 'x')!.dims, [1, 3, 4, 5]);
  assert.deepEqual(set.samples[0]!.find((s) => s.name === 'state')!.dims, [2, 1, 4]);
  await assert.rejects(onnxCalibrationSet(f, { ...request, dims: { height: 4, 'x:3': 5 }, samples: 0 }, pool, signal), /synthetic samples/);
  await assert.rejects(onnxCalibrationSet(f, { ...request, source: 'images', dims: { height: 4, 'x:3': 5 } }, pool, signal), /choose the calibration files/);
});

test('the quantized model goes next to the input under a name not taken', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quantlens-activations-'));
  try {
    const input = join(dir, 'model.onnx');
    assert.equal(quantizedPathFor(input), join(dir, 'model-int8-qdq.onnx'));
    writeFileSync(join(dir, 'model-int8-qdq.onnx'), '');
    assert.equal(quantizedPathFor(input), join(dir, 'model-int8-qdq-2.onnx'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A little-endian float32 .npy (format 1.0) holding `values` in `shape`. */
function npyBytes(shape: number[], values: Float32Array): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + values.byteLength);
  out.set([0x93, ...Buffer.from('NUMPY'), 1, 0, header.length & 0xff, header.length >> 8]);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(new Uint8Array(values.buffer), 10 + header.length);
  return out;
}

test('calibration files are read and decoded in a kernel worker, with progress in files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quantlens-activations-npy-'));
  try {
    const values = Float32Array.from({ length: 60 }, (_, i) => i / 10);
    writeFileSync(join(dir, 'a.npy'), npyBytes([1, 3, 4, 5], values));
    writeFileSync(join(dir, 'b.npy'), npyBytes([1, 3, 4, 5], values.map((v) => -v)));
    const request = { kind: 'onnx' as const, source: 'images' as const, path: dir, image: DEFAULT_IMAGE_NORMALISATION, samples: 0, dims: { height: 4, 'x:3': 5 } };
    const progress: Array<[number, number]> = [];
    const set = await onnxCalibrationSet(facts(SIGNATURE), request, pool, new AbortController().signal, (d, t) => progress.push([d, t]));
    assert.equal(pool.workers, 1, 'decoded in a worker');
    assert.deepEqual(set.sources, ['npy']);
    assert.equal(set.samples.length, 2);
    const x = set.samples[1]!.find((s) => s.name === 'x')!;
    assert.deepEqual(x.dims, [1, 3, 4, 5]);
    assert.deepEqual(Array.from(x.data as Float32Array), Array.from(values, (v) => -v));
    assert.deepEqual(progress[progress.length - 1], [2, 2]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
