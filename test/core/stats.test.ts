// The statistics twin (src/core/stats): definitions on hand-checked values, numpy's histogram rule
// on values one ulp either side of every edge, the code-table derivation, the absmax profile.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { colAbsMax, rowAbsMax } from '../../src/core/stats/absmax';
import { bigintToF32, codeValue } from '../../src/core/stats/decode';
import { binOf, histogramEdges, laneStats, statsFromCodeTable } from '../../src/core/stats/stats';

test('laneStats: hand-checked values', () => {
  const s = laneStats(Float64Array.from([1, 2, 3, 4, NaN, -Infinity, 0]), 3);
  assert.equal(s.count, 7);
  assert.equal(s.finite, 5);
  assert.equal(s.nonFinite, 2);
  assert.equal(s.zeros, 1);
  assert.equal(s.min, 0);
  assert.equal(s.max, 4);
  assert.equal(s.mean, 2);
  assert.equal(s.std, Math.sqrt(2));
  assert.equal(s.absMax, 4);
  // m4 = (16 + 1 + 0 + 1 + 16) / 5 = 6.8, m2 = 2: 6.8 / 4 − 3
  assert.equal(s.kurtosis, 6.8 / 4 - 3);
  assert.equal(s.outlierShare, 0);
  assert.deepEqual(s.histogram, { min: 0, max: 4, counts: [2, 1, 2] });
});

test('laneStats: constant, empty, all non-finite, outliers', () => {
  const c = laneStats(Float32Array.from([-3, -3, -3]), 4);
  assert.equal(c.std, 0);
  assert.equal(c.kurtosis, null);
  assert.deepEqual(c.histogram, { min: -3.5, max: -2.5, counts: [0, 0, 3, 0] });
  for (const v of [new Float32Array(0), Float32Array.from([NaN, Infinity])]) {
    const e = laneStats(v, 2);
    assert.equal(e.finite, 0);
    assert.equal(e.nonFinite, v.length);
    assert.equal(e.mean, null);
    assert.equal(e.kurtosis, null);
    assert.equal(e.outlierShare, null);
    assert.deepEqual(e.histogram, { min: null, max: null, counts: [0, 0] });
  }
  const spike = new Float64Array(1000);
  spike[0] = 1000;
  const o = laneStats(spike, 2);
  assert.equal(o.outlierShare, 1 / 1000);
});

const numpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

test('histogram rule equals np.histogram on values one ulp around every edge', (t) => {
  if (!numpy) return t.skip('python3 with numpy is missing');
  const lo = 0.1;
  const hi = 0.7;
  const bins = 10;
  const edges = histogramEdges(lo, hi, bins);
  const values: number[] = [];
  const ulp = (x: number, dir: number): number => {
    const b = new Float64Array([x]);
    const u = new BigInt64Array(b.buffer);
    u[0] = u[0]! + BigInt(dir * (x >= 0 ? 1 : -1));
    return b[0]!;
  };
  for (const e of edges) for (const d of [-1, 0, 1]) values.push(d === 0 ? e : ulp(e, d));
  const inRange = values.filter((v) => v >= lo && v <= hi);
  const counts = new Array<number>(bins).fill(0);
  for (const v of inRange) counts[binOf(v, lo, hi - lo, bins, edges)]++;
  const script = `import json,sys,numpy as np; v=np.array(json.loads(sys.argv[1])); print(json.dumps(np.histogram(v,bins=${bins},range=(${lo},${hi}))[0].tolist())); print(json.dumps(np.linspace(${lo},${hi},${bins + 1}).tolist()))`;
  const r = spawnSync('python3', ['-c', script, JSON.stringify(inRange)], { encoding: 'utf8' });
  const [npCounts, npEdges] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as number[]);
  assert.deepEqual(Array.from(edges), npEdges);
  assert.deepEqual(counts, npCounts);
});

test('code table: F16 table gives what the lane passes give on the decoded values', () => {
  const table = new Float64Array(65536);
  const values: number[] = [];
  for (const [code, n] of [[0x3c00, 3], [0xbc00, 1], [0x0001, 2], [0x8000, 1], [0x7c00, 1], [0x7e00, 2], [0x4500, 1]] as const) {
    table[code] = n;
    for (let i = 0; i < n; i++) values.push(codeValue('F16', code));
  }
  const fromTable = statsFromCodeTable('F16', table, 8);
  const fromValues = laneStats(Float32Array.from(values), 8);
  assert.equal(fromTable.count, 11);
  assert.equal(fromTable.nonFinite, 3);
  assert.equal(fromTable.zeros, 1);
  for (const key of ['min', 'max', 'finite', 'absMax', 'outlierShare'] as const) assert.equal(fromTable[key], fromValues[key], key);
  assert.deepEqual(fromTable.histogram, fromValues.histogram);
  assert.ok(Math.abs(fromTable.mean! - fromValues.mean!) < 1e-15);
});

test('decode helpers: one rounding for 64-bit integers, signed small types', () => {
  assert.equal(bigintToF32(16777217n), 16777216); // tie → even
  assert.equal(bigintToF32(16777219n), 16777220);
  // 2^53 + 2^29 + 1 would round twice through f64 (to 2^53 + 2^29, then a tie to even: 2^53); once: up
  assert.equal(bigintToF32(2n ** 53n + 2n ** 29n + 1n), 2 ** 53 + 2 ** 30);
  assert.equal(bigintToF32(-(2n ** 63n)), -(2 ** 63));
  assert.equal(codeValue('I8', 0xff), -1);
  assert.equal(codeValue('I16', 0x8000), -32768);
  assert.equal(codeValue('BF16', 0x3f80), 1);
});

test('absmax profile twin: finite values only, rows and columns', () => {
  const v = Float32Array.from([1, -5, NaN, 2, Infinity, -0.5]);
  assert.deepEqual(Array.from(rowAbsMax(v, 2, 3)), [5, 2]);
  assert.deepEqual(Array.from(colAbsMax(v, 2, 3)), [2, 5, 0.5]);
});
