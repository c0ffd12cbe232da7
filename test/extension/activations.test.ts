import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InputSpec } from '../../src/core/onnx/feeds';
import { DEFAULT_IMAGE_NORMALISATION, onnxCalibrationSet, quantizedPathFor, symbolicDimsOf, type OnnxModelFacts } from '../../src/extension/activations/onnx';

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
  await assert.rejects(onnxCalibrationSet(f, request, signal), (e: Error & { code?: string }) => e.code === 'USAGE' && /x:3/.test(e.message));
  const set = await onnxCalibrationSet(f, { ...request, dims: { height: 4, 'x:3': 5 } }, signal);
  assert.equal(set.samples.length, 3);
  assert.equal(set.synthetic, true);
  assert.deepEqual(set.samples[0]!.find((s) => s.name === 'x')!.dims, [1, 3, 4, 5]);
  assert.deepEqual(set.samples[0]!.find((s) => s.name === 'state')!.dims, [2, 1, 4]);
  await assert.rejects(onnxCalibrationSet(f, { ...request, dims: { height: 4, 'x:3': 5 }, samples: 0 }, signal), /synthetic samples/);
  await assert.rejects(onnxCalibrationSet(f, { ...request, source: 'images', dims: { height: 4, 'x:3': 5 } }, signal), /choose the calibration files/);
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
