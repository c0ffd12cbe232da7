/**
 * The ONNX side of `calibrate`, `sensitivity --mode outputs`, `quantize --type int8-qdq|int4-matmulnbits`
 * and `eval`: main.ts routes a command here when one of its arguments is a .onnx file. Models run in
 * ONNX Runtime (WebAssembly) in the kernel pool's workers.
 *
 *   quantlens calibrate model.onnx --inputs PATH… [--json]
 *   quantlens sensitivity model.onnx --inputs PATH… --mode outputs [--types T,..] [--activations] [--json]
 *   quantlens quantize model.onnx -o out.onnx --type int8-qdq|int4-matmulnbits [--activations] [--range minmax|percentile|mse]
 *                      [--plan plan.json] [--inputs PATH…] [--json]
 *   quantlens eval out.onnx --base model.onnx --inputs PATH… [--json]
 * Inputs: --inputs PATH (files or folders of .npy/.npz/.png/.jpg/.wav; repeatable) or --synthetic N;
 * --dim NAME=N for symbolic dims, --value NAME=V for constant inputs, --input NAME (the input files feed),
 * images: --mean a,b,c --std a,b,c --scale S --channel-order rgb|bgr --resize stretch|pad;
 * audio: --sample-rate HZ --window N --hop N (Silero VAD v5: --window 576 --hop 512); --max-samples N; --workers N.
 */
import { readFile } from 'node:fs/promises';
import { QuantLensError } from '../../core/errors';
import { FileByteSource } from '../../core/bytesource';
import { calibrateOnnx, type OnnxCalibration } from '../../core/onnx/calibrate';
import { evaluateOnnx, type OnnxEvalResult } from '../../core/onnx/evaluate';
import { inputSignature, parseDimFlags } from '../../core/onnx/feeds';
import { ONNX_QUANT_TYPES, quantizeOnnx, type OnnxQuantType, type RangeMethod } from '../../core/onnx/quantize';
import { loadCalibrationSet, syntheticSamples, type CalibrationSet, type ImageOptions, type SampleOptions } from '../../core/onnx/samples';
import { onnxOutputSensitivity } from '../../core/onnx/sensitivity';
import { readOnnxModel } from '../../core/readers/onnx';
import { poolOnnxRunner } from '../../kernel/onnx';
import { KernelPool } from '../../kernel/pool';
import { type CliCommand, type CliContext, flag, hasFlag, parseArgs, type ParsedArgs, pathTaken, toJson } from '../io';
import { TerminalProgress } from '../progress';

const INPUT_VALUES = ['inputs', 'synthetic', 'dim', 'value', 'input', 'mean', 'std', 'scale', 'channel-order', 'resize', 'sample-rate', 'window', 'hop', 'max-samples', 'workers'];

function numberFlag(p: ParsedArgs, name: string): number | undefined {
  const v = flag(p, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new QuantLensError('USAGE', `--${name} wants a number, got ${v}`);
  return n;
}

function numbers(p: ParsedArgs, name: string): number[] | undefined {
  const v = flag(p, name);
  if (v === undefined) return undefined;
  const list = v.split(',').map(Number);
  if (list.some((n) => !Number.isFinite(n))) throw new QuantLensError('USAGE', `--${name} wants numbers separated by commas, got ${v}`);
  return list;
}

function sampleOptions(p: ParsedArgs, signal: AbortSignal): SampleOptions {
  const values = new Map<string, number>();
  for (const v of p.flags.get('value') ?? []) {
    const at = v.lastIndexOf('=');
    const n = Number(v.slice(at + 1));
    if (at <= 0 || !Number.isFinite(n)) throw new QuantLensError('USAGE', `--value wants NAME=NUMBER, got ${v}`);
    values.set(v.slice(0, at), n);
  }
  const image: Partial<ImageOptions> = {};
  const mean = numbers(p, 'mean');
  const std = numbers(p, 'std');
  const scale = numberFlag(p, 'scale');
  if (mean) image.mean = mean;
  if (std) image.std = std;
  if (scale !== undefined) image.scale = scale;
  const order = flag(p, 'channel-order');
  if (order !== undefined) {
    if (order !== 'rgb' && order !== 'bgr') throw new QuantLensError('USAGE', `--channel-order is rgb or bgr, got ${order}`);
    image.channelOrder = order;
  }
  const resize = flag(p, 'resize');
  if (resize !== undefined) {
    if (resize !== 'stretch' && resize !== 'pad') throw new QuantLensError('USAGE', `--resize is stretch or pad, got ${resize}`);
    image.resize = resize;
  }
  return {
    dims: parseDimFlags(p.flags.get('dim') ?? []),
    values,
    primaryInput: flag(p, 'input'),
    image,
    sampleRate: numberFlag(p, 'sample-rate'),
    audioWindow: numberFlag(p, 'window'),
    audioHop: numberFlag(p, 'hop'),
    maxSamples: numberFlag(p, 'max-samples'),
    signal,
  };
}

/** The calibration set of a command: files from --inputs (and extra positionals), or --synthetic N. */
async function calibrationSet(model: string, p: ParsedArgs, extraPaths: string[], signal: AbortSignal, required: boolean): Promise<CalibrationSet | undefined> {
  const src = await FileByteSource.open(model);
  let signature;
  try {
    signature = inputSignature((await readOnnxModel(src, { signal })).graph);
  } finally {
    await src.close();
  }
  const options = sampleOptions(p, signal);
  const paths = [...(p.flags.get('inputs') ?? []), ...extraPaths];
  const synthetic = numberFlag(p, 'synthetic');
  if (paths.length > 0) return loadCalibrationSet(signature, paths, options);
  if (synthetic !== undefined) return syntheticSamples(signature, synthetic, options);
  if (required) throw new QuantLensError('USAGE', 'give calibration inputs with --inputs PATH (or --synthetic N, a weaker proxy)');
  return undefined;
}

function poolOf(p: ParsedArgs): KernelPool {
  const workers = numberFlag(p, 'workers');
  return new KernelPool(workers !== undefined ? { size: workers } : {});
}

function describeSet(ctx: CliContext, set: CalibrationSet): void {
  ctx.stderr.write(`${set.samples.length} calibration samples from ${set.sources.join(', ')}${set.filledInputs.length ? ` (filled: ${set.filledInputs.join(', ')})` : ''}\n`);
  if (set.synthetic) ctx.stderr.write('warning: synthetic inputs are a weaker proxy for real data: ranges and sensitivities may differ on real inputs\n');
}

const fmt = (v: number | null | undefined, digits = 3) => (v === null || v === undefined ? '-' : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : v.toFixed(digits));

async function calibrate(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { values: [...INPUT_VALUES, 'bins'], booleans: ['json'] });
  const [model, ...rest] = p.positional;
  if (!model) throw new QuantLensError('USAGE', 'calibrate takes an .onnx model');
  const set = (await calibrationSet(model, p, rest, ctx.signal, true))!;
  describeSet(ctx, set);
  const pool = poolOf(p);
  const progress = new TerminalProgress(ctx.stderr);
  let result: OnnxCalibration;
  try {
    result = await calibrateOnnx(model, set, poolOnnxRunner(pool), {
      bins: numberFlag(p, 'bins'),
      signal: ctx.signal,
      onProgress: (stage, d, t) => progress.update((stage === 'scan' ? 0 : 0.5) + d / t / 2, stage),
    });
  } finally {
    pool.dispose();
    progress.done();
  }
  if (hasFlag(p, 'json')) {
    ctx.stdout.write(`${toJson(result)}\n`);
    return;
  }
  ctx.stdout.write(`${result.activations.length} activations over ${result.samples} samples${result.synthetic ? ' (synthetic)' : ''}\n`);
  ctx.stdout.write(`${'#'.padStart(4)}  ${'node'.padEnd(32)} ${'op'.padEnd(20)} ${'absmax'.padStart(10)} ${'std'.padStart(10)} ${'kurtosis'.padStart(10)} ${'>6σ'.padStart(9)}\n`);
  for (const l of result.layers) {
    ctx.stdout.write(
      `${String(l.index).padStart(4)}  ${l.node.slice(0, 32).padEnd(32)} ${l.opType.slice(0, 20).padEnd(20)} ${fmt(l.absMax).padStart(10)} ${fmt(l.std).padStart(10)} ${fmt(l.kurtosis, 1).padStart(10)} ${fmt(l.outlierShare, 5).padStart(9)}\n`,
    );
  }
  const withOutliers = result.channelOutliers.filter((c) => c.outliers.length > 0);
  ctx.stdout.write(`\noutlier channels (absmax > 6 × median) in ${withOutliers.length} of ${result.channelOutliers.length} Conv/MatMul/Gemm inputs\n`);
  for (const c of withOutliers) {
    ctx.stdout.write(`  ${c.node} (${c.opType}) input ${c.input}: ${c.outliers.slice(0, 5).map((o) => `ch ${o.channel} ×${fmt(o.ratio, 1)}`).join(', ')}${c.outliers.length > 5 ? ` … ${c.outliers.length} in all` : ''}\n`);
  }
  if (result.subgraphNodes.length) ctx.stdout.write(`values inside the subgraphs of ${result.subgraphNodes.join(', ')} are not captured\n`);
}

/** A flag's value read before parsing (to route to the generic command, whose flags differ). */
function rawFlag(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i]!.startsWith(`--${name}=`)) return args[i]!.slice(name.length + 3);
  }
  return undefined;
}

async function sensitivity(ctx: CliContext): Promise<void> {
  if ((rawFlag(ctx.args, 'mode') ?? 'outputs') !== 'outputs') return (await import('./sensitivity')).sensitivityCommand(ctx);
  const p = parseArgs(ctx.args, { values: [...INPUT_VALUES, 'mode', 'types'], booleans: ['json', 'activations'] });
  const [model, ...rest] = p.positional;
  if (!model) throw new QuantLensError('USAGE', 'sensitivity takes an .onnx model');
  const set = (await calibrationSet(model, p, rest, ctx.signal, true))!;
  describeSet(ctx, set);
  const pool = poolOf(p);
  const runner = poolOnnxRunner(pool);
  const progress = new TerminalProgress(ctx.stderr);
  try {
    const activations = hasFlag(p, 'activations');
    const calibration = activations ? await calibrateOnnx(model, set, runner, { signal: ctx.signal }) : undefined;
    const result = await onnxOutputSensitivity(model, set, runner, {
      types: flag(p, 'types')?.split(','),
      activations,
      calibration,
      signal: ctx.signal,
      onProgress: (d, t, label) => progress.update(d / t, label),
    });
    progress.done();
    if (hasFlag(p, 'json')) {
      ctx.stdout.write(`${toJson(result)}\n`);
      return;
    }
    ctx.stdout.write(`output sensitivity of ${result.layers.length} layers on ${result.samples} samples (most sensitive first)${activations ? ', activations int8 per tensor' : ''}\n`);
    ctx.stdout.write(`${'weight'.padEnd(36)} ${'op'.padEnd(6)} ${result.types.map((t) => `${t} dB`.padStart(18) + ' top-1'.padStart(7)).join('')}\n`);
    const byName = new Map(result.layers.map((l) => [l.weight, l]));
    for (const name of result.ranking) {
      const l = byName.get(name)!;
      const cells = result.types.map((t) => {
        const f = l.formats[t];
        return (f ? fmt(f.outputSqnrDb, 1) : 'n/a').padStart(18) + (f?.top1Agreement !== null && f?.top1Agreement !== undefined ? (f.top1Agreement * 100).toFixed(0) + '%' : '-').padStart(7);
      });
      ctx.stdout.write(`${name.slice(0, 36).padEnd(36)} ${l.opType.padEnd(6)} ${cells.join('')}\n`);
    }
  } finally {
    pool.dispose();
    progress.done();
  }
}

/** A plan JSON's `assignment` (weight name → format); the weights it does not name are kept in float. */
async function readPlanAssignment(planPath: string): Promise<Record<string, string>> {
  let plan: unknown;
  try {
    plan = JSON.parse(await readFile(planPath, 'utf8'));
  } catch (err) {
    throw new QuantLensError('INVALID_JSON', `${planPath}: ${(err as Error).message}`, { file: planPath });
  }
  const assignment = (plan as { assignment?: unknown }).assignment;
  if (!assignment || typeof assignment !== 'object') throw new QuantLensError('INVALID_JSON', `${planPath} has no "assignment" object`, { file: planPath });
  return assignment as Record<string, string>;
}

function writeEval(ctx: CliContext, e: OnnxEvalResult): void {
  for (const o of e.outputs) {
    ctx.stdout.write(
      `  ${o.name}: SQNR ${fmt(o.sqnrDb, 2)} dB, relative MSE ${fmt(o.relMse)}, max abs error ${fmt(o.maxAbsErr)}${o.top1Agreement !== null ? `, top-1 agreement ${(o.top1Agreement * 100).toFixed(1)}% of ${o.rows}` : ''}\n`,
    );
  }
}

async function quantize(ctx: CliContext): Promise<void> {
  const type = rawFlag(ctx.args, 'type');
  if (!type || !ONNX_QUANT_TYPES.includes(type as OnnxQuantType)) return (await import('./quantize')).quantizeCommand(ctx);
  const p = parseArgs(ctx.args, {
    values: [...INPUT_VALUES, 'type', 'output', 'plan', 'range', 'percentile', 'block-size'],
    booleans: ['json', 'activations', 'asym'],
    aliases: { '-o': '--output' },
  });
  const [model, ...rest] = p.positional;
  const output = flag(p, 'output');
  if (!model || !output) throw new QuantLensError('USAGE', 'quantize model.onnx -o out.onnx --type int8-qdq|int4-matmulnbits');
  if (pathTaken(output)) throw new QuantLensError('USAGE', `${output} exists; QuantLens never overwrites a file`);
  const range = (flag(p, 'range') ?? 'minmax') as RangeMethod;
  if (!['minmax', 'percentile', 'mse'].includes(range)) throw new QuantLensError('USAGE', `--range is minmax, percentile or mse, got ${range}`);
  const activations = hasFlag(p, 'activations');
  const set = await calibrationSet(model, p, rest, ctx.signal, activations);
  if (set) describeSet(ctx, set);
  const pool = poolOf(p);
  const runner = poolOnnxRunner(pool);
  try {
    const calibration = activations && set ? await calibrateOnnx(model, set, runner, { signal: ctx.signal }) : undefined;
    let keepFloat: Set<string> | undefined;
    const planPath = flag(p, 'plan');
    if (planPath) {
      const assignment = await readPlanAssignment(planPath);
      const { findWeights } = await import('../../core/onnx/graph-edit');
      const src = await FileByteSource.open(model);
      try {
        const weights = findWeights(await readOnnxModel(src));
        keepFloat = new Set(weights.filter((w) => !(w.name in assignment)).map((w) => w.name));
      } finally {
        await src.close();
      }
    }
    const result = await quantizeOnnx(model, output, {
      type: type as OnnxQuantType,
      activations,
      calibration,
      rangeMethod: range,
      percentile: numberFlag(p, 'percentile'),
      keepFloat,
      blockSize: numberFlag(p, 'block-size'),
      asymmetric: hasFlag(p, 'asym'),
      signal: ctx.signal,
    });
    const evaluation = set ? await evaluateOnnx(model, output, set, runner, { signal: ctx.signal }) : undefined;
    if (hasFlag(p, 'json')) {
      ctx.stdout.write(`${toJson({ ...result, evaluation })}\n`);
      return;
    }
    ctx.stdout.write(
      `${output}: ${result.quantized.length} weights quantized (${type}${activations ? `, activations uint8 from ${range} ranges` : ''}), ${result.keptFloat.length} kept in float, opset ${result.opsetFrom} → ${result.opsetTo}, ${result.bytes.toLocaleString('en-US')} bytes\n`,
    );
    if (evaluation) {
      ctx.stdout.write(`outputs against ${model} on ${evaluation.samples} samples:\n`);
      writeEval(ctx, evaluation);
    }
  } finally {
    pool.dispose();
  }
}

async function evaluate(ctx: CliContext): Promise<void> {
  const p = parseArgs(ctx.args, { values: [...INPUT_VALUES, 'base'], booleans: ['json'] });
  const [candidate, ...rest] = p.positional;
  const base = flag(p, 'base');
  if (!candidate || !base) throw new QuantLensError('USAGE', 'eval out.onnx --base model.onnx --inputs PATH…');
  const set = (await calibrationSet(base, p, rest, ctx.signal, true))!;
  describeSet(ctx, set);
  const pool = poolOf(p);
  try {
    const result = await evaluateOnnx(base, candidate, set, poolOnnxRunner(pool), { signal: ctx.signal });
    if (hasFlag(p, 'json')) {
      ctx.stdout.write(`${toJson(result)}\n`);
      return;
    }
    ctx.stdout.write(`${candidate} against ${base} on ${result.samples} samples${result.synthetic ? ' (synthetic)' : ''}:\n`);
    writeEval(ctx, result);
  } finally {
    pool.dispose();
  }
}

const HANDLERS: Record<string, CliCommand> = { calibrate, sensitivity, quantize, eval: evaluate };

/** The ONNX handler of a command main.ts routed here. */
export function onnxCommand(name: string): CliCommand {
  const handler = HANDLERS[name];
  if (!handler) throw new QuantLensError('USAGE', `${name} has no ONNX form`);
  return handler;
}
