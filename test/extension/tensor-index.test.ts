import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelInfo, TensorInfo } from '../../src/core/model';
import { StatsCache, stampFiles } from '../../src/extension/inspector/stats-cache';
import { layerPattern, MAX_PAGE_ROWS, METADATA_ARRAY_FOLD, metadataEntries, modelState, TensorIndex } from '../../src/extension/inspector/tensor-index';
import type { StatsSummary } from '../../src/shared/protocol';

function model(names: string[], format: ModelInfo['format'] = 'safetensors'): ModelInfo {
  const tensors: TensorInfo[] = names.map((name, i) => ({
    name,
    dtype: 'F32',
    shape: [4, i + 1],
    file: '/m/model.bin',
    byteOffset: 0,
    byteLength: 16 * (i + 1),
    encoding: 'raw',
  }));
  return { format, files: ['/m/model.bin'], metadata: {}, tensors, diagnostics: [] };
}

const HF = [
  'model.embed_tokens.weight',
  'model.layers.0.self_attn.q_proj.weight',
  'model.layers.0.mlp.down_proj.weight',
  'model.layers.1.self_attn.q_proj.weight',
  'model.layers.1.mlp.down_proj.weight',
  'model.layers.10.mlp.down_proj.weight',
  'model.norm.weight',
  'lm_head.weight',
];

test('HF names group by layer (numeric order), model-level tensors first', () => {
  const index = new TensorIndex(model(HF));
  assert.deepEqual(
    index.groups.map((g) => g.key),
    ['model', 'layer:0', 'layer:1', 'layer:10'],
  );
  const model0 = index.groups[0];
  assert.equal(model0.tensors, 3);
  assert.deepEqual(model0.roles.map((r) => r.role).sort(), ['embed', 'norm', 'output']);
  const l1 = index.groups[2];
  assert.equal(l1.label, 'Layer 1');
  assert.deepEqual(l1.roles.map((r) => r.role), ['attn_q', 'ffn_down']);
  assert.equal(l1.bitsPerWeight, 32);
});

test('GGUF names group the same way', () => {
  const index = new TensorIndex(model(['token_embd.weight', 'blk.0.attn_q.weight', 'blk.0.ffn_down.weight', 'blk.1.ffn_down.weight', 'output_norm.weight', 'output.weight'], 'gguf'));
  assert.deepEqual(index.groups.map((g) => g.key), ['model', 'layer:0', 'layer:1']);
  assert.equal(index.rows[2].role, 'ffn_down');
  assert.equal(index.rows[2].layer, 0);
});

test('names outside the map (ONNX graphs, CNNs) group by their first name part', () => {
  const index = new TensorIndex(model(['encoder.0.conv.weight', 'encoder.1.conv.weight', 'decoder.rnn.weight_ih', 'onnx::Conv_123'], 'onnx'));
  const keys = index.groups.map((g) => g.key);
  assert.ok(keys.includes('prefix:decoder'), keys.join());
  assert.equal(keys.at(-1), 'other', keys.join());
  assert.equal(index.groups.reduce((s, g) => s + g.tensors, 0), 4);
});

test('pages: offset/limit window over the filtered order, limit capped', () => {
  const names = Array.from({ length: 2500 }, (_, i) => `blk.${i % 10}.t${i}.weight`);
  const index = new TensorIndex(model(names));
  const p = index.page({ offset: 100, limit: 50 });
  assert.equal(p.total, 2500);
  assert.deepEqual(p.rows.map((r) => r.index), Array.from({ length: 50 }, (_, i) => 100 + i));
  assert.equal(index.page({ offset: 0, limit: 1e9 }).rows.length, MAX_PAGE_ROWS);
  assert.equal(index.page({ offset: 2490, limit: 50 }).rows.length, 10);
  assert.equal(index.page({ offset: -5, limit: Number.NaN }).rows.length, 0);
});

test('filter by substring (case-insensitive), regex and group; invalid regex is a USAGE error', () => {
  const index = new TensorIndex(model(HF));
  assert.equal(index.page({ offset: 0, limit: 100, filter: 'DOWN_PROJ' }).total, 3);
  assert.equal(index.page({ offset: 0, limit: 100, filter: 'layers\\.1\\d?\\.', regex: true }).total, 3);
  assert.equal(index.page({ offset: 0, limit: 100, group: 'layer:1' }).total, 2);
  assert.equal(index.page({ offset: 0, limit: 100, group: 'layer:1', filter: 'q_proj' }).total, 1);
  assert.throws(() => index.page({ offset: 0, limit: 10, filter: '(', regex: true }), { code: 'USAGE' });
});

test('sort by any column, ties by position, nulls last; statistics columns sort once filled', () => {
  const index = new TensorIndex(model(HF));
  const byBytes = index.page({ offset: 0, limit: 100, sort: { column: 'bytes', descending: true } }).rows.map((r) => r.index);
  assert.deepEqual(byBytes, [7, 6, 5, 4, 3, 2, 1, 0]);
  const byLayer = index.page({ offset: 0, limit: 100, sort: { column: 'layer', descending: false } }).rows.map((r) => r.layer);
  assert.deepEqual(byLayer, [0, 0, 1, 1, 10, null, null, null]);
  const byName = index.page({ offset: 0, limit: 3, sort: { column: 'name', descending: false } }).rows.map((r) => r.name);
  assert.deepEqual(byName, ['lm_head.weight', 'model.embed_tokens.weight', 'model.layers.0.mlp.down_proj.weight']);

  const stats = (absMax: number): StatsSummary => ({ count: 1, finite: 1, nonFinite: 0, zeros: 0, min: 0, max: absMax, mean: 0, std: 0, absMax, kurtosis: 0, outlierShare: 0 });
  const sort = { column: 'absMax' as const, descending: true };
  assert.equal(index.page({ offset: 0, limit: 1, sort }).rows[0].index, 0); // nothing known yet: position order
  index.setStats(3, stats(9));
  index.setStats(5, stats(2));
  assert.deepEqual(index.page({ offset: 0, limit: 3, sort }).rows.map((r) => r.index), [3, 5, 0]);
});

test('metadata: long arrays fold to their head with the length, 64-bit values print exactly', () => {
  const entries = metadataEntries({
    'general.name': { type: 'string', value: 'tiny' },
    'general.size': { type: 'u64', value: 2n ** 60n },
    'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: Array.from({ length: 1000 }, (_, i) => `t${i}`) },
    short: { type: 'array', itemType: 'i32', value: [1, 2, 3] },
  });
  assert.equal(entries[0].text, '"tiny"');
  assert.equal(entries[1].text, String(2n ** 60n));
  assert.equal(entries[2].length, 1000);
  assert.ok(entries[2].text.endsWith(`… ${1000 - 8} more]`), entries[2].text);
  assert.ok(1000 > METADATA_ARRAY_FOLD);
  assert.equal(entries[3].text, '[1, 2, 3]');
});

test('modelState carries totals, dtype breakdown, config keys and groups', () => {
  const index = new TensorIndex(model(HF));
  const state = modelState(index, {
    fileName: 'model.bin',
    files: [{ path: '/m/model.bin', name: 'model.bin', sizeBytes: 1 }],
    config: { architectures: ['LlamaForCausalLM'], hidden_size: 64, unrelated: 1 },
    settings: { histogramBins: 256 },
    openMs: 1,
    openStartedAt: 0,
  });
  assert.equal(state.totals.tensors, 8);
  assert.equal(state.totals.byDtype.F32.tensors, 8);
  assert.deepEqual(
    state.metadata.map((m) => [m.key, m.source]),
    [
      ['architectures', 'config.json'],
      ['hidden_size', 'config.json'],
    ],
  );
  assert.deepEqual(index.groupPage({ offset: 1, limit: 2 }).groups.map((g) => g.key), ['layer:0', 'layer:1']);
});

test('the first page in model order builds only its rows; buildAll builds the rest in slices', async () => {
  const names = Array.from({ length: 12_000 }, (_, i) => `blk.${Math.floor(i / 4)}.t${i % 4}.weight`);
  const cached = new Map<string, StatsSummary>([['blk.0.t1.weight', { count: 1, finite: 1, nonFinite: 0, zeros: 0, min: 0, max: 1, mean: 0, std: 0, absMax: 1, kurtosis: 0, outlierShare: 0 }]]);
  const index = new TensorIndex(model(names), cached);
  const first = index.page({ offset: 0, limit: 200 });
  assert.equal(first.total, 12_000);
  assert.equal(first.rows.length, 200);
  assert.equal(first.rows[1].stats?.absMax, 1, 'cached statistics on the built rows');
  assert.equal((index as unknown as { builtRows: unknown[] }).builtRows.length, 200);
  await index.buildAll();
  assert.equal(index.groups.length, 3000);
  assert.equal(index.page({ offset: 0, limit: 10, group: 'layer:2999' }).total, 4);
  assert.equal(index.row(11_999)?.layer, 2999);
  assert.equal(index.row(12_000), undefined);
});

test('stats cache: round trip, invalidated by a changed file or other bins', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quantlens-cache-'));
  try {
    const file = join(dir, 'model.safetensors');
    writeFileSync(file, 'abc');
    const cache = new StatsCache(join(dir, 'cache'));
    const s: StatsSummary = { count: 3, finite: 3, nonFinite: 0, zeros: 0, min: -1, max: 1, mean: 0, std: 1, absMax: 1, kurtosis: null, outlierShare: 0 };
    const stamps = await stampFiles([file]);
    assert.equal((await cache.load(stamps, 256)).size, 0);
    await cache.save(stamps, 256, new Map([['w', s]]));
    assert.deepEqual((await cache.load(stamps, 256)).get('w'), s);
    assert.equal((await cache.load(stamps, 128)).size, 0);
    writeFileSync(file, 'abcd');
    assert.equal((await cache.load(await stampFiles([file]), 256)).size, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('strip across layers: the same name but for the layer number, by layer; none outside layers', () => {
  const index = new TensorIndex(
    model([
      'model.layers.10.mlp.down_proj.weight',
      'model.layers.2.mlp.down_proj.weight',
      'model.layers.2.mlp.down_proj.bias',
      'model.layers.2.self_attn.q_proj.weight',
      'model.layers.0.mlp.down_proj.weight',
      'model.norm.weight',
      'blk.2.ffn_down.weight',
    ]),
  );
  assert.equal(layerPattern(index.row(1)!), 'model.layers.{N}.mlp.down_proj.weight');
  assert.deepEqual(index.sameRoleAcrossLayers(1), { pattern: 'model.layers.{N}.mlp.down_proj.weight', indices: [4, 1, 0] });
  assert.deepEqual(index.sameRoleAcrossLayers(2).indices, [2], 'biases are their own strip');
  assert.deepEqual(index.sameRoleAcrossLayers(6).indices, [6], 'GGUF names are not mixed with HF names');
  assert.deepEqual(index.sameRoleAcrossLayers(5), { pattern: '', indices: [] });
  assert.deepEqual(index.sameRoleAcrossLayers(99), { pattern: '', indices: [] });
});
