/**
 * The forward pass's matrix products in the kernel pool: each weight's rows are split into one range
 * per worker; workers read their rows from the file (or get the f32 values when the rows were
 * reordered or are not stored raw), decode them in kernel memory and multiply (matmul-job.ts).
 */
import { DTYPES } from '../core/dtypes';
import type { LinearWeight, MatmulBackend } from '../core/model/llama';
import type { ByteInput } from './jobs';
import type { KernelPool } from './pool';

export class PoolMatmul implements MatmulBackend {
  constructor(private readonly pool: KernelPool) {}

  async linear(x: Float32Array, n: number, w: LinearWeight, signal?: AbortSignal): Promise<Float32Array> {
    const parts = Math.max(1, Math.min(this.pool.size, w.rows));
    const per = Math.ceil(w.rows / parts);
    const { blockSize, bytesPerBlock } = DTYPES[w.dtype];
    const rowBytes = (w.cols / blockSize) * bytesPerBlock;
    const f32 = w.source ? null : await w.values();
    const jobs: Array<Promise<Float32Array>> = [];
    const ranges: Array<[number, number]> = [];
    for (let r0 = 0; r0 < w.rows; r0 += per) {
      const rows = Math.min(per, w.rows - r0);
      const input: ByteInput = w.source
        ? { file: w.source.file, offset: w.source.offset + r0 * rowBytes, length: rows * rowBytes }
        : { bytes: new Uint8Array(f32!.buffer, f32!.byteOffset + r0 * w.cols * 4, rows * w.cols * 4) };
      ranges.push([r0, rows]);
      jobs.push(this.pool.run('matmul', { name: w.name, dtype: w.source ? w.dtype : 'F32', rows, cols: w.cols, input, x, n }, { signal }));
    }
    const results = await Promise.all(jobs);
    let out = results[0];
    if (results.length > 1) {
      out = new Float32Array(n * w.rows);
      results.forEach((y, i) => {
        const [r0, rows] = ranges[i];
        for (let t = 0; t < n; t++) out.set(y.subarray(t * rows, (t + 1) * rows), t * w.rows + r0);
      });
    }
    // Rows multiplied in stored order: put the outputs in the order the model uses.
    const order = w.source?.rowOrder;
    if (!order) return out;
    const used = new Float32Array(n * w.rows);
    for (let t = 0; t < n; t++) for (let r = 0; r < w.rows; r++) used[t * w.rows + r] = out[t * w.rows + order[r]];
    return used;
  }
}
