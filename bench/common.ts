import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { PRESETS, llamaConfig, llamaTensors, manyTensors, writeGgufModel, writeSafetensorsModel, writeText, type PresetName } from '../src/core/generate';

export const repoRoot = resolve(__dirname, '..');
export const cliPath = join(repoRoot, 'dist/cli.js');

/** Generated benchmark inputs live outside the source tree and are reused across runs. */
export const benchDir = process.env.QUANTLENS_BENCH_DIR ?? join(tmpdir(), 'quantlens-bench');

/** The folder of a generated preset, generating it on first use. */
export function generatedModel(preset: PresetName): string {
  const dir = join(benchDir, preset);
  if (!existsSync(join(dir, 'config.json'))) {
    const p = PRESETS[preset];
    process.stderr.write(`[bench] generating ${preset} in ${dir} …\n`);
    writeSafetensorsModel(dir, llamaTensors(p.shape), p.dtype, 1234, p.shardBytes);
    writeText(join(dir, 'config.json'), JSON.stringify(llamaConfig(p.shape, p.dtype), null, 2));
  }
  return dir;
}

/** The generated 100,000-tensor GGUF, generated on first use. */
export function generatedManyTensorGguf(): string {
  const path = join(benchDir, 'gguf-100k.gguf');
  if (!existsSync(path)) {
    process.stderr.write(`[bench] generating ${path} …\n`);
    writeGgufModel(path, manyTensors(25_000), 'F16', 1234);
  }
  return path;
}

/** Gaussian-like weights with a few outliers, [rows, cols], from a fixed xorshift seed (the quantizer benches). */
export function benchWeights(rows: number, cols: number): Float32Array {
  const x = new Float32Array(rows * cols);
  let s = 12345;
  const rnd = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
  for (let i = 0; i < x.length; i++) x[i] = (rnd() + rnd() + rnd() - 1.5) * 0.04 * (rnd() < 0.001 ? 30 : 1);
  return x;
}

export interface ChildRun {
  seconds: number;
  peakRssMB: number;
  stdout: string;
}

/** Runs a command in a child process; peak RSS from GNU time (`%M`, kilobytes). */
export function runMeasured(cmd: string, args: string[]): ChildRun {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const lines = r.stderr.trim().split('\n');
  return { seconds, peakRssMB: Number(lines[lines.length - 1]) / 1024, stdout: r.stdout };
}

/** Median of `runs` timings of an async function, in milliseconds. */
export async function medianMs(runs: number, fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export function printTable(title: string, header: string[], rows: Array<Array<string | number>>): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  console.log(`\n## ${title}`);
  for (const [i, r] of cells.entries()) {
    console.log(r.map((c, j) => (j === 0 ? String(c).padEnd(widths[j]) : String(c).padStart(widths[j]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}
