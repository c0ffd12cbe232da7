import { basename } from 'node:path';
import { AtomicOutput } from '../../core/atomic-output';
import { QuantLensError } from '../../core/errors';
import { calibrate, encodeImatrixGguf, type CalibrationResult } from '../../core/model/calibrate';
import { readEvalText } from '../../core/model/eval';
import { LlamaModel } from '../../core/model/llama';
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
  const text = await readEvalText(textPath);
  const model = await LlamaModel.load(p.positional[0], { signal: ctx.signal });
  const progress = new TerminalProgress(ctx.stderr);
  let r: CalibrationResult;
  try {
    r = await calibrate(model, text, {
      ctx: n,
      chunks,
      mode,
      processOutput: hasFlag(p, 'process-output'),
      signal: ctx.signal,
      onProgress: (done, total) => progress.update(done / total, `chunk ${done}/${total}`),
    });
  } finally {
    progress.done();
  }
  if (outPath) {
    const bytes = encodeImatrixGguf(r.imatrix, { datasets: [basename(textPath)], chunkCount: r.chunks, chunkSize: r.ctx });
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
        imatrix: [...r.imatrix].map(([name, e]) => ({ name, columns: e.sum2.length, count: e.count })),
        sites: [...r.sites.values()].map((s) => s.summary()),
      })}\n`,
    );
    return;
  }
  const lines = [`${r.chunks} chunks of ${r.ctx} tokens (${mode} mode), PPL = ${r.ppl.toFixed(4)}; importance matrix of ${r.imatrix.size} weights${outPath ? ` written to ${outPath}` : ''}`];
  lines.push(`${'site'.padEnd(28)} ${'absMax'.padStart(10)} ${'std'.padStart(10)} ${'kurtosis'.padStart(10)}  outlier channels (|x|max / median)`);
  for (const acc of r.sites.values()) {
    const s = acc.summary();
    const num = (x: number | null) => (x === null ? '-' : Number(x.toPrecision(4)).toString());
    const outliers = s.outlierChannels.slice(0, 4).map((c) => `${c.channel}(${c.ratio.toFixed(1)}×)`).join(' ');
    lines.push(`${s.key.padEnd(28)} ${num(s.stats.absMax).padStart(10)} ${num(s.stats.std).padStart(10)} ${num(s.stats.kurtosis).padStart(10)}  ${outliers}`);
  }
  ctx.stdout.write(`${lines.join('\n')}\n`);
}
