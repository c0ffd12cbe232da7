/**
 * How core code runs ONNX models: an interface the kernel pool implements (src/kernel/onnx.ts) with
 * ONNX Runtime in its workers. Core never imports the runtime.
 */
import type { MomentAccumulator, MomentParams, ScanAccumulator } from './activation-stats';
import type { OnnxFeed, Sample } from './feeds';

/** Model bytes with a key naming exactly these bytes (workers cache sessions by key). */
export interface ModelBytes {
  key: string;
  bytes: Uint8Array;
}

let nextModelKey = 1;
const keys = new WeakMap<Uint8Array, string>();

/** The ModelBytes of an encoded model copy (one key per buffer). */
export function modelBytes(bytes: Uint8Array): ModelBytes {
  let key = keys.get(bytes);
  if (!key) {
    key = `m${process.pid}-${nextModelKey++}`;
    keys.set(bytes, key);
  }
  return { key, bytes };
}

export interface RunnerOptions {
  signal?: AbortSignal;
  /** samples done / total over the call */
  onProgress?: (done: number, total: number) => void;
}

export interface ScanResult {
  scans: Record<string, ScanAccumulator>;
  /** outputs that are not float32 (their element type): no statistics */
  skipped: Record<string, string>;
}

export interface OnnxRunner {
  /** Pass 1 over every sample: merged scans of `outputs` (channel absmax where `channelAxes` names an axis). */
  scan(model: ModelBytes, samples: readonly Sample[], outputs: readonly string[], channelAxes: Record<string, number>, options?: RunnerOptions): Promise<ScanResult>;
  /**
   * Pass 2: merged moments and histograms with pass 1's parameters. `elementsPerSample` (each
   * output's element count per sample, when fixed) puts every sample's lanes where one worker would.
   */
  moments(
    model: ModelBytes,
    samples: readonly Sample[],
    params: Record<string, MomentParams>,
    elementsPerSample: Record<string, number>,
    options?: RunnerOptions,
  ): Promise<Record<string, MomentAccumulator>>;
  /** The named outputs (default: the graph's) of every sample, in sample order. */
  run(model: ModelBytes, samples: readonly Sample[], outputs?: readonly string[], options?: RunnerOptions): Promise<OnnxFeed[][]>;
}
