/**
 * A kernel worker (bundled to dist/worker.js): one kernel instance over its own memory, serving the
 * job kinds of jobs.ts one at a time through the team's RpcEndpoint.
 */
import { parentPort } from 'node:worker_threads';
import { QuantLensError } from '../core/errors';
import { RpcEndpoint, type RequestHandler } from '../shared/rpc';
import type { JobHandler, JobKind, PoolSide, WorkerSide } from './jobs';
import { runCompareTensorsJob } from './compare-job';
import { runMatmulJob } from './matmul-job';
import { runCalibrateJob, runEvaluateJob, runKldSensitivityJob } from './model-jobs';
import { runOnnxActivationsJob, runOnnxRunJob } from './onnx-job';
import { runOnnxCalibrationSetJob, runOnnxQuantizeJob } from './onnx-quantize-job';
import { runQuantizeRowsJob } from './quantize-job';
import { runQuantizeRtnJob } from './rtn-job';
import { runSensitivityJob } from './sensitivity-job';
import { runAbsMaxProfileJob, runStatsBatchJob, runStatsJob } from './stats-job';
import { instantiateKernel, KernelArena, type KernelInstance } from './wasm';

/** The handler of every job kind (exhaustive: adding a kind to jobs.ts requires its handler here). */
const HANDLERS: { [K in JobKind]: JobHandler<K> } = {
  stats: runStatsJob,
  statsBatch: runStatsBatchJob,
  absMaxProfile: runAbsMaxProfileJob,
  compareTensors: runCompareTensorsJob,
  quantizeRows: runQuantizeRowsJob,
  quantizeRtn: runQuantizeRtnJob,
  onnxActivations: runOnnxActivationsJob,
  onnxRun: runOnnxRunJob,
  matmul: runMatmulJob,
  sensitivity: runSensitivityJob,
  calibrate: runCalibrateJob,
  evaluate: runEvaluateJob,
  kldSensitivity: runKldSensitivityJob,
  quantizeOnnx: runOnnxQuantizeJob,
  onnxCalibrationSet: runOnnxCalibrationSetJob,
};

if (!parentPort) throw new QuantLensError('INTERNAL', 'worker.ts runs as a worker thread');
const port = parentPort;

let kernel: KernelInstance | undefined;
let arena: KernelArena | undefined;
const endpoint = new RpcEndpoint<PoolSide, WorkerSide>((message, transfer) => port.postMessage(message, transfer ?? []));
port.on('message', (message) => endpoint.receive(message));

function serve<K extends JobKind>(kind: K): void {
  const handler = HANDLERS[kind] as JobHandler<K>;
  const serveOne: RequestHandler<PoolSide, K> = async (request, signal) => {
    kernel ??= instantiateKernel();
    arena ??= new KernelArena(kernel);
    arena.reset();
    const job = request.job;
    return handler(request, {
      kernel,
      arena,
      signal,
      progress: (bytesDone, bytesTotal) => endpoint.notify('progress', { job, bytesDone, bytesTotal }),
      partial: (value) => endpoint.notify('partial', { job, value }),
    });
  };
  endpoint.handle(kind, serveOne);
}

for (const kind of Object.keys(HANDLERS) as JobKind[]) serve(kind);
