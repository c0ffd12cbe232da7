import { compareModels } from '../../core/compare';
import { QuantLensError } from '../../core/errors';
import { openModel } from '../../core/readers';
import { nodeFileAccess } from '../../core/readers/node-files';
import { hasFlag, parseArgs, toJson, type CliContext } from '../io';
import { KernelPool } from '../../kernel/pool';
import { poolPairComparer } from '../../kernel/pool-compare';
import { TerminalProgress } from '../progress';

/** `quantlens diff <a> <b> [--json]`: per-tensor error of b against a. */
export async function diffCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { booleans: ['json'] });
  if (p.positional.length !== 2) throw new QuantLensError('USAGE', 'diff takes two checkpoints');
  const [pathA, pathB] = p.positional;
  const [a, b] = await Promise.all([openModel(pathA, { signal: ctx.signal }), openModel(pathB, { signal: ctx.signal })]);
  const progress = new TerminalProgress(ctx.stderr);
  const pool = new KernelPool();
  const { summary, tensors } = await compareModels(a, b, nodeFileAccess, {
    signal: ctx.signal,
    comparer: poolPairComparer(pool),
    onTensor: (_row, pr) => progress.update(pr.done / pr.total, pr.tensor),
  }).finally(() => pool.dispose());
  progress.done();
  const rows = tensors.map((t) => ({
    name: t.name,
    dtypeA: t.dtypeA,
    dtypeB: t.dtypeB,
    count: t.count,
    mse: t.mse,
    relMse: t.relMse,
    sqnrDb: t.sqnrDb,
    maxAbsErr: t.maxAbsErr,
    cosine: t.cosine,
    nonFiniteMismatch: t.nonFiniteMismatch,
  }));
  if (hasFlag(p, 'json')) {
    ctx.stdout.write(`${toJson({ a: pathA, b: pathB, summary: { ...summary, onlyInA: summary.onlyInA.length, onlyInB: summary.onlyInB.length }, tensors: rows })}\n`);
    return;
  }
  const out = [
    `A: ${pathA}  ${summary.bytesA.toLocaleString('en-US')} bytes, ${summary.bitsPerWeightA?.toFixed(3) ?? '-'} bpw`,
    `B: ${pathB}  ${summary.bytesB.toLocaleString('en-US')} bytes, ${summary.bitsPerWeightB?.toFixed(3) ?? '-'} bpw`,
    `${summary.matched} matched, ${summary.onlyInA.length} only in A, ${summary.onlyInB.length} only in B${summary.shapeMismatch.length ? `, ${summary.shapeMismatch.length} with different shapes` : ''}`,
    '',
    `${'name'.padEnd(44)} ${'A'.padEnd(6)} ${'B'.padEnd(6)} ${'SQNR dB'.padStart(8)} ${'rel MSE'.padStart(10)} ${'max abs'.padStart(10)} ${'cosine'.padStart(9)}`,
  ];
  const figure = (x: number | null, text: (v: number) => string) => (x === null ? '-' : Number.isFinite(x) ? text(x) : x > 0 ? 'inf' : '-inf');
  for (const r of rows) {
    out.push(
      `${r.name.padEnd(44)} ${r.dtypeA.padEnd(6)} ${r.dtypeB.padEnd(6)} ${(r.sqnrDb === null ? 'exact' : figure(r.sqnrDb, (v) => v.toFixed(2))).padStart(8)} ` +
        `${figure(r.relMse, (v) => v.toExponential(2)).padStart(10)} ${figure(r.maxAbsErr, (v) => v.toExponential(2)).padStart(10)} ${figure(r.cosine, (v) => v.toFixed(6)).padStart(9)}` +
        `${r.nonFiniteMismatch ? `  ${r.nonFiniteMismatch} NaN/Inf mismatch${r.nonFiniteMismatch === 1 ? '' : 'es'}` : ''}`,
    );
  }
  ctx.stdout.write(`${out.join('\n')}\n`);
}
