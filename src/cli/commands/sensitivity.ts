import { homedir } from 'node:os';
import { join } from 'node:path';
import { QuantLensError } from '../../core/errors';
import { readEvalText } from '../../core/model/eval';
import { runSensitivity, type SensitivityResult } from '../../core/sensitivity';
import { KLD_DEFAULT_CHUNKS, KLD_DEFAULT_CTX, runKldSensitivity } from '../../core/sensitivity/kld';
import { isSchemeName } from '../../core/quant/scheme';
import type { QuantTarget } from '../../core/sensitivity/formats';
import type { FormatErrors } from '../../core/sensitivity/types';
import { KernelPool } from '../../kernel/pool';
import { poolSweepRunner } from '../../kernel/pool-sensitivity';
import { flag, hasFlag, parseArgs, toJson, type CliContext, type ParsedArgs } from '../io';
import { TerminalProgress } from '../progress';
import { parseCount, parseMode } from './eval';

/** Options the sweep takes from the command line, shared by `sensitivity` and `plan`. */
export const SWEEP_VALUES = ['types', 'imatrix', 'target', 'seed', 'cache-dir', 'mode', 'text', 'ctx', 'chunks', 'by', 'numeric'];
export const SWEEP_BOOLEANS = ['sample', 'full', 'no-cache', 'compare-modes'];

/** The cache folder: --cache-dir, else $XDG_CACHE_HOME/quantlens, else ~/.cache/quantlens; none with --no-cache. */
function cacheDirOf(p: ParsedArgs): string | undefined {
  if (hasFlag(p, 'no-cache')) return undefined;
  return flag(p, 'cache-dir') ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'quantlens');
}

/** --target, else what --types name (schemes → safetensors), else `fallback`. */
export function targetOf(p: ParsedArgs, types: string[] | undefined, fallback: QuantTarget): QuantTarget {
  const t = flag(p, 'target');
  if (t !== undefined) {
    if (t !== 'gguf' && t !== 'safetensors') throw new QuantLensError('USAGE', `--target must be gguf or safetensors, got ${t}`);
    return t;
  }
  return types && types.length > 0 && types.every(isSchemeName) ? 'safetensors' : fallback;
}

/** Runs the sweep in the kernel pool with a progress bar on stderr. */
export async function sweepFromArgs(ctx: CliContext, p: ParsedArgs, fallbackTarget: QuantTarget): Promise<SensitivityResult & { cached: boolean }> {
  if (hasFlag(p, 'sample') && hasFlag(p, 'full')) throw new QuantLensError('USAGE', '--sample and --full exclude each other');
  const typesText = flag(p, 'types');
  const types = typesText === undefined ? undefined : typesText.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  const seedText = flag(p, 'seed');
  const seed = seedText === undefined ? 0 : Number(seedText);
  if (!Number.isInteger(seed)) throw new QuantLensError('USAGE', `--seed must be an integer, got ${seedText}`);
  const mode = flag(p, 'mode') ?? (flag(p, 'imatrix') ? 'imatrix' : 'weights');
  if (mode === 'kld') return kldSweepFromArgs(ctx, p, types, targetOf(p, types, fallbackTarget));
  if (mode !== 'weights' && mode !== 'imatrix') throw new QuantLensError('USAGE', `--mode ${mode}: expected weights, imatrix or kld (outputs is for .onnx models)`);
  if (mode === 'imatrix' && !flag(p, 'imatrix')) throw new QuantLensError('USAGE', '--mode imatrix needs --imatrix FILE');
  for (const f of ['text', 'ctx', 'chunks', 'by', 'numeric', 'compare-modes']) if (hasFlag(p, f)) throw new QuantLensError('USAGE', `--${f} goes with --mode kld`);
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

/**
 * `--mode kld`: each unit (--by tensor|layer|role) quantized alone to each format, mean KL divergence
 * against the original on --text (in this thread: the forward pass of small models is cheaper here
 * than shipping each product to a worker).
 */
async function kldSweepFromArgs(ctx: CliContext, p: ParsedArgs, types: string[] | undefined, target: QuantTarget): Promise<SensitivityResult & { cached: boolean }> {
  const textPath = flag(p, 'text');
  if (!textPath) throw new QuantLensError('USAGE', '--mode kld needs --text FILE (calibration text)');
  if (hasFlag(p, 'sample') || hasFlag(p, 'seed')) throw new QuantLensError('USAGE', '--mode kld quantizes whole tensors: --sample and --seed do not apply');
  const by = flag(p, 'by') ?? 'tensor';
  if (by !== 'tensor' && by !== 'layer' && by !== 'role') throw new QuantLensError('USAGE', `--by ${by}: expected tensor, layer or role`);
  const progress = new TerminalProgress(ctx.stderr);
  try {
    return await runKldSensitivity(p.positional[0]!, await readEvalText(textPath), {
      target,
      types,
      by,
      ctx: parseCount(flag(p, 'ctx'), 'ctx', KLD_DEFAULT_CTX),
      chunks: parseCount(flag(p, 'chunks'), 'chunks', KLD_DEFAULT_CHUNKS),
      numericMode: parseMode(flag(p, 'numeric')),
      imatrixPath: flag(p, 'imatrix'),
      compare: hasFlag(p, 'compare-modes'),
      cacheDir: cacheDirOf(p),
      signal: ctx.signal,
      onProgress: (k) => progress.update(k.total > 0 ? k.done / k.total : 1, `kld ${k.done}/${k.total}: ${k.label}`),
    });
  } finally {
    progress.done();
  }
}

function errorsJson(errors: FormatErrors): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [type, e] of Object.entries(errors)) {
    out[type] = e && { relMse: e.relMse, sqnrDb: e.sqnrDb, maxAbsErr: e.maxAbsErr, relMseBound: e.relMseBound, ...(e.kld === undefined ? {} : { kld: e.kld }) };
  }
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
    ...(r.mode === 'kld' ? { kld: r.settings.kld, basePpl: r.basePpl, kldGroups: r.kldGroups, rankCorrelation: r.rankCorrelation ?? null } : {}),
  };
}

/**
 * `quantlens sensitivity <file> [--types T,..] [--imatrix F] [--sample|--full] [--json]`: error of every tensor at every candidate format;
 * `--mode kld --text FILE [--ctx N] [--chunks N] [--by tensor|layer|role] [--numeric exact|llama.cpp] [--compare-modes]`: measured KL divergence.
 */
export async function sensitivityCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { values: SWEEP_VALUES, booleans: [...SWEEP_BOOLEANS, 'json'] });
  if (p.positional.length !== 1) throw new QuantLensError('USAGE', 'sensitivity takes one file or folder');
  const r = await sweepFromArgs(ctx, p, 'gguf');
  if (hasFlag(p, 'json')) {
    ctx.stdout.write(`${toJson(sensitivityJson(r))}\n`);
    return;
  }
  if (r.mode === 'kld') {
    ctx.stdout.write(`${kldTable(r).join('\n')}\n`);
    return;
  }
  const sampled = r.settings.sampleElements !== null;
  const cell = (e: FormatErrors[string]) => (e === null ? 'n/a' : e.sqnrDb === null ? 'lossless' : `${e.sqnrDb.toFixed(1)}${sampled && e.relMseBound > 0 ? `±${boundDb(e.relMse, e.relMseBound)}` : ''}`);
  const rows = r.layers.map((g) => [g.layer === null ? '-' : String(g.layer), g.role, g.params.toLocaleString('en-US'), ...r.types.map((t) => cell(g.errors[t]))]);
  const out = [
    `${r.mode} sensitivity, ${r.target} formats, ${sampled ? 'sampled rows' : 'every row'}${r.cached ? ' (cached)' : ''}, ${r.seconds.toFixed(1)} s: SQNR in dB per layer and role (higher is safer)`,
    ...table(['layer', 'role', 'params', ...r.types], rows, 2),
  ];
  const na = r.tensors.filter((t) => t.shape.length >= 2 && !t.quantizable).map((t) => t.name);
  if (na.length) out.push(`no candidate format fits (kept as is): ${na.join(', ')}`);
  if (r.imatrixMissing.length) out.push(`not in the importance matrix (measured unweighted): ${r.imatrixMissing.join(', ')}`);
  ctx.stdout.write(`${out.join('\n')}\n`);
}

/** Columns padded: the first `left` left-aligned, the rest right-aligned. */
function table(header: string[], rows: string[][], left: number): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (row: string[]) => row.map((c, i) => (i < left ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)];
}

/** The text output of a kld sweep: mean KLD per unit and format, then the rank agreement when compared. */
function kldTable(r: SensitivityResult & { cached: boolean }): string[] {
  const k = r.settings.kld!;
  const types = r.types.filter((t) => r.kldGroups!.some((g) => g.kld[t] !== null));
  const unit = (g: NonNullable<SensitivityResult['kldGroups']>[number]) =>
    k.by === 'tensor' ? g.tensors[0] : k.by === 'layer' ? (g.layer === null ? 'outside layers' : `layer ${g.layer}`) : String(g.role);
  const rows = r.kldGroups!.map((g) => [unit(g), ...types.map((t) => (g.kld[t] === null ? 'n/a' : g.kld[t]!.toExponential(3)))]);
  const out = [
    `kld sensitivity by ${k.by}, ${r.target} formats, ${k.chunks} chunks of ${k.ctx} tokens (${k.numericMode}), base PPL ${r.basePpl?.toFixed(4)}${r.cached ? ' (cached)' : ''}, ${r.seconds.toFixed(1)} s:`,
    'mean KL divergence with only that unit quantized (lower is safer)',
    ...table([k.by, ...types], rows, 1),
  ];
  if (r.rankCorrelation) {
    out.push('', `rank agreement with the measured KLD (Spearman ρ over ${k.by === 'tensor' ? 'tensors' : `${k.by}s`}; estimate = Σ params × relMSE):`);
    const formats = [...new Set(r.rankCorrelation.map((a) => a.format))];
    const cell = (estimate: string, f: string) => {
      const a = r.rankCorrelation!.find((x) => x.estimate === estimate && x.format === f);
      return a?.spearman == null ? '-' : `${a.spearman.toFixed(3)} (n=${a.units})`;
    };
    out.push(...table(['estimate', ...formats], ['weights', 'imatrix'].map((e) => [e, ...formats.map((f) => cell(e, f))]), 1));
  }
  return out;
}

/** The SQNR interval's half-width in dB for a relative MSE and its bound. */
function boundDb(relMse: number, bound: number): string {
  const lo = Math.max(relMse - bound, relMse * 1e-3);
  return ((10 * Math.log10((relMse + bound) / lo)) / 2).toFixed(1);
}
