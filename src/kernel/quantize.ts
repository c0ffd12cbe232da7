// TypeScript binding of the kernel's GGUF quantizers (src/kernel/assembly/quant_ggml.ts); the
// twins in src/core/quant/ggml-quantize.ts define the bytes, and tests hold the two equal.
import { DTYPES } from '../core/dtypes';
import { QuantLensError } from '../core/errors';
import { type GgufQuantType, quantUsesImatrix, quantizedRowBytes } from '../core/quant/ggml-quantize';
import { alignUp, type KernelInstance } from './wasm';

/**
 * Quantizes `rows` rows of `cols` f32 values already in kernel memory at `src` into `dst`
 * (byte addresses at or above `kernel.heapBase`; `scratch` holds `quantScratchBytes(kernel)`
 * bytes, 16-byte aligned; `qw` is the address of `cols` importance weights, or 0).
 */
export function quantizeInPlace(
  kernel: KernelInstance, type: GgufQuantType, src: number, dst: number, rows: number, cols: number, qw: number, scratch: number,
): void {
  const rc = kernel.exports.quantizeGgmlRows!(DTYPES[type].ggmlId, src, dst, rows, cols, qw, scratch);
  if (rc !== 0) throw new QuantLensError('INTERNAL', `the kernel cannot quantize ${type} rows of ${cols} values`);
}

export function quantScratchBytes(kernel: KernelInstance): number {
  return kernel.exports.quantScratchBytes!();
}

/**
 * Quantizes `rows` × `cols` f32 values to `type` through the kernel: the same contract and the
 * same bytes as the twin `quantizeRows` of src/core/quant/ggml-quantize.ts.
 */
export function quantizeWithKernel(
  kernel: KernelInstance, type: GgufQuantType, src: Float32Array, rows: number, cols: number, imatrix?: Float32Array,
): Uint8Array {
  const rowBytes = quantizedRowBytes(type, cols);
  if (!Number.isSafeInteger(rows) || rows < 0 || rows * cols > src.length) {
    throw new QuantLensError('SIZE_MISMATCH', `${rows} rows of ${cols} values need ${rows * cols} values, got ${src.length}`);
  }
  if (imatrix && imatrix.length !== cols) {
    throw new QuantLensError('SIZE_MISMATCH', `importance weights: expected ${cols} (one per column), got ${imatrix.length}`);
  }
  const qwUsed = imatrix && quantUsesImatrix(type) ? imatrix : undefined;
  const scratch = kernel.heapBase;
  const qw = alignUp(scratch + quantScratchBytes(kernel), 64);
  const x = alignUp(qw + cols * 4, 64);
  const y = alignUp(x + rows * cols * 4, 64);
  const out = new Uint8Array(rows * rowBytes);
  if (rows === 0) return out;
  let memory = kernel.ensure(y + out.length);
  if (qwUsed) new Float32Array(memory.buffer, qw, cols).set(qwUsed);
  new Float32Array(memory.buffer, x, rows * cols).set(src.subarray(0, rows * cols));
  quantizeInPlace(kernel, type, x, y, rows, cols, qwUsed ? qw : 0, scratch);
  memory = kernel.bytes();
  out.set(memory.subarray(y, y + out.length));
  return out;
}
