/**
 * The jobs a kernel worker runs, as one table: kind → request and reply. The pool (pool.ts) sends
 * them through the team's RpcEndpoint (src/shared/rpc.ts); the worker (worker.ts) serves each kind
 * with the handler its table names. To add a kind: add it to `KernelJobs` here, write its handler
 * (`JobHandler<'kind'>`, in its own module), and list it in worker.ts's `HANDLERS` (checked exhaustive).
 *
 * Main-thread code imports this file only for types: it pulls in no kernel code.
 */
import type { DType } from '../core/dtypes';
import type { RtnTensor } from '../core/quant/rtn';
import type { TensorStats } from '../core/stats/stats';
import type { Transfer } from '../shared/rpc';
import type { CompareTensorsJob, CompareTensorsReply } from './compare-job';
import type { OnnxActivationsJob, OnnxActivationsReply, OnnxRunJob, OnnxRunReply } from './onnx-job';
import type { CalibrationSet } from '../core/onnx/samples';
import type { OnnxCalibrationSetJob, OnnxQuantizeJob, OnnxQuantizeJobReply } from './onnx-quantize-job';
import type { MatmulJob } from './matmul-job';
import type { KldProgress } from '../core/sensitivity/kld';
import type { SensitivityResult } from '../core/sensitivity/types';
import type { CalibrateJob, CalibrateJobReply, EvaluateJob, EvaluateJobReply, KldSensitivityJob, ModelJobProgress } from './model-jobs';
import type { QuantizeRowsJob } from './quantize-job';
import type { QuantizeRtnJob } from './rtn-job';
import type { SensitivityJob, SensitivityJobReply, SensitivityPartial } from './sensitivity-job';
import type { KernelArena, KernelInstance } from './wasm';

/**
 * Where a job's input bytes come from. Workers open files themselves (`file`: raw bytes at
 * [offset, offset + length), read straight into kernel memory); other encodings are decoded on the
 * main thread and their bytes transferred (`bytes`).
 */
export type ByteInput = { file: string; offset: number; length: number } | { bytes: Uint8Array };

export function byteInputLength(input: ByteInput): number {
  return 'bytes' in input ? input.bytes.length : input.length;
}

/** Statistics and an N-bin histogram of one tensor (see src/core/stats/stats.ts for the definitions). */
export interface StatsJob {
  /** For messages: the tensor's name. */
  name: string;
  dtype: DType;
  /** Number of elements. */
  count: number;
  input: ByteInput;
  bins: number;
  /** Bytes of values held in kernel memory at once (default 32 MiB); larger tensors stream through. */
  chunkBytes?: number;
}

/** Statistics of several small tensors in one job, in order. */
export interface StatsBatchJob {
  items: StatsJob[];
}

/** Per-row and per-column absmax of a tensor seen as rows × cols (rows = the outermost dimension). */
export interface AbsMaxProfileJob {
  name: string;
  dtype: DType;
  rows: number;
  cols: number;
  input: ByteInput;
  /** As StatsJob.chunkBytes. */
  chunkBytes?: number;
}

export interface AbsMaxProfile {
  rows: Float32Array;
  cols: Float32Array;
}

/** Every job kind: request and reply. */
export type KernelJobs = {
  stats: { request: StatsJob; reply: TensorStats };
  statsBatch: { request: StatsBatchJob; reply: TensorStats[] };
  absMaxProfile: { request: AbsMaxProfileJob; reply: AbsMaxProfile };
  /** One matched pair of two checkpoints' tensors: error figures, optionally histograms (src/kernel/compare-job.ts). */
  compareTensors: { request: CompareTensorsJob; reply: CompareTensorsReply };
  /** Rows of a tensor converted to an output type (src/kernel/quantize-job.ts). */
  quantizeRows: { request: QuantizeRowsJob; reply: Uint8Array };
  /** One tensor quantized with an RTN scheme for the safetensors writers (src/kernel/rtn-job.ts). */
  quantizeRtn: { request: QuantizeRtnJob; reply: RtnTensor };
  /** ONNX activation statistics over calibration samples, one pass (src/kernel/onnx-job.ts). */
  onnxActivations: { request: OnnxActivationsJob; reply: OnnxActivationsReply };
  /** ONNX model outputs over calibration samples (src/kernel/onnx-job.ts). */
  onnxRun: { request: OnnxRunJob; reply: OnnxRunReply };
  /** Activations times a range of a weight's rows, for the forward pass (src/kernel/matmul-job.ts). */
  matmul: { request: MatmulJob; reply: Float32Array };
  /** A group of tensors' sensitivity sweep, each tensor streamed as it completes (src/kernel/sensitivity-job.ts). */
  sensitivity: { request: SensitivityJob; reply: SensitivityJobReply; partial: SensitivityPartial };
  /** A whole calibration run (importance matrix, activation site summaries) inside one worker (src/kernel/model-jobs.ts). */
  calibrate: { request: CalibrateJob; reply: CalibrateJobReply; partial: ModelJobProgress };
  /** Perplexity, and KL divergence against a base model, inside one worker (src/kernel/model-jobs.ts). */
  evaluate: { request: EvaluateJob; reply: EvaluateJobReply; partial: ModelJobProgress };
  /** A `kld` sensitivity sweep inside one worker, progress per unit × format evaluated (src/kernel/model-jobs.ts). */
  kldSensitivity: { request: KldSensitivityJob; reply: SensitivityResult; partial: KldProgress };
  /** An ONNX model quantized (int8 QDQ, int4 MatMulNBits) into a temp file the host owns; progress in steps (src/kernel/onnx-quantize-job.ts). */
  quantizeOnnx: { request: OnnxQuantizeJob; reply: OnnxQuantizeJobReply };
  /** ONNX calibration inputs read and decoded (images, .npy/.npz, .wav); progress in files (src/kernel/onnx-quantize-job.ts). */
  onnxCalibrationSet: { request: OnnxCalibrationSetJob; reply: CalibrationSet };
};

export type JobKind = keyof KernelJobs;
export type JobRequest<K extends JobKind> = KernelJobs[K]['request'];
export type JobReply<K extends JobKind> = KernelJobs[K]['reply'];
/** What a job streams before its reply (`partial` in its table entry; never for kinds without one). */
export type JobPartial<K extends JobKind> = KernelJobs[K] extends { partial: infer P } ? P : never;

/** What the pool sends: each request carries the job id its progress events echo. */
export type PoolSide = {
  requests: { [K in JobKind]: { request: JobRequest<K> & { job: number }; reply: JobReply<K> } };
  events: Record<never, never>;
};

/** Progress of a job, in bytes of input processed (each pass over the input counts). */
export interface JobProgress {
  job: number;
  bytesDone: number;
  bytesTotal: number;
}

/** A partial result of a job (its kind's `JobPartial`). */
export interface JobPartialEvent {
  job: number;
  value: unknown;
}

/** What a worker sends besides replies. */
export type WorkerSide = {
  requests: Record<never, never>;
  events: { progress: JobProgress; partial: JobPartialEvent };
};

/** What a handler gets besides its request (worker side). */
export interface JobContext {
  kernel: KernelInstance;
  /** Kernel memory for this job; freed when the job ends. */
  arena: KernelArena;
  /** Aborted when the pool cancels the job. */
  signal: AbortSignal;
  progress(bytesDone: number, bytesTotal: number): void;
}

/** The context of a job kind that streams partial results. */
export interface StreamingJobContext<P> extends JobContext {
  /** Sends a partial result to the pool's `onPartial` for this job. */
  partial(value: P): void;
}

export type JobHandler<K extends JobKind> = (request: JobRequest<K>, ctx: StreamingJobContext<JobPartial<K>>) => Promise<JobReply<K> | Transfer<JobReply<K>>>;
