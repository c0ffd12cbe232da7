import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isDType, type DType } from '../../core/dtypes';
import { QuantLensError } from '../../core/errors';
import { importanceFor, readImportanceMatrix } from '../../core/imatrix';
import { convertForQuantize } from '../../core/model/convert';
import { isGgufTarget, quantizeToGguf } from '../../core/quantize/to-gguf';
import { checkpointStem, flag, hasFlag, parseArgs, pathTaken, toJson, type CliContext } from '../io';
import { KernelPool } from '../../kernel/pool';
import { poolTensorEncoder } from '../../kernel/pool-encoder';
import { TerminalProgress } from '../progress';
import { quantizeSafetensorsCommand, wantsSafetensors } from './quantize-safetensors';
import { splitLimits } from './split';

/**
 * `quantlens quantize <in> -o <out> --type T [--pure] [--allow-requantize] [--imatrix F] [--format gguf] [--tensor-type REGEX=TYPE]...
 *  [--output-tensor-type T] [--token-embedding-type T] [--split-max-tensors N | --split-max-size N[M|G]] [--json]`;
 * a scheme name as --type, --plan, --fake-quant or --format safetensors: see quantize-safetensors.ts.
 */
export async function quantizeCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, {
    values: ['type', 'o', 'output', 'format', 'imatrix', 'tensor-type', 'output-tensor-type', 'token-embedding-type', 'split-max-tensors', 'split-max-size', 'plan', 'shard-size'],
    booleans: ['pure', 'json', 'fake-quant', 'allow-requantize'],
    aliases: { '-o': '--output' },
  });
  if (p.positional.length !== 1) throw new QuantLensError('USAGE', 'quantize takes one input checkpoint');
  const input = p.positional[0];
  if (wantsSafetensors(p)) return quantizeSafetensorsCommand(ctx, p, input);
  const type = flag(p, 'type');
  if (!type) throw new QuantLensError('USAGE', 'quantize needs --type');
  const format = flag(p, 'format') ?? 'gguf';
  if (format !== 'gguf') throw new QuantLensError('USAGE', `--format ${format}: quantize writes gguf or safetensors`);
  if (!isGgufTarget(type)) throw new QuantLensError('USAGE', `--type ${type} is not a GGUF type or llama.cpp preset`);
  const output = flag(p, 'output') ?? defaultOutputPath(input, type);
  if (pathTaken(output)) throw new QuantLensError('USAGE', `${output} exists; QuantLens never overwrites a file`);
  const imatrixPath = flag(p, 'imatrix');
  const imatrix = imatrixPath === undefined ? undefined : await readImportanceMatrix(imatrixPath, { signal: ctx.signal });
  const progress = new TerminalProgress(ctx.stderr);
  const pool = new KernelPool();
  // A Hugging Face Llama folder is first converted as llama.cpp's converter does (names, q/k order, llama.* keys, tokenizer).
  const converted = await convertForQuantize(input, output, ctx.signal);
  const result = await quantizeToGguf(converted ?? input, output, {
    encoder: poolTensorEncoder(pool),
    type,
    importance: imatrix && ((name) => importanceFor(imatrix, name)?.weights),
    pure: hasFlag(p, 'pure'),
    allowRequantize: hasFlag(p, 'allow-requantize'),
    tensorTypes: (p.flags.get('tensor-type') ?? []).map(parseTensorType),
    outputTensorType: dtypeFlag(flag(p, 'output-tensor-type')),
    tokenEmbeddingType: dtypeFlag(flag(p, 'token-embedding-type')),
    split: splitLimits(flag(p, 'split-max-tensors'), flag(p, 'split-max-size')),
    signal: ctx.signal,
    onProgress: (pr) => progress.update(pr.bytesTotal ? pr.bytesDone / pr.bytesTotal : 1, pr.tensor),
  }).finally(async () => {
    pool.dispose();
    if (converted) await rm(converted, { force: true });
  });
  progress.done();
  if (hasFlag(p, 'json')) {
    ctx.stdout.write(`${toJson(result)}\n`);
    return;
  }
  for (const d of result.diagnostics) ctx.stderr.write(`${d.severity}[${d.code}]: ${d.tensor}: ${d.message}\n`);
  ctx.stdout.write(`${result.outputs.join(', ')}: ${result.ftype}, ${result.bytes.toLocaleString('en-US')} bytes of tensors, ${result.bitsPerWeight.toFixed(3)} bits per weight\n`);
}

/** `model-Q4_K_M.gguf` next to the input (a folder input: next to the folder). */
export function defaultOutputPath(input: string, type: string): string {
  return join(dirname(input), `${checkpointStem(input)}-${type}.gguf`);
}

function parseTensorType(s: string): { pattern: RegExp; type: DType } {
  const at = s.lastIndexOf('=');
  const type = dtypeFlag(s.slice(at + 1));
  if (at <= 0 || !type) throw new QuantLensError('USAGE', `--tensor-type wants REGEX=TYPE, got ${s}`);
  try {
    return { pattern: new RegExp(s.slice(0, at)), type };
  } catch (err) {
    throw new QuantLensError('USAGE', `--tensor-type ${s}: ${(err as Error).message}`);
  }
}

function dtypeFlag(v: string | undefined): DType | undefined {
  if (v === undefined) return undefined;
  const upper = v.toUpperCase();
  if (!isDType(upper)) throw new QuantLensError('USAGE', `unknown tensor type ${v}`);
  return upper;
}
