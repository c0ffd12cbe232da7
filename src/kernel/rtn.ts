// TypeScript binding of the kernel's RTN quantizers (src/kernel/assembly/rtn.ts). Results are the
// same RtnTensor objects, bit for bit, as the twin src/core/quant/rtn.ts. FP8 has no kernel yet and
// runs the twin; NF4 double quantization (a few values per tensor) runs in TypeScript.
import {
  MSE_CLIP_STEPS, checkShape, dequantizeRtn, finishNf4, groupLayout, quantizeFp8Groups, type RtnTensor,
} from '../core/quant/rtn';
import type { QuantScheme } from '../core/quant/scheme';
import { alignUp, type KernelInstance } from './wasm';

/** A copy (over a plain ArrayBuffer) of `bytes` bytes of kernel memory at `ptr`. */
function copyOut(kernel: KernelInstance, ptr: number, bytes: number): ArrayBuffer {
  const out = new Uint8Array(bytes);
  out.set(kernel.bytes().subarray(ptr, ptr + bytes));
  return out.buffer;
}

/** Quantizes the row-major [rows, cols] tensor `x` with `scheme` in the kernel. */
export function quantizeRtnWithKernel(kernel: KernelInstance, x: Float32Array, rows: number, cols: number, scheme: QuantScheme): RtnTensor {
  checkShape(x, rows, cols);
  const steps = scheme.mse ? MSE_CLIP_STEPS : 1;
  const xPtr = kernel.heapBase;
  const qPtr = alignUp(xPtr + x.length * 4, 64);
  if (scheme.kind === 'int') {
    const l = groupLayout(scheme, rows, cols);
    const groups = l.rows * l.groupsPerRow;
    const sPtr = alignUp(qPtr + x.length, 64);
    const zPtr = alignUp(sPtr + groups * 4, 64);
    kernel.ensure(zPtr + groups).set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), xPtr);
    kernel.exports.rtnIntQuantize!(xPtr, l.rows, l.cols, l.group, scheme.bits, scheme.symmetric ? 1 : 0, steps, qPtr, sPtr, zPtr);
    return {
      scheme, rows, cols,
      q: new Int8Array(copyOut(kernel, qPtr, x.length)),
      scales: new Float32Array(copyOut(kernel, sPtr, groups * 4)),
      groupSize: l.group,
      ...(!scheme.symmetric && { zeroPoints: new Int8Array(copyOut(kernel, zPtr, groups)) }),
    };
  }
  if (scheme.kind === 'nf4') {
    const blocks = Math.ceil(x.length / scheme.blockSize);
    const aPtr = alignUp(qPtr + x.length, 64);
    kernel.ensure(aPtr + blocks * 4).set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), xPtr);
    kernel.exports.rtnNf4Quantize!(xPtr, x.length, scheme.blockSize, steps, qPtr, aPtr);
    const t: RtnTensor = {
      scheme, rows, cols,
      q: new Uint8Array(copyOut(kernel, qPtr, x.length)),
      scales: new Float32Array(copyOut(kernel, aPtr, blocks * 4)),
      groupSize: scheme.blockSize,
    };
    return finishNf4(scheme.doubleQuant, t);
  }
  const l = groupLayout(scheme, rows, cols);
  const q = new Uint8Array(x.length);
  const scales = new Float32Array(l.rows * l.groupsPerRow);
  quantizeFp8Groups(x, l.rows, l.cols, l.group, scheme.format, steps, q, scales);
  return { scheme, rows, cols, q, scales, groupSize: l.group };
}

/** The f32 values a loader reconstructs from an RtnTensor, in the kernel (FP8: the twin). */
export function dequantizeRtnWithKernel(kernel: KernelInstance, t: RtnTensor): Float32Array {
  const s = t.scheme;
  if (s.kind === 'fp8') return dequantizeRtn(t);
  const n = t.q.length;
  const qPtr = kernel.heapBase;
  const sPtr = alignUp(qPtr + n, 64);
  const zPtr = alignUp(sPtr + t.scales.byteLength, 64);
  const outPtr = alignUp(zPtr + (t.zeroPoints?.length ?? 0), 64);
  const mem = kernel.ensure(outPtr + n * 4);
  mem.set(new Uint8Array(t.q.buffer, t.q.byteOffset, n), qPtr);
  mem.set(new Uint8Array(t.scales.buffer, t.scales.byteOffset, t.scales.byteLength), sPtr);
  if (s.kind === 'int') {
    const l = groupLayout(s, t.rows, t.cols);
    if (t.zeroPoints) mem.set(new Uint8Array(t.zeroPoints.buffer, t.zeroPoints.byteOffset, t.zeroPoints.length), zPtr);
    kernel.exports.rtnIntDequantize!(qPtr, l.rows, l.cols, l.group, sPtr, t.zeroPoints ? zPtr : 0, outPtr);
  } else {
    kernel.exports.rtnNf4Dequantize!(qPtr, n, s.blockSize, sPtr, outPtr);
  }
  return new Float32Array(copyOut(kernel, outPtr, n * 4));
}
