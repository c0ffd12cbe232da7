import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { compareModels, matchTensors, type TensorError } from '../../src/core/compare';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import type { ModelInfo, TensorInfo } from '../../src/core/model';
import { quantizeToGguf } from '../../src/core/quantize/to-gguf';
import { quantizeToSafetensors } from '../../src/core/quantize/to-safetensors';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import { tensorRowsF32 } from '../../src/core/tensor-rows';
import type { RangeHistogram } from '../../src/kernel/compare-job';
import { poolPairComparer } from '../../src/kernel/pool-compare';
import { KernelPool } from '../../src/kernel/pool';
import { distDir } from '../../src/kernel/wasm';

const built = existsSync(join(distDir, 'worker.js')) && existsSync(join(distDir, 'kernel.wasm'));
const stories = resolve(__dirname, '../../../shared/models/stories260K');
const BINS = 64;

/** Error figures equal as f64 sums in another order can be: to 1e-12 relative. */
function assertCloseErrors(got: TensorError, want: TensorError, label: string): void {
  assert.equal(got.count, want.count, label);
  for (const k of ['mse', 'relMse', 'sqnrDb', 'maxAbsErr', 'cosine'] as const) {
    const g = got[k];
    const w = want[k];
    if (g === null || w === null || !Number.isFinite(w)) {
      assert.equal(g, w, `${label} ${k}`);
      continue;
    }
    assert.ok(Math.abs(g - w) <= 1e-12 * Math.max(Math.abs(w), 1e-300) || (k === 'sqnrDb' && Math.abs(g - w) < 1e-9), `${label} ${k}: ${g} vs ${w}`);
  }
}

async function valuesOf(model: ModelInfo, t: TensorInfo): Promise<Float32Array> {
  const parts: Float32Array[] = [];
  for await (const c of tensorRowsF32(model, t, nodeFileAccess, { maxElements: Infinity })) parts.push(c.values.slice());
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** The histograms the job defines, from the twins' values (bins of (x − lo) · bins / (hi − lo), clamped). */
function referenceHistograms(a: Float32Array, b: Float32Array): { a: RangeHistogram; b: RangeHistogram; error: RangeHistogram } {
  const range = (xs: Iterable<number>) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of xs) if (Number.isFinite(x)) [lo, hi] = [Math.min(lo, x), Math.max(hi, x)];
    return { lo, hi };
  };
  const err = Float64Array.from(a, (x, i) => b[i] - x);
  const values = range([...a, ...b]);
  const errors = range(err);
  const hist = (xs: ArrayLike<number>, r: { lo: number; hi: number }): RangeHistogram => {
    if (r.lo > r.hi) return { lo: null, hi: null, counts: [] };
    const counts = new Array<number>(BINS).fill(0);
    const scale = r.hi > r.lo ? BINS / (r.hi - r.lo) : 0;
    for (let i = 0; i < xs.length; i++) if (Number.isFinite(xs[i])) counts[Math.min(BINS - 1, Math.max(0, Math.floor((xs[i] - r.lo) * scale)))]++;
    return { lo: r.lo, hi: r.hi, counts };
  };
  return { a: hist(a, values), b: hist(b, values), error: hist(err, errors) };
}

/** Every matched pair through the pool (with histograms) against the twins' figures and the reference histograms. */
async function checkAgainstTwins(pool: KernelPool, pathA: string, pathB: string, label: string): Promise<number> {
  const a = await openModel(pathA);
  const b = await openModel(pathB);
  const twin = await compareModels(a, b, nodeFileAccess);
  const inPool = await compareModels(a, b, nodeFileAccess, { comparer: poolPairComparer(pool) });
  assert.equal(inPool.tensors.length, twin.tensors.length);
  inPool.tensors.forEach((t, i) => assertCloseErrors(t, twin.tensors[i], `${label} ${t.name}`));
  const { pairs } = await matchTensors(a, b);
  const withHistograms = pairs.filter((p, i) => i < 4 || p.rowMapB || p.b.encoding !== 'raw');
  for (const pair of withHistograms) {
    const reply = await pool.run('compareTensors', { a: { path: pathA, tensor: pair.a.name }, b: { path: pathB, tensor: pair.b.name }, rowMapB: pair.rowMapB?.slice(), bins: BINS });
    let vb = await valuesOf(b, pair.b);
    const va = await valuesOf(a, pair.a);
    if (pair.rowMapB) {
      const cols = pair.a.shape[pair.a.shape.length - 1];
      const src = vb;
      vb = new Float32Array(src.length);
      pair.rowMapB.forEach((r, i) => vb.set(src.subarray(r * cols, (r + 1) * cols), i * cols));
    }
    assert.deepEqual(reply.histograms, referenceHistograms(va, vb), `${label} ${pair.a.name}: histograms`);
  }
  return withHistograms.filter((p) => p.rowMapB || p.b.encoding !== 'raw').length;
}

test('compareTensors in the kernel: raw F32/BF16 against GGUF Q8_0/Q4_K and a compressed-tensors int4 layout equal the twins', async (t) => {
  if (!built) return t.skip('dist/ is not built (npm run build)');
  const dir = mkdtempSync(join(tmpdir(), 'ql-cmp-job-'));
  const pool = new KernelPool({ size: 2 });
  try {
    for (const dtype of ['F32', 'BF16'] as const) {
      const src = join(dir, dtype);
      writeSafetensorsModel(src, llamaTensors(PRESETS.tiny.shape), dtype, 5);
      for (const type of ['Q8_0', 'Q4_K']) {
        const out = join(dir, `${dtype}-${type}.gguf`);
        await quantizeToGguf(src, out, { type, pure: true });
        await checkAgainstTwins(pool, src, out, `${dtype}→${type}`);
      }
    }
    // a quantized layout on one side: dequantized by tensorRowsF32 in the worker
    const int4 = join(dir, 'int4');
    await quantizeToSafetensors(join(dir, 'F32'), int4, { scheme: 'int4-g128-sym' });
    assert.ok((await checkAgainstTwins(pool, join(dir, 'F32'), int4, 'F32→int4-g128-sym')) > 0, 'quantized layouts compared');
  } finally {
    pool.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('compareTensors in the kernel: stories260K HF against its GGUF Q8_0 (q/k rows matched through the rotary permutation)', { skip: !existsSync(stories) && 'no ../shared/models' }, async (t) => {
  if (!built) return t.skip('dist/ is not built (npm run build)');
  const pool = new KernelPool({ size: 2 });
  try {
    assert.ok((await checkAgainstTwins(pool, join(stories, 'hf/model.safetensors'), join(stories, 'stories260K-Q8_0.gguf'), 'stories260K')) > 0, 'rows permuted');
  } finally {
    pool.dispose();
  }
});
