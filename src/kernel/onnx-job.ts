/**
 * Worker side of the ONNX jobs: ONNX Runtime Web (WebAssembly, single-threaded: the pool supplies the
 * parallelism) loaded on the first ONNX job from dist/ort/, never from a network. Sessions are kept
 * per model key (the last few), so the scan and moments passes over the same model copy, and the
 * runs of one sensitivity variant, create their session once per worker.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Ort from 'onnxruntime-web';
import { QuantLensError, throwIfAborted } from '../core/errors';
import {
  momentsActivation, newMomentAccumulator, newScanAccumulator, scanActivation, type MomentAccumulator, type MomentParams, type ScanAccumulator,
} from '../core/onnx/activation-stats';
import type { FeedData, FeedType, OnnxFeed, Sample } from '../core/onnx/feeds';
import type { JobContext } from './jobs';
import { distDir } from './wasm';

/** A model copy to run: its bytes, and a key naming this exact copy (the session cache's key). */
export interface OnnxModelRef {
  key: string;
  bytes: Uint8Array;
}

/** Activations of `outputs` over `samples`, pass 1 (scan) or pass 2 (moments, with pass 1's parameters). */
export interface OnnxActivationsJob {
  model: OnnxModelRef;
  samples: Sample[];
  outputs: string[];
  pass:
    | { kind: 'scan'; channelAxes: Record<string, number> }
    | { kind: 'moments'; params: Record<string, MomentParams>; elementsBefore: Record<string, number> };
}

export type OnnxActivationsReply =
  | { kind: 'scan'; scans: Record<string, ScanAccumulator>; skipped: Record<string, string> }
  | { kind: 'moments'; moments: Record<string, MomentAccumulator> };

/** The model's outputs (or the named ones) for each sample. */
export interface OnnxRunJob {
  model: OnnxModelRef;
  samples: Sample[];
  outputs?: string[];
}

export interface OnnxRunReply {
  outputs: OnnxFeed[][];
}

type OrtModule = typeof Ort;
let ortModule: Promise<OrtModule> | undefined;

function loadOrt(): Promise<OrtModule> {
  // require, not import(): the bundler then takes the package's CommonJS Node build, which does not
  // depend on import.meta (empty in a CommonJS bundle)
  ortModule ??= Promise.resolve(require('onnxruntime-web') as OrtModule).then((ort) => {
    const dir = join(distDir, 'ort');
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = {
      mjs: pathToFileURL(join(dir, 'ort-wasm-simd-threaded.mjs')).href,
      wasm: pathToFileURL(join(dir, 'ort-wasm-simd-threaded.wasm')).href,
    };
    ort.env.logLevel = 'error';
    return ort;
  });
  return ortModule;
}

const SESSIONS_KEPT = 2;
const sessions = new Map<string, Promise<Ort.InferenceSession>>();

async function sessionFor(model: OnnxModelRef): Promise<Ort.InferenceSession> {
  let session = sessions.get(model.key);
  if (session) {
    sessions.delete(model.key);
    sessions.set(model.key, session); // most recently used last
    return session;
  }
  const ort = await loadOrt();
  session = ort.InferenceSession.create(model.bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 }).catch((err: unknown) => {
    sessions.delete(model.key);
    throw new QuantLensError('RUNTIME', `ONNX Runtime cannot load the model: ${errorText(err)}`, { cause: err });
  });
  sessions.set(model.key, session);
  while (sessions.size > SESSIONS_KEPT) {
    const [oldest, old] = sessions.entries().next().value as [string, Promise<Ort.InferenceSession>];
    sessions.delete(oldest);
    void old.then((s) => s.release()).catch(() => undefined);
  }
  return session;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function runOnce(ort: OrtModule, session: Ort.InferenceSession, sample: Sample, outputs: readonly string[]): Promise<Record<string, Ort.Tensor>> {
  const feeds: Record<string, Ort.Tensor> = {};
  for (const f of sample) feeds[f.name] = new ort.Tensor(f.type, f.data as Ort.Tensor.DataType, f.dims);
  try {
    return await session.run(feeds, [...outputs]);
  } catch (err) {
    throw new QuantLensError('RUNTIME', `ONNX Runtime failed to run the model: ${errorText(err)}`, { cause: err });
  }
}

const FEED_TYPES: ReadonlySet<string> = new Set<FeedType>(['float32', 'float64', 'int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'bool']);

export async function runOnnxActivationsJob(job: OnnxActivationsJob, ctx: JobContext): Promise<OnnxActivationsReply> {
  const ort = await loadOrt();
  const session = await sessionFor(job.model);
  const total = job.samples.length;
  if (job.pass.kind === 'scan') {
    const scans: Record<string, ScanAccumulator> = {};
    const skipped: Record<string, string> = {};
    for (const name of job.outputs) scans[name] = newScanAccumulator();
    for (const [i, sample] of job.samples.entries()) {
      throwIfAborted(ctx.signal);
      const results = await runOnce(ort, session, sample, job.outputs);
      for (const name of job.outputs) {
        const t = results[name];
        if (!t) continue;
        if (t.type !== 'float32') skipped[name] = t.type;
        else scanActivation(scans[name]!, t.data as Float32Array, t.dims, job.pass.channelAxes[name]);
        t.dispose();
      }
      ctx.progress(i + 1, total);
    }
    for (const name of Object.keys(skipped)) delete scans[name];
    return { kind: 'scan', scans, skipped };
  }
  const { params, elementsBefore } = job.pass;
  const names = job.outputs.filter((n) => params[n]);
  const moments: Record<string, MomentAccumulator> = {};
  const start: Record<string, number> = {};
  for (const name of names) {
    moments[name] = newMomentAccumulator(params[name]!);
    start[name] = elementsBefore[name] ?? 0;
  }
  for (const [i, sample] of job.samples.entries()) {
    throwIfAborted(ctx.signal);
    const results = await runOnce(ort, session, sample, names);
    for (const name of names) {
      const t = results[name];
      if (!t || t.type !== 'float32') continue;
      const values = t.data as Float32Array;
      momentsActivation(moments[name]!, params[name]!, values, start[name]!);
      start[name]! += values.length;
      t.dispose();
    }
    ctx.progress(i + 1, total);
  }
  return { kind: 'moments', moments };
}

export async function runOnnxRunJob(job: OnnxRunJob, ctx: JobContext): Promise<OnnxRunReply> {
  const ort = await loadOrt();
  const session = await sessionFor(job.model);
  const names = job.outputs ?? [...session.outputNames];
  const outputs: OnnxFeed[][] = [];
  for (const [i, sample] of job.samples.entries()) {
    throwIfAborted(ctx.signal);
    const results = await runOnce(ort, session, sample, names);
    outputs.push(
      names.map((name) => {
        const t = results[name];
        if (!t) throw new QuantLensError('RUNTIME', `ONNX Runtime returned no value for output ${name}`);
        if (!FEED_TYPES.has(t.type)) throw new QuantLensError('UNSUPPORTED', `output ${name} has type ${t.type}, which QuantLens does not compare`);
        const data = (t.data as FeedData).slice() as FeedData;
        t.dispose();
        return { name, type: t.type as FeedType, dims: [...t.dims], data };
      }),
    );
    ctx.progress(i + 1, job.samples.length);
  }
  return { outputs };
}
