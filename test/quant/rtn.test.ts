// RTN family: the seed example, the grammar, round trips, and kernel == twin bit for bit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QuantLensError } from '../../src/core/errors';
import {
  DYNAMIC_MAP, NF4_BOUNDS, NF4_LEVELS, decodeFp8, dequantizeNestedAbsmax, dequantizeRtn, encodeFp8, quantizeRtn,
  roundHalfEven, type RtnTensor,
} from '../../src/core/quant/rtn';
import { formatScheme, parseScheme } from '../../src/core/quant/scheme';
import { dequantizeRtnWithKernel, quantizeRtnWithKernel } from '../../src/kernel/rtn';
import { instantiateKernel } from '../../src/kernel/wasm';

const kernel = instantiateKernel();
const SEED = Float32Array.from([5.47, 3.08, -7.59, 0, -1.95, -4.57, 10.8]);

function both(x: Float32Array, rows: number, cols: number, name: string): [RtnTensor, RtnTensor] {
  const scheme = parseScheme(name);
  return [quantizeRtn(x, rows, cols, scheme), quantizeRtnWithKernel(kernel, x, rows, cols, scheme)];
}

test('seed example: absmax and zero-point INT8', () => {
  for (const t of both(SEED, 1, 7, 'int8-t-sym')) {
    assert.deepEqual(Array.from(t.q), [64, 36, -89, 0, -23, -54, 127]);
    assert.equal(t.scales[0], Math.fround(Math.fround(10.8) / 127));
    assert.equal(t.zeroPoints, undefined);
  }
  for (const t of both(SEED, 1, 7, 'int8-t-asym')) {
    assert.deepEqual(Array.from(t.q), [53, 20, -128, -23, -50, -86, 127]);
    assert.equal(t.scales[0], Math.fround(Math.fround(Math.fround(10.8) - Math.fround(-7.59)) / 255));
    assert.ok(Math.abs(t.scales[0]! - 18.39 / 255) < 1e-7);
    assert.deepEqual(Array.from(t.zeroPoints!), [-23]);
  }
});

test('grammar: every form parses and formats back; bad names are USAGE errors', () => {
  const names = [
    'int2-t-sym', 'int4-g128-sym', 'int4-g32-asym-mse', 'int8-ch-asym', 'int5-ch-sym-mse', 'int8-g7-sym',
    'nf4-g64', 'nf4-g64-dq', 'nf4-g128-dq-mse', 'nf4-g4096-mse',
    'fp8-e4m3-t', 'fp8-e4m3-ch', 'fp8-e5m2-t-mse', 'fp8-e5m2-ch-mse',
  ];
  for (const n of names) assert.equal(formatScheme(parseScheme(n)), n);
  assert.equal(formatScheme(parseScheme(' INT4-G128-SYM ')), 'int4-g128-sym');
  assert.deepEqual(parseScheme('int4-g128-asym-mse'), {
    kind: 'int', bits: 4, granularity: { kind: 'group', size: 128 }, symmetric: false, mse: true,
  });
  assert.deepEqual(parseScheme('nf4-g64-dq'), { kind: 'nf4', blockSize: 64, doubleQuant: true, mse: false });
  assert.deepEqual(parseScheme('fp8-e5m2-ch'), { kind: 'fp8', format: 'e5m2', granularity: { kind: 'channel' }, mse: false });
  for (const bad of ['int1-t-sym', 'int9-ch-sym', 'int4-g0-sym', 'int4-g08-sym', 'int4-g128', 'int4-x-sym', 'nf4-g100', 'nf4-g64-mse-dq',
    'fp8-e4m3-g128', 'fp8-e3m4-t', 'Q4_K', '', 'int4-g2000000-sym']) {
    assert.throws(() => parseScheme(bad), (e) => e instanceof QuantLensError && e.code === 'USAGE', bad);
  }
});

/** Deterministic values with the edge cases: NaN, ±Inf, ±0, subnormals, exact rounding ties, outliers. */
function testTensor(n: number, seed: number): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
  for (let i = 0; i < n; i++) {
    const u = rnd();
    x[i] = u < 0.01 ? (rnd() - 0.5) * 200 : (rnd() + rnd() + rnd() - 1.5) * 0.05;
  }
  const specials = [NaN, Infinity, -Infinity, 0, -0, 1e-45, -1e-40, 0.5, -0.5, 2.5, -3.5, 1, -1];
  for (let k = 0; k < specials.length && k * 37 < n; k++) x[k * 37] = specials[k]!;
  return x;
}

function sameBits(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const fa = Float32Array.from(a);
  const fb = Float32Array.from(b);
  const ua = new Uint32Array(fa.buffer);
  const ub = new Uint32Array(fb.buffer);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i] && !(Number.isNaN(fa[i]) && Number.isNaN(fb[i]))) {
      assert.fail(`${what}: first difference at ${i}: kernel ${fa[i]} twin ${fb[i]}`);
    }
  }
}

const KERNEL_SCHEMES = [
  'int8-t-sym', 'int8-t-asym', 'int4-ch-sym', 'int4-ch-asym', 'int4-g32-sym', 'int4-g32-asym', 'int4-g128-sym-mse',
  'int4-g128-asym-mse', 'int3-g7-asym-mse', 'int2-g16-sym', 'int6-ch-sym-mse', 'int8-t-asym-mse',
  'nf4-g64', 'nf4-g64-dq', 'nf4-g32-mse', 'nf4-g64-dq-mse', 'fp8-e4m3-t', 'fp8-e5m2-ch-mse',
];

test('kernel equals twin bit for bit (levels, scales, zero-points, nested absmax, dequantized values)', () => {
  // 45 × 133: rows and groups that are not multiples of 4, a short last group, an NF4 tail block
  const shapes: [number, number][] = [[45, 133], [1, 7], [8, 256], [3, 1]];
  for (const [rows, cols] of shapes) {
    const x = testTensor(rows * cols, rows * 1000 + cols);
    for (const name of KERNEL_SCHEMES) {
      const [twin, wasm] = both(x, rows, cols, name);
      const what = `${name} [${rows}, ${cols}]`;
      assert.deepEqual(Array.from(wasm.q), Array.from(twin.q), `${what}: levels`);
      sameBits(wasm.scales, twin.scales, `${what}: scales`);
      assert.deepEqual(wasm.zeroPoints && Array.from(wasm.zeroPoints), twin.zeroPoints && Array.from(twin.zeroPoints), `${what}: zero-points`);
      assert.deepEqual(wasm.nested?.indices, twin.nested?.indices, `${what}: nested indices`);
      sameBits(dequantizeRtnWithKernel(kernel, twin), dequantizeRtn(twin), `${what}: dequantized`);
    }
  }
});

test('round trips: error within half a step, clip search never worse than plain RTN', () => {
  const rows = 16;
  const cols = 256;
  const x = testTensor(rows * cols, 7).map((v) => (Number.isFinite(v) ? v : 0));
  for (const bits of [2, 3, 4, 8]) {
    for (const sym of ['sym', 'asym']) {
      const t = quantizeRtn(x, rows, cols, parseScheme(`int${bits}-g64-${sym}`));
      const y = dequantizeRtn(t);
      for (let i = 0; i < x.length; i++) {
        const scale = t.scales[Math.floor(i / cols) * 4 + Math.floor((i % cols) / 64)]!;
        assert.ok(Math.abs(x[i]! - y[i]!) <= scale * 0.5001 + 1e-12, `int${bits} ${sym} element ${i}`);
      }
      const sse = (u: Float32Array) => u.reduce((s, v, i) => s + (v - x[i]!) ** 2, 0);
      const mse = dequantizeRtn(quantizeRtn(x, rows, cols, parseScheme(`int${bits}-g64-${sym}-mse`)));
      assert.ok(sse(mse) <= sse(y) * (1 + 1e-6), `int${bits} ${sym}: clip search worse`);
    }
  }
  const nf4 = dequantizeRtn(quantizeRtn(x, rows, cols, parseScheme('nf4-g64')));
  for (let i = 0; i < x.length; i++) assert.ok(Math.abs(nf4[i]! - x[i]!) <= 0.2 * 100, 'nf4 bounded');
  const seedNf4 = quantizeRtn(SEED, 1, 7, parseScheme('nf4-g64'));
  assert.equal(seedNf4.scales[0], Math.fround(10.8));
  assert.equal(seedNf4.q[6], 15);
  assert.equal(seedNf4.q[3], 7);
});

test('NF4 levels, midpoints and the dynamic map for -dq', () => {
  assert.equal(NF4_LEVELS.length, 16);
  assert.equal(NF4_BOUNDS.length, 15);
  assert.equal(NF4_LEVELS[7], 0);
  assert.equal(DYNAMIC_MAP.length, 256);
  assert.equal(DYNAMIC_MAP[255], 1);
  for (let i = 1; i < 256; i++) assert.ok(DYNAMIC_MAP[i]! > DYNAMIC_MAP[i - 1]!, 'dynamic map strictly increasing');
  // a value on a midpoint goes to the lower level (torch.bucketize, right=False)
  const x = Float32Array.from([NF4_BOUNDS[10]!, 1, ...new Array(62).fill(0), 0.5]);
  for (const t of both(x, 1, 65, 'nf4-g64')) assert.equal(t.q[0], 10);
  // double quantization reconstructs the block absmax values closely
  const big = testTensor(64 * 600, 3).map((v) => (Number.isFinite(v) ? v : 0));
  const t = quantizeRtn(big, 600, 64, parseScheme('nf4-g64-dq'));
  const raw = quantizeRtn(big, 600, 64, parseScheme('nf4-g64')).scales;
  assert.equal(t.nested!.absmax.length, Math.ceil(600 / 256));
  const rec = dequantizeNestedAbsmax(t.nested!);
  assert.deepEqual(rec, t.scales);
  for (let i = 0; i < raw.length; i++) assert.ok(Math.abs(rec[i]! - raw[i]!) <= 0.02 * Math.max(...raw), `absmax ${i}`);
});

test('FP8: every code round-trips, ties go to even, overflow saturates, NaN stays NaN', () => {
  for (const f of ['e4m3', 'e5m2'] as const) {
    for (let c = 0; c < 256; c++) {
      const v = decodeFp8(c, f);
      if (Number.isFinite(v)) assert.equal(encodeFp8(v, f), c === 0x80 ? 0x80 : c, `${f} code ${c}`);
    }
  }
  assert.equal(decodeFp8(0x7e, 'e4m3'), 448);
  assert.equal(encodeFp8(1e6, 'e4m3'), 0x7e);
  assert.equal(encodeFp8(-Infinity, 'e4m3'), 0xfe);
  assert.equal(encodeFp8(60000, 'e5m2'), 0x7b);
  assert.ok(Number.isNaN(decodeFp8(encodeFp8(NaN, 'e4m3'), 'e4m3')));
  assert.equal(encodeFp8(1.0625, 'e4m3'), 0x38); // halfway between 1 and 1.125: even mantissa
  assert.equal(encodeFp8(1.1875, 'e4m3'), 0x3a); // halfway between 1.125 and 1.25: even mantissa
  assert.equal(encodeFp8(2 ** -10, 'e4m3'), 0x00); // half the smallest subnormal: ties to 0
  assert.equal(roundHalfEven(2.5), 2);
  assert.equal(roundHalfEven(-3.5), -4);
  const t = quantizeRtn(SEED, 1, 7, parseScheme('fp8-e4m3-t'));
  assert.equal(t.scales[0], Math.fround(Math.fround(10.8) / 448));
  assert.equal(t.q[6], 0x7e);
});

test('shape errors are typed', () => {
  assert.throws(() => quantizeRtn(new Float32Array(6), 2, 4, parseScheme('int4-ch-sym')), (e) => e instanceof QuantLensError && e.code === 'INVALID_SHAPE');
});
