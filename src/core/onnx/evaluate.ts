/**
 * How far a quantized model's outputs are from the float model's on the calibration samples:
 * per graph output, SQNR, relative MSE, max abs error, cosine (compare.ts ErrorAccumulator over all
 * samples), and for classifier-like outputs ([classes] or [batch, classes], classes ≥ 2) the share of
 * rows whose argmax agrees.
 */
import { FileByteSource, readInto } from '../bytesource';
import { ErrorAccumulator, type TensorError } from '../compare';
import { QuantLensError } from '../errors';
import type { OnnxFeed, Sample } from './feeds';
import { modelBytes, type OnnxRunner, type RunnerOptions } from './runner';
import type { CalibrationSet } from './samples';

export interface OutputComparison extends TensorError {
  name: string;
  /** share of rows with the same argmax; null unless the output is [classes] or [batch, classes] */
  top1Agreement: number | null;
  rows: number;
}

export interface OnnxEvalResult {
  base: string;
  candidate: string;
  samples: number;
  synthetic: boolean;
  outputs: OutputComparison[];
}

function asF32(f: OnnxFeed): Float32Array {
  if (f.data instanceof Float32Array) return f.data;
  if (f.data instanceof BigInt64Array) return Float32Array.from(f.data, (v) => Number(v));
  return Float32Array.from(f.data as ArrayLike<number>);
}

function argmax(v: Float32Array, at: number, n: number): number {
  let best = at;
  for (let i = at + 1; i < at + n; i++) if (v[i]! > v[best]!) best = i;
  return best - at;
}

/** Compares outputs sample by sample, matched by name. */
export function compareOutputs(base: readonly OnnxFeed[][], candidate: readonly OnnxFeed[][]): OutputComparison[] {
  if (base.length !== candidate.length) throw new QuantLensError('INTERNAL', `${base.length} base results, ${candidate.length} candidate results`);
  const names = (base[0] ?? []).map((f) => f.name);
  return names.map((name) => {
    const acc = new ErrorAccumulator();
    let rows = 0;
    let agree = 0;
    let classifier = true;
    for (let s = 0; s < base.length; s++) {
      const a = base[s]!.find((f) => f.name === name);
      const b = candidate[s]!.find((f) => f.name === name);
      if (!a || !b) throw new QuantLensError('INVALID_SHAPE', `output ${name} is missing from one model's results`);
      if (a.data.length !== b.data.length) {
        throw new QuantLensError('INVALID_SHAPE', `output ${name}: [${a.dims.join(', ')}] against [${b.dims.join(', ')}]`);
      }
      const x = asF32(a);
      const y = asF32(b);
      acc.add(x, y);
      const last = a.dims[a.dims.length - 1] ?? 1;
      if (last < 2 || a.dims.length > 2 || x.length === 0) {
        classifier = false;
        continue;
      }
      for (let at = 0; at < x.length; at += last) {
        rows++;
        if (argmax(x, at, last) === argmax(y, at, last)) agree++;
      }
    }
    return { name, ...acc.result(), top1Agreement: classifier && rows > 0 ? agree / rows : null, rows };
  });
}

/** The graph outputs of the model at `path` over the samples. */
export async function runModelFile(path: string, samples: readonly Sample[], runner: OnnxRunner, options: RunnerOptions = {}): Promise<OnnxFeed[][]> {
  const src = await FileByteSource.open(path);
  try {
    const bytes = new Uint8Array(src.size);
    await readInto(src, 0, bytes);
    return await runner.run(modelBytes(bytes), samples, undefined, options);
  } finally {
    await src.close();
  }
}

/** Runs both models on the samples and compares their outputs. */
export async function evaluateOnnx(basePath: string, candidatePath: string, set: CalibrationSet, runner: OnnxRunner, options: RunnerOptions = {}): Promise<OnnxEvalResult> {
  const base = await runModelFile(basePath, set.samples, runner, options);
  const candidate = await runModelFile(candidatePath, set.samples, runner, options);
  return { base: basePath, candidate: candidatePath, samples: set.samples.length, synthetic: set.synthetic, outputs: compareOutputs(base, candidate) };
}
