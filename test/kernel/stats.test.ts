// Kernel vs twin, bit for bit: decoders, code counting, the lane passes, the whole stats job and the
// absmax profile, on edge cases (NaN, ±Inf, ±0, subnormals, every f16/bf16/fp8 code, lengths that
// are not multiples of the vector width, chunked and unchunked).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DType } from '../../src/core/dtypes';
import { DTYPES } from '../../src/core/dtypes';
import { dequantizeBlocks } from '../../src/core/quant/dequant';
import { colAbsMax, rowAbsMax } from '../../src/core/stats/absmax';
import { decodeToF32, decodeToF64, isPlainDType, type PlainDType, type WideDType } from '../../src/core/stats/decode';
import { countCodes, laneStats, statsFromCodeTable, statsPathOf, type CodeDType, type TensorStats } from '../../src/core/stats/stats';
import type { AbsMaxProfileJob, JobContext, StatsJob } from '../../src/kernel/jobs';
import { runAbsMaxProfileJob, runStatsJob } from '../../src/kernel/stats-job';
import { decodeToF32InKernel, instantiateKernel, KernelArena } from '../../src/kernel/wasm';

const kernel = instantiateKernel();
const arena = new KernelArena(kernel);
const ctx: JobContext = { kernel, arena, signal: new AbortController().signal, progress: () => {} };

/** A deterministic generator (xorshift32), so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const next = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next() & 0xff;
  return out;
}

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Fails naming the first differing element and the number of mismatches. */
function assertSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const a = bitsOf(actual);
  const e = bitsOf(expected);
  let first = -1;
  let mismatches = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  if (mismatches > 0) {
    assert.fail(`${what}: ${mismatches} of ${a.length} differ; first at ${first}: kernel 0x${a[first]!.toString(16)}, twin 0x${e[first]!.toString(16)}`);
  }
}

function kernelDecode(dtype: PlainDType, bytes: Uint8Array): Float32Array {
  arena.reset();
  const n = bytes.length / DTYPES[dtype].bytesPerBlock;
  const src = arena.take(bytes.length);
  const dst = arena.take(n * 4);
  kernel.bytes().set(bytes, src);
  decodeToF32InKernel(kernel, dtype, src, n, dst);
  return new Float32Array(kernel.memory.buffer, dst, n).slice();
}

function allCodes16(): Uint8Array {
  const codes = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) codes[i] = i;
  return new Uint8Array(codes.buffer);
}

function allCodes8(): Uint8Array {
  return Uint8Array.from({ length: 256 }, (_, i) => i);
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

function f64Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float64Array.from(values).buffer);
}

const F32_EDGES = [
  0, -0, 1, -1, NaN, Infinity, -Infinity, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, 0.1, 1e-40, 65504, -2.5,
];

test('decode: every f16, bf16, e4m3, e5m2 code, kernel = twin bit for bit', () => {
  for (const [dtype, bytes] of [['F16', allCodes16()], ['BF16', allCodes16()], ['F8_E4M3', allCodes8()], ['F8_E5M2', allCodes8()]] as const) {
    assertSameBits(kernelDecode(dtype, bytes), decodeToF32(dtype, bytes), dtype);
  }
});

test('decode: known values of the fp8 formats and f16 subnormals', () => {
  const e4m3 = decodeToF32('F8_E4M3', Uint8Array.from([0x7e, 0x01, 0x38, 0xfe, 0x7f, 0x80]));
  assert.deepEqual(Array.from(e4m3.slice(0, 5)), [448, 2 ** -9, 1, -448, NaN]);
  assert.ok(Object.is(e4m3[5], -0));
  const e5m2 = decodeToF32('F8_E5M2', Uint8Array.from([0x7b, 0x7c, 0x01, 0x3c]));
  assert.deepEqual(Array.from(e5m2), [57344, Infinity, 2 ** -16, 1]);
  const f16 = decodeToF32('F16', new Uint8Array(Uint16Array.from([0x0001, 0x03ff, 0x7bff, 0xfc00]).buffer));
  assert.deepEqual(Array.from(f16), [2 ** -24, 1023 * 2 ** -24, 65504, -Infinity]);
});

test('decode: integers and f64, all lengths 0..19, rounding ties, extremes', () => {
  const i64 = new BigInt64Array([0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 16777217n, 16777219n, 2n ** 53n + 1n, -(2n ** 40n) - 1n, (2n ** 24n + 1n) * 2n ** 30n + 1n]);
  const u64 = new BigUint64Array([0n, 2n ** 64n - 1n, 16777217n, 2n ** 63n + 2n ** 39n, 2n ** 63n + 2n ** 39n + 1n]);
  const cases: Array<[PlainDType, Uint8Array]> = [
    ['I64', new Uint8Array(i64.buffer)],
    ['U64', new Uint8Array(u64.buffer)],
    ['I32', new Uint8Array(Int32Array.from([0, -1, 2147483647, -2147483648, 16777217, 16777219, -16777217]).buffer)],
    ['U32', new Uint8Array(Uint32Array.from([0, 4294967295, 16777217, 16777219]).buffer)],
    ['F64', f64Bytes([0, -0, NaN, -NaN, Infinity, -Infinity, 1e-320, 1e300, -1e300, 3.4028235677973366e38, 1 + 2 ** -24, 1 + 3 * 2 ** -24, 1e-46, 7.006492321624085e-46])],
  ];
  for (const [dtype, bytes] of cases) assertSameBits(kernelDecode(dtype, bytes), decodeToF32(dtype, bytes), dtype);
  for (const dtype of ['F16', 'BF16', 'I8', 'U8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64', 'F64', 'F8_E4M3', 'F8_E5M2', 'BOOL'] as PlainDType[]) {
    for (let n = 0; n < 20; n++) {
      const bytes = randomBytes(n * DTYPES[dtype].bytesPerBlock, 1000 + n);
      assertSameBits(kernelDecode(dtype, bytes), decodeToF32(dtype, bytes), `${dtype} × ${n}`);
    }
  }
});

async function kernelStats(job: Omit<StatsJob, 'name'>): Promise<TensorStats> {
  arena.reset();
  return runStatsJob({ name: 't', ...job }, ctx);
}

/** The twin's statistics of `bytes`, by the path the dtype takes. */
function twinStats(dtype: DType, bytes: Uint8Array, bins: number): TensorStats {
  const { blockSize, bytesPerBlock } = DTYPES[dtype];
  const path = statsPathOf(dtype, (bytes.length / bytesPerBlock) * blockSize);
  if (path === 'codes8' || path === 'codes16') {
    const table = new Float64Array(path === 'codes8' ? 256 : 65536);
    countCodes(dtype as CodeDType, bytes, table);
    return statsFromCodeTable(dtype as CodeDType, table, bins);
  }
  if (path === 'f64') return laneStats(decodeToF64(dtype as WideDType, bytes), bins);
  if (isPlainDType(dtype)) return laneStats(decodeToF32(dtype, bytes), bins);
  const out = new Float32Array((bytes.length / bytesPerBlock) * blockSize);
  dequantizeBlocks(dtype, bytes, out);
  return laneStats(out, bins);
}

async function assertStatsAgree(dtype: DType, bytes: Uint8Array, bins: number, what: string): Promise<void> {
  const { blockSize, bytesPerBlock } = DTYPES[dtype];
  const count = (bytes.length / bytesPerBlock) * blockSize;
  const twin = twinStats(dtype, bytes, bins);
  // deepStrictEqual compares numbers with Object.is: -0 ≠ +0, so this is bit-equality of every f64
  assert.deepStrictEqual(await kernelStats({ dtype, count, input: { bytes }, bins }), twin, `${what} (one chunk)`);
  assert.deepStrictEqual(await kernelStats({ dtype, count, input: { bytes }, bins, chunkBytes: 64 }), twin, `${what} (64-byte chunks)`);
  assert.deepStrictEqual(await kernelStats({ dtype, count, input: { bytes }, bins, chunkBytes: 1040 }), twin, `${what} (1040-byte chunks)`);
}

test('stats: F32 edge values, every length 0..40, kernel = twin (all fields, bit for bit)', async () => {
  for (let n = 0; n <= 40; n++) {
    const values = Array.from({ length: n }, (_, i) => F32_EDGES[(i * 7) % F32_EDGES.length]!);
    await assertStatsAgree('F32', f32Bytes(values), 16, `F32 edges × ${n}`);
  }
  await assertStatsAgree('F32', f32Bytes([NaN, Infinity, -Infinity]), 8, 'no finite value');
  await assertStatsAgree('F32', f32Bytes([2.5, 2.5, 2.5, 2.5, 2.5]), 256, 'constant');
  await assertStatsAgree('F32', f32Bytes([-0, 0, -0]), 3, 'signed zeros');
  await assertStatsAgree('F32', f32Bytes([1e-45, 2e-45, -1e-45, 3e-45, 1e-45]), 7, 'subnormals');
});

test('stats: random F32 (ordinary and heavy-tailed) in many chunkings', async () => {
  for (const [n, seed] of [[1, 1], [17, 2], [1000, 3], [4099, 4]] as const) {
    const next = rng(seed);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = ((next() / 2 ** 32 - 0.5) * 3) ** 5 + (i % 97 === 0 ? 40 : 0);
    await assertStatsAgree('F32', new Uint8Array(v.buffer), 256, `random F32 × ${n}`);
  }
});

test('stats: code-table types on every code and on random bytes; kernel = twin', async () => {
  for (const dtype of ['F16', 'BF16', 'I16', 'U16'] as const) {
    await assertStatsAgree(dtype, allCodes16(), 256, `${dtype} all codes`);
    await assertStatsAgree(dtype, randomBytes(2 * 3001, 7), 100, `${dtype} random`);
  }
  for (const dtype of ['F8_E4M3', 'F8_E5M2', 'I8', 'U8', 'BOOL'] as const) {
    await assertStatsAgree(dtype, allCodes8(), 256, `${dtype} all codes`);
    await assertStatsAgree(dtype, randomBytes(1001, 8), 33, `${dtype} random`);
  }
});

test('stats: code table equals the lane definition on the decoded values (same min, max, counts, histogram)', async () => {
  const bytes = randomBytes(2 * 5000, 9);
  const table = twinStats('BF16', bytes, 256);
  const lanes = laneStats(decodeToF32('BF16', bytes), 256);
  for (const key of ['count', 'finite', 'nonFinite', 'zeros', 'min', 'max', 'absMax', 'outlierShare'] as const) assert.equal(table[key], lanes[key], key);
  assert.deepEqual(table.histogram, lanes.histogram);
  assert.ok(Math.abs(table.mean! - lanes.mean!) <= 1e-12 * Math.max(1, Math.abs(lanes.mean!)) + 1e-9 * lanes.std!);
});

test('stats: wide types (F64, I32, U32, I64, U64) kernel = twin', async () => {
  await assertStatsAgree('F64', f64Bytes([0, -0, NaN, Infinity, 1e-320, 1e300, -1e300, 1.5, 2.5, -3.25, 1e-17]), 10, 'F64 edges');
  await assertStatsAgree('F64', f64Bytes([1.7e308, -1.7e308, 0, 1]), 4, 'F64 range overflowing f64');
  for (const dtype of ['I32', 'U32', 'I64', 'U64'] as const) {
    for (const n of [1, 5, 16, 37]) await assertStatsAgree(dtype, randomBytes(n * DTYPES[dtype].bytesPerBlock, n), 64, `${dtype} × ${n}`);
  }
});

test('stats: GGUF block types are statistics of their dequantized values; kernel = twin', async () => {
  for (const dtype of ['Q8_0', 'Q4_0', 'Q4_K', 'Q6_K', 'IQ4_NL'] as const) {
    const { bytesPerBlock } = DTYPES[dtype];
    const bytes = randomBytes(bytesPerBlock * 5, 11);
    // scales are f16 at the start of legacy blocks: keep them finite so the values are too
    await assertStatsAgree(dtype, bytes, 64, dtype);
  }
});

test('stats: checks its inputs', async () => {
  await assert.rejects(kernelStats({ dtype: 'F32', count: 3, input: { bytes: new Uint8Array(8) }, bins: 4 }), { code: 'SIZE_MISMATCH' });
  await assert.rejects(kernelStats({ dtype: 'F32', count: 2, input: { bytes: new Uint8Array(8) }, bins: 0 }), { code: 'USAGE' });
  await assert.rejects(kernelStats({ dtype: 'Q8_1', count: 32, input: { bytes: new Uint8Array(36) }, bins: 4 }), { code: 'UNSUPPORTED' });
  await assert.rejects(kernelStats({ dtype: 'F32', count: 2, input: { file: '/nonexistent/x', offset: 0, length: 8 }, bins: 4 }), { code: 'IO' });
});

test('absmax profile: rows and columns, kernel = twin, chunked by rows', async () => {
  for (const [rows, cols] of [[1, 1], [3, 5], [7, 16], [16, 3], [33, 9]] as const) {
    const v = new Float32Array(rows * cols);
    const next = rng(rows * 100 + cols);
    for (let i = 0; i < v.length; i++) v[i] = F32_EDGES[next() % F32_EDGES.length]! * ((next() % 5) - 2);
    for (const chunkBytes of [undefined, 64, 200]) {
      arena.reset();
      const job: AbsMaxProfileJob = { name: 't', dtype: 'F32', rows, cols, input: { bytes: new Uint8Array(v.buffer.slice(0)) }, chunkBytes };
      const { value } = await runAbsMaxProfileJob(job, ctx);
      assertSameBits(value.rows, rowAbsMax(v, rows, cols), `rows ${rows}×${cols}`);
      assertSameBits(value.cols, colAbsMax(v, rows, cols), `cols ${rows}×${cols}`);
    }
  }
  arena.reset();
  const bf16 = new Uint16Array([0x3f80, 0xc000, 0x7f80, 0x0000, 0xbf00, 0x7fc0]);
  const { value } = await runAbsMaxProfileJob({ name: 't', dtype: 'BF16', rows: 2, cols: 3, input: { bytes: new Uint8Array(bf16.buffer) } }, ctx);
  assert.deepEqual(Array.from(value.rows), [2, 0.5]);
  assert.deepEqual(Array.from(value.cols), [1, 2, 0]);
});
