/**
 * The kernel worker pool: `worker_threads` running dist/worker.js, started on first use, one job per
 * worker at a time, the rest queued in order. Aborting a job's signal rejects it at once with
 * CANCELLED and terminates the worker running it (a kernel call cannot be interrupted otherwise);
 * the pool starts a fresh worker when the next job needs one. `dispose()` terminates every worker.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { QuantLensError, type ErrorCode } from '../core/errors';
import { RemoteError, RpcEndpoint } from '../shared/rpc';
import type { JobKind, JobPartial, JobReply, JobRequest, PoolSide, WorkerSide } from './jobs';
import { distDir } from './wasm';

export interface KernelPoolOptions {
  /** Workers at most; default: the number of cores (`os.availableParallelism()`). */
  size?: number;
  /** The worker script; default dist/worker.js beside the bundles. */
  workerScript?: string;
}

export interface RunOptions<K extends JobKind = JobKind> {
  signal?: AbortSignal;
  /** Bytes of the job's input processed so far (every pass over the input counts in bytesDone/bytesTotal). */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Partial results, for kinds that stream them (jobs.ts `JobPartial`), in the order the worker sent them, all before the reply. */
  onPartial?: (value: JobPartial<K>) => void;
  /** Buffers of the request to move to the worker rather than copy. */
  transfer?: ArrayBuffer[];
}

interface Job {
  id: number;
  kind: JobKind;
  request: JobRequest<JobKind>;
  options: RunOptions;
  resolve(reply: unknown): void;
  reject(err: QuantLensError): void;
  settled: boolean;
  slot?: Slot;
  detach(): void;
}

interface Slot {
  worker: Worker;
  endpoint: RpcEndpoint<WorkerSide, PoolSide>;
  job?: Job;
}

export class KernelPool {
  readonly size: number;
  private readonly workerScript: string;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextJob = 1;
  private disposed = false;

  constructor(options: KernelPoolOptions = {}) {
    this.size = Math.max(1, Math.floor(options.size ?? availableParallelism()));
    this.workerScript = options.workerScript ?? join(distDir, 'worker.js');
  }

  /** Runs one job on the next free worker. Rejects with a QuantLensError (CANCELLED when aborted). */
  run<K extends JobKind>(kind: K, request: JobRequest<K>, options: RunOptions<K> = {}): Promise<JobReply<K>> {
    if (this.disposed) return Promise.reject(new QuantLensError('CANCELLED', 'the kernel pool was disposed'));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(new QuantLensError('CANCELLED', 'cancelled'));
    return new Promise<JobReply<K>>((resolve, reject) => {
      const onAbort = (): void => this.cancel(job);
      const job: Job = {
        id: this.nextJob++,
        kind,
        request,
        options: options as RunOptions,
        resolve: resolve as (reply: unknown) => void,
        reject,
        settled: false,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(job);
      this.pump();
    });
  }

  /** Terminates every worker; running and queued jobs reject with CANCELLED. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const job of this.queue.splice(0)) this.settle(job, new QuantLensError('CANCELLED', 'the kernel pool was disposed'));
    for (const slot of [...this.slots]) {
      if (slot.job) this.settle(slot.job, new QuantLensError('CANCELLED', 'the kernel pool was disposed'));
      this.retire(slot);
    }
  }

  /** Workers currently started (for tests and diagnostics). */
  get workers(): number {
    return this.slots.length;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.disposed) {
      const slot = this.slots.find((s) => !s.job) ?? (this.slots.length < this.size ? this.spawn() : undefined);
      if (!slot) return;
      this.start(slot, this.queue.shift()!);
    }
  }

  private start(slot: Slot, job: Job): void {
    slot.job = job;
    job.slot = slot;
    slot.worker.ref();
    const body = { ...job.request, job: job.id } as PoolSide['requests'][JobKind]['request'];
    slot.endpoint.request(job.kind, body, { transfer: job.options.transfer }).then(
      (reply) => this.finish(slot, job, reply),
      (err: unknown) => this.finish(slot, job, undefined, toPoolError(err)),
    );
  }

  private finish(slot: Slot, job: Job, reply: unknown, err?: QuantLensError): void {
    if (slot.job === job) {
      slot.job = undefined;
      slot.worker.unref();
    }
    this.settle(job, err, reply);
    this.pump();
  }

  private settle(job: Job, err?: QuantLensError, reply?: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.detach();
    if (err) job.reject(err);
    else job.resolve(reply);
  }

  private cancel(job: Job): void {
    if (job.settled) return;
    const queued = this.queue.indexOf(job);
    if (queued >= 0) this.queue.splice(queued, 1);
    this.settle(job, new QuantLensError('CANCELLED', 'cancelled'));
    // a running kernel call cannot be interrupted: stop its worker
    if (job.slot && job.slot.job === job) this.retire(job.slot);
    this.pump();
  }

  private spawn(): Slot {
    const worker = new Worker(this.workerScript);
    const endpoint = new RpcEndpoint<WorkerSide, PoolSide>((message, transfer) => worker.postMessage(message, transfer ?? []));
    const slot: Slot = { worker, endpoint };
    worker.on('message', (message) => endpoint.receive(message));
    endpoint.on('progress', (e) => {
      if (slot.job?.id === e.job) slot.job.options.onProgress?.(e.bytesDone, e.bytesTotal);
    });
    endpoint.on('partial', (e) => {
      if (slot.job?.id === e.job) slot.job.options.onPartial?.(e.value as never);
    });
    const fail = (why: string): void => {
      if (!this.slots.includes(slot)) return;
      const job = slot.job;
      this.retire(slot);
      if (job) this.settle(job, new QuantLensError('INTERNAL', `kernel worker ${why}`));
      this.pump();
    };
    worker.on('error', (err) => fail(`failed: ${err.message}`));
    worker.on('exit', (code) => fail(`exited with code ${code}`));
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private retire(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    slot.job = undefined;
    slot.endpoint.dispose();
    void slot.worker.terminate();
  }
}

function toPoolError(err: unknown): QuantLensError {
  if (err instanceof QuantLensError) return err;
  if (err instanceof RemoteError) {
    return new QuantLensError(err.code as ErrorCode, err.message, { offset: err.offset, tensor: err.tensor, file: err.file });
  }
  return new QuantLensError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}
