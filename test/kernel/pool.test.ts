// The worker pool: lazy start, workers reading files themselves, transferred bytes, progress,
// errors crossing as QuantLensErrors, abort within 0.5 s, dispose.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { laneStats } from '../../src/core/stats/stats';
import { KernelPool } from '../../src/kernel/pool';
import { safetensorsBytes } from '../fixtures/safetensors-builder';

const dir = mkdtempSync(join(tmpdir(), 'quantlens-pool-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function values(n: number): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.sin(i * 0.37) * (i % 13 === 0 ? 9 : 1);
  v[5] = NaN;
  v[6] = -Infinity;
  return v;
}

test('workers start on first use, read files by path, and give the twin\'s numbers', async () => {
  const v = values(10_001);
  const file = join(dir, 'values.bin');
  const prefix = 24;
  writeFileSync(file, Buffer.concat([Buffer.alloc(prefix, 7), Buffer.from(v.buffer)]));
  const pool = new KernelPool({ size: 2 });
  try {
    assert.equal(pool.workers, 0);
    const progress: number[] = [];
    const fromFile = await pool.run(
      'stats',
      { name: 'v', dtype: 'F32', count: v.length, input: { file, offset: prefix, length: v.byteLength }, bins: 64, chunkBytes: 4096 },
      { onProgress: (done, total) => progress.push(done / total) },
    );
    assert.equal(pool.workers, 1);
    assert.deepStrictEqual(fromFile, laneStats(v, 64));
    assert.ok(progress.length >= 3, 'progress events arrive');
    assert.equal(progress[progress.length - 1], 1);
    assert.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]!), 'progress only grows');
    const bytes = new Uint8Array(v.buffer.slice(0));
    const fromBytes = await pool.run('stats', { name: 'v', dtype: 'F32', count: v.length, input: { bytes }, bins: 64 }, { transfer: [bytes.buffer as ArrayBuffer] });
    assert.deepStrictEqual(fromBytes, fromFile);
    assert.equal(bytes.byteLength, 0, 'the bytes were transferred, not copied');
    // two at once use two workers
    await Promise.all([0, 1, 2].map(() => pool.run('stats', { name: 'v', dtype: 'F32', count: v.length, input: { file, offset: prefix, length: v.byteLength }, bins: 8 })));
    assert.equal(pool.workers, 2);
  } finally {
    pool.dispose();
  }
});

test('errors in a worker reject with their code, tensor and file', async () => {
  const file = join(dir, 'short.bin');
  writeFileSync(file, Buffer.alloc(10));
  const pool = new KernelPool({ size: 1 });
  try {
    await assert.rejects(pool.run('stats', { name: 'w', dtype: 'F32', count: 4, input: { file, offset: 0, length: 16 }, bins: 4 }), {
      code: 'TRUNCATED',
      tensor: 'w',
      file,
    });
    await assert.rejects(pool.run('stats', { name: 'w', dtype: 'F32', count: 4, input: { file: join(dir, 'missing'), offset: 0, length: 16 }, bins: 4 }), { code: 'IO' });
    // the worker survives a failed job
    const ok = await pool.run('stats', { name: 'w', dtype: 'F32', count: 2, input: { file, offset: 0, length: 8 }, bins: 4 });
    assert.equal(ok.zeros, 2);
  } finally {
    pool.dispose();
  }
});

test('abort rejects with CANCELLED within 0.5 s and stops the worker; queued jobs go too', async () => {
  // a sparse 1 GiB file of zeros: three passes take several seconds, reading costs no disk space
  const file = join(dir, 'big.bin');
  writeFileSync(file, '');
  truncateSync(file, 1 << 30);
  const pool = new KernelPool({ size: 1 });
  try {
    const abort = new AbortController();
    const job = { name: 'big', dtype: 'F32' as const, count: 1 << 28, input: { file, offset: 0, length: 1 << 30 }, bins: 256 };
    let started = false;
    const running = pool.run('stats', job, { signal: abort.signal, onProgress: () => (started = true) });
    const queued = pool.run('stats', job, { signal: abort.signal });
    while (!started) await new Promise((r) => setTimeout(r, 10));
    const t0 = performance.now();
    abort.abort();
    await assert.rejects(running, { code: 'CANCELLED' });
    await assert.rejects(queued, { code: 'CANCELLED' });
    assert.ok(performance.now() - t0 < 500, 'cancelled within 0.5 s');
    assert.equal(pool.workers, 0, 'the busy worker was terminated');
    // the pool starts a fresh worker for the next job
    const small = await pool.run('stats', { ...job, count: 4, input: { file, offset: 0, length: 16 } });
    assert.equal(small.zeros, 4);
  } finally {
    pool.dispose();
  }
});

test('dispose rejects pending jobs and later runs', async () => {
  const pool = new KernelPool({ size: 1 });
  const bytes = new Uint8Array(16);
  const pending = pool.run('stats', { name: 'z', dtype: 'F32', count: 4, input: { bytes }, bins: 4 });
  pool.dispose();
  await assert.rejects(pending, { code: 'CANCELLED' });
  await assert.rejects(pool.run('stats', { name: 'z', dtype: 'F32', count: 4, input: { bytes }, bins: 4 }), { code: 'CANCELLED' });
});

const cli = resolve(__dirname, '../../dist/cli.js');

test('quantlens stats --json on a built safetensors file; Ctrl-C exits 3 within 0.5 s', async () => {
  const a = Float32Array.from([1, -2, 0, NaN, 3.5]);
  const b = new Uint16Array([0x3f80, 0x3f80]); // bf16 1, 1: constant
  const file = join(dir, 'tiny.safetensors');
  writeFileSync(
    file,
    safetensorsBytes([
      { name: 'a', dtype: 'F32', shape: [5], data: new Uint8Array(a.buffer) },
      { name: 'b', dtype: 'BF16', shape: [2], data: new Uint8Array(b.buffer) },
    ]),
  );
  const out = await runCli(['stats', file, '--json', '--bins', '4']);
  assert.equal(out.code, 0, out.stderr);
  const json = JSON.parse(out.stdout) as { tensors: Array<Record<string, unknown>> };
  assert.deepEqual(json.tensors[0], { name: 'a', dtype: 'F32', ...laneStats(a, 4), histogram: { min: -2, max: 3.5, counts: [1, 1, 1, 1] } });
  assert.deepEqual(json.tensors[1]!.histogram, { min: 0.5, max: 1.5, counts: [0, 0, 2, 0] });
  assert.equal(json.tensors[1]!.kurtosis, null);
  const one = await runCli(['stats', file, '--json', '--tensor', 'b']);
  assert.deepEqual((JSON.parse(one.stdout) as { tensors: Array<{ name: string }> }).tensors.map((t) => t.name), ['b']);
  assert.equal((await runCli(['stats', file, '--tensor', 'nope'])).code, 2);
  assert.equal((await runCli(['stats', file, '--bins', '0'])).code, 1);

  // Ctrl-C on a long run: a sparse 1 GiB F32 safetensors file
  const big = join(dir, 'big.safetensors');
  const header = JSON.stringify({ w: { dtype: 'F32', shape: [1 << 28], data_offsets: [0, 1 << 30] } }).padEnd(88, ' ');
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(big, Buffer.concat([head, Buffer.from(header)]));
  truncateSync(big, 8 + header.length + (1 << 30));
  const child = spawn(process.execPath, [cli, 'stats', big], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Interrupt once the run is under way (the file is open), however long Node takes to start on a loaded machine.
  await waitUntil(() => openFiles(child.pid!).some((f) => f.endsWith('big.safetensors')), 20_000);
  const t0 = performance.now();
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  assert.equal(code, 3);
  assert.ok(performance.now() - t0 < 500, `exited ${Math.round(performance.now() - t0)} ms after SIGINT`);
});

function openFiles(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
  } catch {
    return [];
  }
}

async function waitUntil(ready: () => boolean, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  while (!ready()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}
