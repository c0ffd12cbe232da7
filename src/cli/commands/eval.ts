import { QuantLensError } from '../../core/errors';
import type { EvalResult } from '../../core/model/eval';
import type { NumericMode } from '../../core/model/llama';
import { KernelPool } from '../../kernel/pool';
import { flag, hasFlag, parseArgs, toJson, type CliContext } from '../io';
import { TerminalProgress } from '../progress';

export function parseMode(value: string | undefined): NumericMode {
  if (value === undefined || value === 'exact') return 'exact';
  if (value === 'llama.cpp' || value === 'llamacpp') return 'llama.cpp';
  throw new QuantLensError('USAGE', `--mode ${value}: expected exact or llama.cpp`);
}

export function parseCount(value: string | undefined, name: string, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new QuantLensError('USAGE', `--${name} must be a positive integer`);
  return n;
}

/**
 * `quantlens eval <model> --text FILE [--ctx N] [--chunks N] [--base OTHER] [--mode exact|llama.cpp] [--json]`:
 * perplexity as llama-perplexity computes it; with --base, KL divergence against the base model.
 */
export async function evalCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { values: ['text', 'ctx', 'chunks', 'base', 'mode'], booleans: ['json'] });
  if (p.positional.length !== 1) throw new QuantLensError('USAGE', 'eval takes one model');
  const textPath = flag(p, 'text');
  if (!textPath) throw new QuantLensError('USAGE', 'eval needs --text FILE');
  const mode = parseMode(flag(p, 'mode'));
  const n = parseCount(flag(p, 'ctx'), 'ctx', 512)!;
  const chunks = parseCount(flag(p, 'chunks'), 'chunks', undefined);
  const progress = new TerminalProgress(ctx.stderr);
  // The forward passes run in a kernel worker, their products in that worker's kernel.
  const pool = new KernelPool({ size: 1 });
  let r: EvalResult;
  try {
    r = await pool.run(
      'evaluate',
      { model: p.positional[0], base: flag(p, 'base'), text: { path: textPath }, ctx: n, chunks, mode },
      { signal: ctx.signal, onPartial: ({ done, total }) => progress.update(done / total, `chunk ${done}/${total}`) },
    );
  } finally {
    pool.dispose();
    progress.done();
  }
  if (hasFlag(p, 'json')) {
    const { kld, ...rest } = r;
    ctx.stdout.write(`${toJson({ mode, ...rest, ...(kld ?? {}) })}\n`);
    return;
  }
  const lines = [`PPL = ${r.ppl.toFixed(4)} +/- ${r.pplUncertainty.toFixed(5)}  (${r.chunks} chunks of ${r.ctx} tokens, ${r.scored} scored, ${mode} mode)`];
  if (r.kld) {
    const k = r.kld;
    lines.push(
      `PPL(base)   : ${k.basePpl.toFixed(6)}`,
      `Mean    KLD: ${k.meanKld.toFixed(6)} ± ${k.meanKldUncertainty.toFixed(6)}`,
      `Maximum KLD: ${k.maxKld.toFixed(6)}`,
      `99.9%   KLD: ${k.p999Kld.toFixed(6)}`,
      `Median  KLD: ${k.medianKld.toFixed(6)}`,
      `RMS Δp    : ${k.rmsDeltaP.toFixed(3)} %`,
      `Same top p: ${k.sameTopP.toFixed(3)} %`,
    );
  }
  ctx.stdout.write(`${lines.join('\n')}\n`);
}
