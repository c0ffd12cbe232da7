import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { QuantLensError } from '../../core/errors';
import { parseSize } from '../../core/plan/plan';
import { formatScheme, isSchemeName, parseScheme } from '../../core/quant/scheme';
import { quantizeToSafetensors, twinRtnQuantizer, type RtnQuantizer } from '../../core/quantize/to-safetensors';
import { isGgufTarget } from '../../core/quantize/to-gguf';
import { quantizeRtnWithKernel } from '../../kernel/rtn';
import { instantiateKernel } from '../../kernel/wasm';
import { checkpointStem, flag, hasFlag, pathTaken, toJson, type CliContext, type ParsedArgs } from '../io';
import { TerminalProgress } from '../progress';

/**
 * Whether `quantize` writes safetensors: `--format safetensors`, `--fake-quant`, a scheme name as
 * `--type` (int4-g128-sym, nf4-g64-dq, fp8-e4m3-ch, …), or a `--plan` without a GGUF type.
 */
export function wantsSafetensors(p: ParsedArgs): boolean {
  const format = flag(p, 'format');
  if (format !== undefined) return format === 'safetensors';
  const type = flag(p, 'type');
  if (hasFlag(p, 'fake-quant')) return true;
  if (type !== undefined) return isSchemeName(type) && !isGgufTarget(type);
  return hasFlag(p, 'plan');
}

/** `model-int4-g128-sym/` next to the input (a folder input: next to the folder). */
export function defaultSafetensorsOutput(input: string, name: string): string {
  return join(dirname(input), `${checkpointStem(input)}-${name}`);
}

/** A plan JSON (`quantlens plan --json`): its `assignment`, tensor name → scheme. */
function readPlan(path: string): Record<string, string> {
  let plan: { target?: unknown; assignment?: unknown };
  try {
    plan = JSON.parse(readFileSync(path, 'utf8')) as typeof plan;
  } catch (err) {
    throw new QuantLensError('USAGE', `--plan ${path}: ${(err as Error).message}`, { file: path });
  }
  if (plan.target !== undefined && plan.target !== 'safetensors') {
    throw new QuantLensError('USAGE', `--plan ${path} targets ${String(plan.target)}; quantize --plan writes plans for safetensors targets`, { file: path });
  }
  const a = plan.assignment;
  if (!a || typeof a !== 'object' || Array.isArray(a) || !Object.values(a).every((v) => typeof v === 'string')) {
    throw new QuantLensError('USAGE', `--plan ${path} has no assignment of tensor names to schemes`, { file: path });
  }
  return a as Record<string, string>;
}

/** The kernel's RTN quantizers when the built kernel has them (bit-identical to the twin), else the twin. */
function rtnQuantizer(): RtnQuantizer {
  const kernel = instantiateKernel();
  if (!kernel.exports.rtnIntQuantize || !kernel.exports.rtnNf4Quantize) return twinRtnQuantizer;
  return (x, rows, cols, scheme) => quantizeRtnWithKernel(kernel, x, rows, cols, scheme);
}

/** `quantize <in> [-o <out/>] (--type SCHEME | --plan plan.json) [--format safetensors] [--fake-quant] [--shard-size 5GB] [--json]` */
export async function quantizeSafetensorsCommand(ctx: CliContext, p: ParsedArgs, input: string): Promise<void> {
  const type = flag(p, 'type');
  const planPath = flag(p, 'plan');
  if ((type === undefined) === (planPath === undefined)) throw new QuantLensError('USAGE', 'quantize to safetensors needs --type SCHEME or --plan plan.json');
  const scheme = type === undefined ? undefined : formatScheme(parseScheme(type));
  const fakeQuant = hasFlag(p, 'fake-quant');
  const name = `${scheme ?? 'plan'}${fakeQuant ? '-fake' : ''}`;
  const output = flag(p, 'output') ?? defaultSafetensorsOutput(input, name);
  if (pathTaken(output)) throw new QuantLensError('USAGE', `${output} exists; QuantLens never overwrites`);
  const shardSize = flag(p, 'shard-size');
  const progress = new TerminalProgress(ctx.stderr);
  const result = await quantizeToSafetensors(input, output, {
    ...(scheme !== undefined ? { scheme } : { plan: readPlan(planPath!) }),
    fakeQuant,
    ...(shardSize !== undefined && { shardBytes: parseSize(shardSize) }),
    quantizer: rtnQuantizer(),
    signal: ctx.signal,
    onProgress: (pr) => progress.update(pr.bytesTotal ? pr.bytesDone / pr.bytesTotal : 1, pr.tensor),
  });
  progress.done();
  if (hasFlag(p, 'json')) {
    ctx.stdout.write(`${toJson(result)}\n`);
    return;
  }
  for (const d of result.diagnostics) ctx.stderr.write(`${d.severity}[${d.code}]: ${d.tensor ? `${d.tensor}: ` : ''}${d.message}\n`);
  const quantized = result.tensors.filter((t) => t.scheme !== null).length;
  ctx.stdout.write(`${output}: ${result.layout}, ${quantized} tensors quantized, ${result.bytes.toLocaleString('en-US')} bytes of tensors, ${result.bitsPerWeight.toFixed(3)} bits per weight\n`);
}
