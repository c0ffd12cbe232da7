import { basename } from 'node:path';
import { AtomicOutput } from '../../core/atomic-output';
import { QuantLensError } from '../../core/errors';
import { encodeImatrixGguf } from '../../core/model/calibrate';
import { imatrixOfReply, type CalibrateJobReply } from '../../kernel/model-jobs';
import { KernelPool } from '../../kernel/pool';
import { flag, hasFlag, parseArgs, toJson, type CliContext } from '../io';
import { TerminalProgress } from '../progress';
import { parseCount, parseMode } from './eval';

/**
 * `quantlens calibrate <model> --text FILE [--ctx N] [--chunks N] [-o imatrix.gguf] [--mode exact|llama.cpp]
 * [--process-output] [--json]`: llama-imatrix's importance matrix, and activation statistics per site.
 */
export async function calibrateCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { values: ['text', 'ctx', 'chunks', 'output', 'mode'], booleans: ['json', 'process-output'], aliases: { '-o': '--output' } });
  if (p.positional.length !== 1) throw new QuantLensError('USAGE', 'calibrate takes one model');
  const textPath = flag(p, 'text');
  if (!textPath) throw new QuantLensError('USAGE', 'calibrate needs --text FILE');
  const mode = parseMode(flag(p, 'mode'));
  const n = parseCount(flag(p, 'ctx'), 'ctx', 512)!;
  const chunks = parseCount(flag(p, 'chunks'), 'chunks', undefined);
  const outPath = flag(p, 'output');
  const progress = new TerminalProgress(ctx.stderr);
  // The forward pass runs in a kernel worker, its products in that worker's kernel.
  const pool = new KernelPool({ size: 1 });
  let r: CalibrateJobReply;
  try {
    r = await pool.run(
      'calibrate',
      { model: p.positional[0], text: { path: textPath }, ctx: n, chunks, mode, processOutput: hasFlag(p, 'process-output') },
      { signal: ctx.signal, onPartial: ({ done, total }) => progress.update(done / total, `chunk ${done}/${total}`) },
    );
  } finally {
    pool.dispose();
    progress.done();
  }
  if (outPath) {
    const bytes = encodeImatrixGguf(imatrixOfReply(r), { datasets: [basename(textPath)], chunkCount: r.chunks, chunkSize: r.ctx });
    const out = await AtomicOutput.create(outPath, bytes.length);
    try {
      await out.write(bytes);
      await out.commit();
    } catch (err) {
      await out.discard();
      throw err;
    }
  }
  if (hasFlag(p, 'json')) {
    ctx.stdout.write(
      `${toJson({
        mode,
        ctx: r.ctx,
        chunks: r.chunks,
        tokens: r.tokens,
        ppl: r.ppl,
        output: outPath ?? null,
        imatrix: r.imatrix.map((e) => ({ name: e.name, columns: e.sum2.length, count: e.count })),
        sites: r.sites,
      })}\n`,
    );
    return;
  }
  const lines = [`${r.chunks} chunks of ${r.ctx} tokens (${mode} mode), PPL = ${r.ppl.toFixed(4)}; importance matrix of ${r.imatrix.length} weights${outPath ? ` written to ${outPath}` : ''}`];
  lines.push(`${'site'.padEnd(28)} ${'absMax'.padStart(10)} ${'std'.padStart(10)} ${'kurtosis'.padStart(10)}  outlier channels (|x|max / median)`);
  for (const s of r.sites) {
    const num = (x: number | null) => (x === null ? '-' : Number(x.toPrecision(4)).toString());
    const outliers = s.outlierChannels.slice(0, 4).map((c) => `${c.channel}(${c.ratio.toFixed(1)}×)`).join(' ');
    lines.push(`${s.key.padEnd(28)} ${num(s.stats.absMax).padStart(10)} ${num(s.stats.std).padStart(10)} ${num(s.stats.kurtosis).padStart(10)}  ${outliers}`);
  }
  ctx.stdout.write(`${lines.join('\n')}\n`);
}
