import { homedir } from 'node:os';
import { join } from 'node:path';
import { QuantLensError } from '../../core/errors';
import { runSensitivity, type SensitivityResult } from '../../core/sensitivity';
import { parseScheme } from '../../core/quant/scheme';
import type { QuantTarget } from '../../core/sensitivity/formats';
import type { FormatErrors } from '../../core/sensitivity/types';
import { KernelPool } from '../../kernel/pool';
import { poolSweepRunner } from '../../kernel/pool-sensitivity';
import { flag, hasFlag, parseArgs, toJson, type CliContext, type ParsedArgs } from '../io';
import { TerminalProgress } from '../progress';

/** Options the sweep takes from the command line, shared by `sensitivity` and `plan`. */
export const SWEEP_VALUES = ['types', 'imatrix', 'target', 'seed', 'cache-dir'];
export const SWEEP_BOOLEANS = ['sample', 'full', 'no-cache'];

/** The cache folder: --cache-dir, else $XDG_CACHE_HOME/quantlens, else ~/.cache/quantlens; none with --no-cache. */
function cacheDirOf(p: ParsedArgs): string | undefined {
  if (hasFlag(p, 'no-cache')) return undefined;
  return flag(p, 'cache-dir') ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'quantlens');
}

function isScheme(name: string): boolean {
  try {
    parseScheme(name);
    return true;
  } catch {
    return false;
  }
}

/** --target, else what --types name (schemes → safetensors), else `fallback`. */
export function targetOf(p: ParsedArgs, types: string[] | undefined, fallback: QuantTarget): QuantTarget {
  const t = flag(p, 'target');
  if (t !== undefined) {
    if (t !== 'gguf' && t !== 'safetensors') throw new QuantLensError('USAGE', `--target must be gguf or safetensors, got ${t}`);
    return t;
  }
  return types && types.length > 0 && types.every(isScheme) ? 'safetensors' : fallback;
}

/** Runs the sweep in the kernel pool with a progress bar on stderr. */
export async function sweepFromArgs(ctx: CliContext, p: ParsedArgs, fallbackTarget: QuantTarget): Promise<SensitivityResult & { cached: boolean }> {
  if (hasFlag(p, 'sample') && hasFlag(p, 'full')) throw new QuantLensError('USAGE', '--sample and --full exclude each other');
  const typesText = flag(p, 'types');
  const types = typesText === undefined ? undefined : typesText.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const seedText = flag(p, 'seed');
  const seed = seedText === undefined ? 0 : Number(seedText);
  if (!Number.isInteger(seed)) throw new QuantLensError('USAGE', `--seed must be an integer, got ${seedText}`);
  const progress = new TerminalProgress(ctx.stderr);
  const pool = new KernelPool();
  try {
    const path = p.positional[0]!;
    return await runSensitivity(path, {
      target: targetOf(p, types, fallbackTarget),
      types,
      imatrixPath: flag(p, 'imatrix'),
      sampleElements: hasFlag(p, 'full') ? null : undefined,
      seed,
      cacheDir: cacheDirOf(p),
      runner: poolSweepRunner(pool, path),
      signal: ctx.signal,
      onProgress: (s) => progress.update(s.workTotal > 0 ? s.workDone / s.workTotal : 1, `sensitivity: ${s.tensorsDone}/${s.tensors} tensors`),
    });
  } finally {
    pool.dispose();
    progress.done();
  }
}

function errorsJson(errors: FormatErrors): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [type, e] of Object.entries(errors)) out[type] = e && { relMse: e.relMse, sqnrDb: e.sqnrDb, maxAbsErr: e.maxAbsErr, relMseBound: e.relMseBound };
  return out;
}

/** The JSON of `quantlens sensitivity --json`. */
export function sensitivityJson(r: SensitivityResult & { cached: boolean }): Record<string, unknown> {
  return {
    mode: r.mode,
    target: r.target,
    types: r.types,
    sampled: r.settings.sampleElements !== null,
    cached: r.cached,
    seconds: r.seconds,
    tensors: r.tensors
      .filter((t) => t.shape.length >= 2)
      .map((t) => ({ name: t.name, params: t.params, layer: t.layer, role: t.role, sampledRows: t.sampledRows, rows: t.rows, errors: errorsJson(t.errors) })),
    layers: r.layers.map((g) => ({ layer: g.layer, role: g.role, params: g.params, errors: errorsJson(g.errors) })),
    byLayer: r.byLayer.map((g) => ({ layer: g.layer, params: g.params, errors: errorsJson(g.errors) })),
    byRole: r.byRole.map((g) => ({ role: g.role, params: g.params, errors: errorsJson(g.errors) })),
    imatrixMissing: r.imatrixMissing,
  };
}

/** `quantlens sensitivity <file> [--types T,..] [--imatrix F] [--sample|--full] [--json]`: error of every tensor at every candidate format. */
export async function sensitivityCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { values: SWEEP_VALUES, booleans: [...SWEEP_BOOLEANS, 'json'] });
  if (p.positional.length !== 1) throw new QuantLensError('USAGE', 'sensitivity takes one file or folder');
  const r = await sweepFromArgs(ctx, p, 'gguf');
  if (hasFlag(p, 'json')) {
    ctx.stdout.write(`${toJson(sensitivityJson(r))}\n`);
    return;
  }
  const sampled = r.settings.sampleElements !== null;
  const cell = (e: FormatErrors[string]) => (e === null ? 'n/a' : e.sqnrDb === null ? 'lossless' : `${e.sqnrDb.toFixed(1)}${sampled && e.relMseBound > 0 ? `±${boundDb(e.relMse, e.relMseBound)}` : ''}`);
  const rows = r.layers.map((g) => [g.layer === null ? '-' : String(g.layer), g.role, g.params.toLocaleString('en-US'), ...r.types.map((t) => cell(g.errors[t]))]);
  const header = ['layer', 'role', 'params', ...r.types];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const out = [
    `${r.mode} sensitivity, ${r.target} formats, ${sampled ? 'sampled rows' : 'every row'}${r.cached ? ' (cached)' : ''}, ${r.seconds.toFixed(1)} s: SQNR in dB per layer and role (higher is safer)`,
    header.map((h, i) => (i < 2 ? h.padEnd(widths[i]) : h.padStart(widths[i]))).join('  '),
    ...rows.map((row) => row.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')),
  ];
  const na = r.tensors.filter((t) => t.shape.length >= 2 && !t.quantizable).map((t) => t.name);
  if (na.length) out.push(`no candidate format fits (kept as is): ${na.join(', ')}`);
  if (r.imatrixMissing.length) out.push(`not in the importance matrix (measured unweighted): ${r.imatrixMissing.join(', ')}`);
  ctx.stdout.write(`${out.join('\n')}\n`);
}

/** The SQNR interval's half-width in dB for a relative MSE and its bound. */
function boundDb(relMse: number, bound: number): string {
  const lo = Math.max(relMse - bound, relMse * 1e-3);
  return ((10 * Math.log10((relMse + bound) / lo)) / 2).toFixed(1);
}
