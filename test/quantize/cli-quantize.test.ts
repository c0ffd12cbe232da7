import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { encodeGgufHeader, layoutGgufTensorData } from '../../src/core/gguf/write';
import { GGUF_QUANT_TYPES } from '../../src/core/quant/ggml-quantize';
import { openModel } from '../../src/core/readers';
import { readNpy } from '../fixtures/npy';

const root = resolve(__dirname, '../..');
const cli = join(root, 'dist/cli.js');
const golden = resolve(root, '../shared/models/ggml-golden');

/** A llama.cpp imatrix GGUF whose `w.in_sum2` / `w.counts` carry the given weights (count 1). */
function imatrixGguf(path: string, weights: Float32Array): void {
  const tensors = [
    { name: 'w.in_sum2', dtype: 'F32' as const, shape: [1, weights.length] },
    { name: 'w.counts', dtype: 'F32' as const, shape: [1, 1] },
  ];
  const { offsets } = layoutGgufTensorData(tensors, 32);
  const header = encodeGgufHeader({
    version: 3,
    alignment: 32,
    metadata: { 'general.type': { type: 'string', value: 'imatrix' } },
    tensors: tensors.map((t, i) => ({ ...t, offset: offsets[i] })),
  });
  const data = new Uint8Array(offsets[1] + 4);
  data.set(new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength), 0);
  new DataView(data.buffer).setFloat32(offsets[1], 1, true);
  writeFileSync(path, Buffer.concat([header, data, new Uint8Array(28)]));
}

test('quantlens quantize --pure --imatrix writes libggml\'s importance-weighted blocks', { skip: !existsSync(golden) && 'no ../shared/models' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-cli-q-'));
  try {
    const c = join(golden, 'real_mlp_512');
    const im = join(dir, 'w.imatrix.gguf');
    imatrixGguf(im, readNpy(join(c, 'imatrix.npy')).data as Float32Array);
    for (const type of GGUF_QUANT_TYPES) {
      const out = join(dir, `${type}.gguf`);
      const r = spawnSync(process.execPath, [cli, 'quantize', join(c, 'src.safetensors'), '-o', out, '--type', type === 'MXFP4' ? 'MXFP4_MOE' : type, '--pure', '--imatrix', im], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${type}: ${r.stderr}`);
      const w = (await openModel(out)).tensors.find((t) => t.name === 'w')!;
      const got = readFileSync(out).subarray(w.byteOffset, w.byteOffset + w.byteLength);
      assert.ok(got.equals(readFileSync(join(c, `${type}.imat.bin`))), `${type}: blocks differ from libggml's .imat.bin`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quantize exit codes: usage 1, invalid input 2, never overwriting', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-cli-q-'));
  try {
    const bad = join(dir, 'bad.safetensors');
    writeFileSync(bad, Buffer.from([1, 2, 3]));
    const invalid = spawnSync(process.execPath, [cli, 'quantize', bad, '--type', 'Q8_0'], { encoding: 'utf8' });
    assert.equal(invalid.status, 2, invalid.stderr);
    assert.match(invalid.stderr, /^error\[[A-Z_]+\]/);
    assert.equal(spawnSync(process.execPath, [cli, 'quantize', bad], { encoding: 'utf8' }).status, 1);
    assert.equal(spawnSync(process.execPath, [cli, 'quantize', bad, '--type', 'Q9_9'], { encoding: 'utf8' }).status, 1);
    const existing = join(dir, 'exists.gguf');
    writeFileSync(existing, 'keep');
    assert.equal(spawnSync(process.execPath, [cli, 'quantize', bad, '--type', 'Q8_0', '-o', existing], { encoding: 'utf8' }).status, 1);
    assert.equal(readFileSync(existing, 'utf8'), 'keep');
    // A dangling symlink is taken too: refused before any work, the link left as it was.
    const link = join(dir, 'link.gguf');
    symlinkSync(join(dir, 'nowhere'), link);
    const dangling = spawnSync(process.execPath, [cli, 'quantize', bad, '--type', 'Q8_0', '-o', link], { encoding: 'utf8' });
    assert.equal(dangling.status, 1, dangling.stderr);
    assert.match(dangling.stderr, /exists; QuantLens never overwrites/);
    assert.equal(readlinkSync(link), join(dir, 'nowhere'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quantize of an already quantized GGUF: exit 1 naming --allow-requantize, which lets it through', { skip: !existsSync(resolve(root, '../shared/models/stories260K')) && 'no ../shared/models' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-cli-rq-'));
  try {
    const q8 = resolve(root, '../shared/models/stories260K/stories260K-Q8_0.gguf');
    const out = join(dir, 'q4.gguf');
    const refused = spawnSync(process.execPath, [cli, 'quantize', q8, '-o', out, '--type', 'Q4_0'], { encoding: 'utf8' });
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /^error\[REQUANTIZE\]: .*already quantized \(Q8_0\).*--allow-requantize/);
    assert.equal(existsSync(out), false);
    const allowed = spawnSync(process.execPath, [cli, 'quantize', q8, '-o', out, '--type', 'Q4_0', '--allow-requantize'], { encoding: 'utf8' });
    assert.equal(allowed.status, 0, allowed.stderr);
    assert.ok(existsSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
