import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import { parseSplitSize, splitGguf } from '../../src/core/gguf/split';
import { planSplits, splitPath } from '../../src/core/gguf/output';
import { quantizeToGguf } from '../../src/core/quantize/to-gguf';
import { openModel } from '../../src/core/readers';

const stories = resolve(__dirname, '../../../shared/models/stories260K');

test('split by tensor count reproduces llama-gguf-split byte for byte', { skip: !existsSync(stories) && 'no ../shared/models' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-split-'));
  try {
    const outs = await splitGguf(join(stories, 'stories260K-f32.gguf'), join(dir, 'stories260K-f32.gguf'), { maxTensors: 20 });
    assert.equal(outs.length, 3);
    for (const [i, o] of outs.entries()) {
      const ref = readFileSync(join(stories, `gguf-split/stories260K-f32-0000${i + 1}-of-00003.gguf`));
      assert.ok(readFileSync(o).equals(ref), `split ${i + 1} differs from llama-gguf-split's`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('split plans: tensor and byte limits, names, sizes', () => {
  const t = (n: number) => ({ dtype: 'F32' as const, shape: [n] });
  assert.deepEqual(planSplits([t(8), t(8), t(8)], 32, { maxTensors: 2 }), [[0, 1], [2]]);
  // 8 floats = 32 bytes each: two fit in 64, the third starts a new file; an oversized tensor still gets a file.
  assert.deepEqual(planSplits([t(8), t(8), t(8), t(100)], 32, { maxBytes: 64 }), [[0, 1], [2], [3]]);
  assert.equal(splitPath('/x/model.gguf', 0, 12), '/x/model-00001-of-00012.gguf');
  assert.equal(parseSplitSize('500M'), 500e6);
  assert.equal(parseSplitSize('2G'), 2e9);
  assert.throws(() => parseSplitSize('2T'), /split-max-size/);
});

test('quantize writes split outputs that open as one model', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-split-'));
  try {
    const src = join(dir, 'tiny');
    writeSafetensorsModel(src, llamaTensors(PRESETS.tiny.shape), 'F32', 2);
    const r = await quantizeToGguf(src, join(dir, 'q.gguf'), { type: 'Q8_0', split: { maxTensors: 8 } });
    assert.ok(r.outputs.length > 1);
    const m = await openModel(r.outputs[0]);
    assert.equal(m.tensors.length, llamaTensors(PRESETS.tiny.shape).length);
    assert.equal(m.files.length, r.outputs.length);
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('quantlens-tmp')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
