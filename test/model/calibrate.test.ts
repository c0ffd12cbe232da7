import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { calibrateCommand } from '../../src/cli/commands/calibrate';
import { readImportanceMatrix } from '../../src/core/imatrix';
import { calibrate, encodeImatrixGguf, SiteAccumulator, siteKey } from '../../src/core/model/calibrate';
import { f32ToBf16 } from '../../src/core/quant/fp16';
import { LlamaModel } from '../../src/core/model/llama';

const stories = resolve(__dirname, '../../../shared/models/stories260K');
const skip = !existsSync(stories) && 'no ../shared/models';

test('site accumulators count bf16 codes, channel maxima and squares, and merge by addition', () => {
  assert.equal(f32ToBf16(1), 0x3f80);
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80, 'a tie rounds to even');
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
  const a = new SiteAccumulator('blk.0.residual', 'residual', 0, [], 2);
  a.add(Float32Array.of(1, -2, 3, 0.5), 2);
  const b = new SiteAccumulator('blk.0.residual', 'residual', 0, [], 2);
  b.add(Float32Array.of(-10, 0), 1);
  a.merge(b);
  const s = a.summary();
  assert.equal(s.tokens, 3);
  assert.deepEqual(s.channelAbsMax, [10, 2]);
  assert.deepEqual(s.channelRms.map((v) => Math.round(v * v * 3 * 1e6) / 1e6), [1 + 9 + 100, 4 + 0.25 + 0]);
  assert.equal(s.stats.count, 6);
  assert.equal(s.stats.absMax, 10);
  assert.equal(s.stats.min, -10);
  assert.equal(s.stats.histogram.counts.reduce((x, y) => x + y, 0), 6);
  assert.equal(siteKey({ kind: 'linear-input', layer: 2, weights: ['blk.2.attn_q.weight', 'blk.2.attn_k.weight'] }), 'blk.2.attn_in');
  assert.equal(siteKey({ kind: 'linear-input', layer: 2, weights: ['blk.2.ffn_down.weight'] }), 'blk.2.ffn_down.input');
});

test('imatrix GGUF: written sorted by name, read back by the imatrix reader', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-imatrix-'));
  try {
    const imatrix = new Map([
      ['blk.1.ffn_up.weight', { sum2: Float32Array.of(4, 8), count: 2 }],
      ['blk.0.attn_q.weight', { sum2: Float32Array.of(1, 0), count: 1 }],
    ]);
    const path = join(dir, 'x.imatrix.gguf');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, encodeImatrixGguf(imatrix, { datasets: ['t.txt'], chunkCount: 3, chunkSize: 64 }));
    const back = await readImportanceMatrix(path);
    assert.deepEqual([...back.entries.keys()], ['blk.0.attn_q.weight', 'blk.1.ffn_up.weight']);
    assert.deepEqual(Array.from(back.entries.get('blk.1.ffn_up.weight')!.weights), [2, 4]);
    assert.equal(back.chunkCount, 3);
    assert.deepEqual(back.datasets, ['t.txt']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stories260K: calibrate --ctx 64 --chunks 20 equals llama-imatrix to 1e-3 per entry (llama.cpp mode)', { skip }, async () => {
  const model = await LlamaModel.load(resolve(stories, 'stories260K-f32.gguf'));
  const text = readFileSync(resolve(stories, 'imatrix/calibration.txt'));
  const r = await calibrate(model, text, { ctx: 64, chunks: 20, mode: 'llama.cpp' });
  assert.ok(Math.abs(r.ppl / 4.3255 - 1) < 1e-3, `PPL ${r.ppl} vs llama-imatrix 4.3255`);
  const ref = await readImportanceMatrix(resolve(stories, 'imatrix/stories260K.imatrix.gguf'));
  assert.deepEqual([...r.imatrix.keys()].sort(), [...ref.entries.keys()].sort());
  let worst = 0;
  for (const [name, e] of ref.entries) {
    const mine = r.imatrix.get(name)!;
    assert.equal(mine.count, 1280);
    for (let i = 0; i < e.weights.length; i++) worst = Math.max(worst, Math.abs(mine.sum2[i] / mine.count / e.weights[i] - 1));
  }
  assert.ok(worst < 1e-3, `worst relative difference ${worst}`);
  // Sites: 7 per block (residual, attention and MLP outputs, four linear inputs) plus the output head's input.
  assert.equal(r.sites.size, 5 * 7 + 1);
  const ffnDown = r.sites.get('blk.4.ffn_down.input')!.summary();
  assert.equal(ffnDown.channels, 172);
  assert.equal(ffnDown.tokens, 1280);
  assert.ok(ffnDown.stats.kurtosis! > 0);
});

test('quantlens calibrate -o writes an imatrix GGUF and --json the sites', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-cal-'));
  try {
    const out = join(dir, 'im.gguf');
    const stdout = new PassThrough();
    let json = '';
    stdout.on('data', (d: Buffer) => (json += d.toString()));
    await calibrateCommand({
      args: [resolve(stories, 'hf'), '--text', resolve(stories, 'imatrix/calibration.txt'), '--ctx', '64', '--chunks', '2', '-o', out, '--json'],
      stdout,
      stderr: new PassThrough(),
      signal: new AbortController().signal,
    });
    const parsed = JSON.parse(json) as { chunks: number; sites: Array<{ key: string; stats: { histogram: { counts: number[] } } }> };
    assert.equal(parsed.chunks, 2);
    assert.equal(parsed.sites[0].stats.histogram.counts.length, 256);
    const back = await readImportanceMatrix(out);
    assert.equal(back.entries.size, 35);
    assert.equal(back.chunkCount, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
