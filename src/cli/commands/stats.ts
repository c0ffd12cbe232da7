import { QuantLensError } from '../../core/errors';
import { MAX_HISTOGRAM_BINS } from '../../core/limits';
import { openModel } from '../../core/readers';
import { DEFAULT_HISTOGRAM_BINS, type TensorStats } from '../../core/stats/stats';
import { KernelPool } from '../../kernel/pool';
import { computeTensorStats } from '../../kernel/tensor-stats';
import { flag, hasFlag, parseArgs, toJson, type CliContext } from '../io';
import { TerminalProgress } from '../progress';

/** `quantlens stats <file> [--tensor NAME]... [--bins N] [--json]`: statistics and histograms in the kernel pool. */
export async function statsCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { values: ['tensor', 'bins'], booleans: ['json'] });
  if (p.positional.length !== 1) throw new QuantLensError('USAGE', 'stats takes one file or folder');
  const binsText = flag(p, 'bins');
  const bins = binsText === undefined ? DEFAULT_HISTOGRAM_BINS : Number(binsText);
  if (!Number.isInteger(bins) || bins < 1 || bins > MAX_HISTOGRAM_BINS) {
    throw new QuantLensError('USAGE', `--bins must be an integer in 1..${MAX_HISTOGRAM_BINS}`);
  }
  const model = await openModel(p.positional[0]!, { signal: ctx.signal });
  const names = p.flags.get('tensor');
  const tensors = names
    ? names.map((name) => {
        const t = model.tensors.find((x) => x.name === name);
        if (!t) throw new QuantLensError('TENSOR_NOT_FOUND', `no tensor named ${name}`, { tensor: name });
        return t;
      })
    : model.tensors;

  const progress = new TerminalProgress(ctx.stderr);
  const label = `stats of ${tensors.length} tensor${tensors.length === 1 ? '' : 's'}`;
  const pool = new KernelPool();
  let results: TensorStats[];
  try {
    results = await computeTensorStats(pool, model, tensors, {
      bins,
      signal: ctx.signal,
      onProgress: (done, total) => progress.update(total > 0 ? done / total : 1, label),
    });
  } finally {
    pool.dispose();
    progress.done();
  }

  if (hasFlag(p, 'json')) {
    ctx.stdout.write(`${toJson({ tensors: tensors.map((t, i) => ({ name: t.name, dtype: t.dtype, ...results[i]! })) })}\n`);
    return;
  }
  const nameWidth = Math.min(60, Math.max(4, ...tensors.slice(0, 1000).map((t) => t.name.length)));
  const num = (x: number | null): string => (x === null ? '-' : Number(x.toPrecision(5)).toString());
  const out = [
    `${'name'.padEnd(nameWidth)}  ${'dtype'.padEnd(8)} ${'count'.padStart(12)} ${'min'.padStart(11)} ${'max'.padStart(11)} ${'mean'.padStart(11)} ${'std'.padStart(11)} ${'absMax'.padStart(11)} ${'kurtosis'.padStart(11)} ${'>6σ'.padStart(9)} ${'zeros'.padStart(10)} ${'non-finite'.padStart(10)}`,
  ];
  tensors.forEach((t, i) => {
    const s = results[i]!;
    out.push(
      `${t.name.padEnd(nameWidth)}  ${t.dtype.padEnd(8)} ${String(s.count).padStart(12)} ${num(s.min).padStart(11)} ${num(s.max).padStart(11)} ${num(s.mean).padStart(11)} ` +
        `${num(s.std).padStart(11)} ${num(s.absMax).padStart(11)} ${num(s.kurtosis).padStart(11)} ${(s.outlierShare === null ? '-' : `${(s.outlierShare * 100).toFixed(3)}%`).padStart(9)} ` +
        `${String(s.zeros).padStart(10)} ${String(s.nonFinite).padStart(10)}`,
    );
  });
  ctx.stdout.write(`${out.join('\n')}\n`);
}
