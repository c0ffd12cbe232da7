/**
 * The quantize pipeline's encoder on the kernel worker pool: each tensor is cut into row ranges
 * (about 4 Mi values each), as many in flight as the pool has workers, written back in order.
 * Workers read raw tensors from the file themselves; other encodings are read on this thread once.
 */
import { DTYPES } from '../core/dtypes';
import type { EncodeJob, TensorEncoder } from '../core/quantize/to-gguf';
import { matrixShape } from '../core/tensor-rows';
import { readTensorBytes } from '../core/tensordata';
import type { KernelPool } from './pool';

const VALUES_PER_JOB = 1 << 22;

export function poolTensorEncoder(pool: KernelPool, valuesPerJob = VALUES_PER_JOB): TensorEncoder {
  return {
    async encode(job: EncodeJob, sink: (bytes: Uint8Array) => Promise<void>): Promise<void> {
      const { tensor } = job;
      const { rows, cols } = matrixShape(tensor.shape);
      const stored = DTYPES[tensor.dtype];
      const rowBytes = (cols / stored.blockSize) * stored.bytesPerBlock;
      const whole = tensor.encoding === 'raw' ? undefined : await readTensorBytes(job.model, tensor, job.files);
      const rowsPerJob = Math.max(1, Math.floor(valuesPerJob / Math.max(1, cols)));
      const run = (r0: number): Promise<Uint8Array> => {
        const n = Math.min(rowsPerJob, rows - r0);
        const input = whole
          ? { bytes: whole.slice(r0 * rowBytes, (r0 + n) * rowBytes) }
          : { file: tensor.file, offset: tensor.byteOffset + r0 * rowBytes, length: n * rowBytes };
        return pool.run(
          'quantizeRows',
          { name: tensor.name, dtype: tensor.dtype, rows: n, firstRow: r0, cols, input, target: job.target, importance: job.importance },
          { signal: job.signal },
        );
      };
      const inFlight: Array<Promise<Uint8Array>> = [];
      let next = 0;
      try {
        while (next < rows || inFlight.length > 0) {
          while (inFlight.length < pool.size && next < rows) {
            const p = run(next);
            p.catch(() => undefined); // awaited in order below; a later failure must not go unhandled meanwhile
            inFlight.push(p);
            next += rowsPerJob;
          }
          await sink(await inFlight.shift()!);
        }
      } finally {
        // On failure the remaining jobs still settle (cancelled by the caller's signal, or finishing unused).
        await Promise.allSettled(inFlight);
      }
    },
  };
}
