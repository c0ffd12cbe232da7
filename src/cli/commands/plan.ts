import { writeFile } from 'node:fs/promises';
import { QuantLensError } from '../../core/errors';
import { compressedTensorsConfig, llamaQuantizeRecipe, planToJson, shellCommand } from '../../core/plan/export';
import { parsePin, parseSize, planMixedPrecision, planTensorsFromSensitivity, type Budget } from '../../core/plan/plan';
import { formatBytes } from '../../core/summary';
import { flag, hasFlag, parseArgs, toJson, type CliContext } from '../io';
import { SWEEP_BOOLEANS, SWEEP_VALUES, sweepFromArgs } from './sensitivity';

function budgetOf(bpw: string | undefined, size: string | undefined): Budget {
  if ((bpw === undefined) === (size === undefined)) throw new QuantLensError('USAGE', 'plan needs one budget: --bpw X or --size N[GB|GiB|MB]');
  if (bpw !== undefined) {
    const value = Number(bpw);
    if (!(value > 0 && value <= 32)) throw new QuantLensError('USAGE', `--bpw must be a number of bits per weight in (0, 32], got ${bpw}`);
    return { kind: 'bitsPerWeight', value };
  }
  return { kind: 'bytes', value: parseSize(size!) };
}

/**
 * `quantlens plan <file> (--bpw X | --size N[GB|GiB|MB]) [--types ..] [--imatrix F] [--pin REGEX=TYPE]..
 * [--exclude REGEX].. [--json] [-o plan.json] [--emit llama|compressed-tensors]`: a format per tensor
 * under the budget, from a sensitivity sweep.
 */
export async function planCommand(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, {
    values: [...SWEEP_VALUES, 'bpw', 'size', 'pin', 'exclude', 'emit', 'output'],
    booleans: [...SWEEP_BOOLEANS, 'json'],
    aliases: { '-o': '--output' },
  });
  if (p.positional.length !== 1) throw new QuantLensError('USAGE', 'plan takes one file or folder');
  const budget = budgetOf(flag(p, 'bpw'), flag(p, 'size'));
  const emit = flag(p, 'emit');
  if (emit !== undefined && emit !== 'llama' && emit !== 'compressed-tensors') throw new QuantLensError('USAGE', `--emit must be llama or compressed-tensors, got ${emit}`);
  const pins = (p.flags.get('pin') ?? []).map(parsePin);
  const exclude = p.flags.get('exclude') ?? [];

  const sweep = await sweepFromArgs(ctx, p, emit === 'compressed-tensors' ? 'safetensors' : 'gguf');
  if (emit === 'llama' && sweep.target !== 'gguf') throw new QuantLensError('USAGE', '--emit llama needs GGUF types (--target gguf)');
  if (emit === 'compressed-tensors' && sweep.target !== 'safetensors') throw new QuantLensError('USAGE', '--emit compressed-tensors needs scheme types (--target safetensors)');
  const plan = planMixedPrecision(planTensorsFromSensitivity(sweep), sweep.target, sweep.mode, { budget, pins, exclude });

  const output = flag(p, 'output');
  const json = planToJson(plan);
  let recipe: Record<string, unknown> | undefined;
  let recipeText = '';
  if (emit === 'llama') {
    const r = llamaQuantizeRecipe(plan, { imatrix: flag(p, 'imatrix') });
    const typeFile = output ? `${output.replace(/\.json$/i, '')}.tensor-types.txt` : undefined;
    if (typeFile) await writeOutput(typeFile, r.tensorTypeFile);
    recipe = { baseType: r.baseType, args: r.args, command: r.command, tensorTypeFile: typeFile ?? r.tensorTypeFile };
    recipeText = typeFile
      ? `${shellCommand(['llama-quantize', ...r.argsWithFile.map((a) => (a === '<file>' ? typeFile : a)), ...r.positional])}\n`
      : `${r.command}\n`;
  } else if (emit === 'compressed-tensors') {
    recipe = { quantization_config: compressedTensorsConfig(plan) };
    recipeText = `${toJson(recipe)}\n`;
  }
  if (output) await writeOutput(output, `${toJson(json)}\n`);

  if (hasFlag(p, 'json')) {
    ctx.stdout.write(`${toJson(recipe ? { ...json, recipe } : json)}\n`);
    return;
  }
  const counts = new Map<string, number>();
  for (const f of Object.values(plan.assignment)) counts.set(f, (counts.get(f) ?? 0) + 1);
  const out = [
    `plan for ${plan.target}: ${plan.bitsPerWeight.toFixed(3)} bits per weight, ${formatBytes(plan.bytes)} (${plan.bytes.toLocaleString('en-US')} bytes) within ${budget.kind === 'bitsPerWeight' ? `${budget.value} bpw` : `${budget.value.toLocaleString('en-US')} bytes`}`,
    `estimated error ${plan.estimatedError.toExponential(4)} (${plan.errorUnit}), at most ${plan.gap.toExponential(2)} above the optimum${sweep.cached ? '; sensitivity from the cache' : ''}`,
    `formats: ${[...counts.entries()].sort((a, b) => b[1] - a[1]).map(([f, n]) => `${f} ×${n}`).join(', ')}${Object.keys(plan.kept).length ? `; kept as is ×${Object.keys(plan.kept).length}` : ''}`,
    'uniform formats for comparison (bits per weight → error):',
    ...plan.uniform.map((u) => `  ${u.format.padEnd(16)} ${u.bitsPerWeight.toFixed(3).padStart(7)}  ${u.error.toExponential(4)}`),
    ...plan.warnings.map((w) => `warning: ${w}`),
  ];
  if (output) out.push(`plan written to ${output}${emit === 'llama' ? `, tensor types to ${output.replace(/\.json$/i, '')}.tensor-types.txt` : ''}`);
  ctx.stdout.write(`${out.join('\n')}\n${recipeText}`);
}

async function writeOutput(path: string, text: string): Promise<void> {
  try {
    await writeFile(path, text);
  } catch (err) {
    throw new QuantLensError('OUTPUT', `cannot write ${path}: ${(err as Error).message}`, { file: path, cause: err });
  }
}
