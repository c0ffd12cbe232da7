/**
 * Worker side of two ONNX jobs that used to run on the extension host thread:
 * - `quantizeOnnx`: core quantizeOnnx's work (read, quantize every weight, encode, write) inside a
 *   worker. The host owns the output: it creates the temporary file, the worker writes into it
 *   (opened without O_CREAT, so a worker stopped by a cancel cannot leave a file behind once the host
 *   removed it), and the host commits or discards it (kernel/onnx.ts quantizeOnnxInPool).
 * - `onnxCalibrationSet`: calibration inputs (images, .npy/.npz, .wav) read and decoded in a worker;
 *   the samples come back with their buffers transferred.
 */
import { open } from 'node:fs/promises';
import { QuantLensError } from '../core/errors';
import type { InputSpec } from '../core/onnx/feeds';
import { writeQuantizedOnnx, type OnnxQuantizeOptions, type OnnxQuantizeResult } from '../core/onnx/quantize';
import { loadCalibrationSet, type CalibrationSet, type SampleOptions } from '../core/onnx/samples';
import { fileSink } from '../core/protobuf/encoder';
import { Transfer } from '../shared/rpc';
import type { JobContext } from './jobs';

export interface OnnxQuantizeJob {
  input: string;
  /** the temporary file the host created for the output (written from offset 0) */
  tempPath: string;
  options: Omit<OnnxQuantizeOptions, 'signal' | 'onProgress'>;
}

export type OnnxQuantizeJobReply = Omit<OnnxQuantizeResult, 'output'>;

/** Progress of `quantizeOnnx` is in steps (one per weight, one for writing), not bytes. */
export async function runOnnxQuantizeJob(job: OnnxQuantizeJob, ctx: JobContext): Promise<OnnxQuantizeJobReply> {
  let handle;
  try {
    handle = await open(job.tempPath, 'r+');
  } catch (err) {
    throw new QuantLensError('OUTPUT', `cannot write ${job.tempPath}: ${(err as Error).message}`, { file: job.tempPath, cause: err });
  }
  try {
    const result = await writeQuantizedOnnx(job.input, fileSink(handle, job.tempPath), { ...job.options, signal: ctx.signal, onProgress: (done, total) => ctx.progress(done, total) });
    await handle.sync();
    return result;
  } finally {
    await handle.close();
  }
}

export interface OnnxCalibrationSetJob {
  signature: InputSpec[];
  paths: string[];
  options: Omit<SampleOptions, 'signal' | 'onProgress'>;
}

/** Progress in files read / files found. */
export async function runOnnxCalibrationSetJob(job: OnnxCalibrationSetJob, ctx: JobContext): Promise<Transfer<CalibrationSet>> {
  const set = await loadCalibrationSet(job.signature, job.paths, { ...job.options, signal: ctx.signal, onProgress: (done, total) => ctx.progress(done, total) });
  const buffers = new Set<ArrayBuffer>();
  for (const sample of set.samples) for (const feed of sample) buffers.add(feed.data.buffer as ArrayBuffer);
  return new Transfer(set, [...buffers]);
}
