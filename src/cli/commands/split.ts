import { QuantLensError } from '../../core/errors';
import { parseSplitSize, splitGguf } from '../../core/gguf/split';
import type { SplitLimits } from '../../core/gguf/output';
import { flag, parseArgs, type CliContext } from '../io';

/** `quantlens split <in.gguf> <out-prefix> (--split-max-tensors N | --split-max-size N[M|G])`, like llama-gguf-split --split. */
export async function splitCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { values: ['split-max-tensors', 'split-max-size'] });
  if (p.positional.length !== 2) throw new QuantLensError('USAGE', 'split takes an input GGUF and an output prefix');
  const limits = splitLimits(flag(p, 'split-max-tensors'), flag(p, 'split-max-size'));
  if (!limits) throw new QuantLensError('USAGE', 'split needs --split-max-tensors or --split-max-size');
  const paths = await splitGguf(p.positional[0], p.positional[1], limits, { signal: ctx.signal });
  ctx.stdout.write(`${paths.join('\n')}\n`);
}

export function splitLimits(maxTensors: string | undefined, maxSize: string | undefined): SplitLimits | undefined {
  if (maxTensors === undefined && maxSize === undefined) return undefined;
  const limits: SplitLimits = {};
  if (maxTensors !== undefined) {
    const n = Number(maxTensors);
    if (!Number.isInteger(n) || n < 1) throw new QuantLensError('USAGE', `--split-max-tensors wants a positive integer, got ${maxTensors}`);
    limits.maxTensors = n;
  }
  if (maxSize !== undefined) limits.maxBytes = parseSplitSize(maxSize);
  return limits;
}
