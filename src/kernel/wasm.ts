import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { QuantLensError } from '../core/errors';
import type { PlainDType } from '../core/stats/decode';

/** Where the built bundles live: next to this file once bundled, `dist/` when run from sources (tests). */
export const distDir = __filename.endsWith('.ts') ? resolve(__dirname, '../../dist') : __dirname;

const WASM_PAGE = 65536;
/** One WebAssembly memory (wasm32): 65536 pages of 64 KiB. */
export const MAX_KERNEL_MEMORY_BYTES = 65536 * WASM_PAGE;
let compiled: WebAssembly.Module | undefined;

/** The compiled kernel module (compiled once per thread; instantiating is cheap). */
export function kernelModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(readFileSync(join(distDir, 'kernel.wasm')));
  return compiled;
}

/** The kernel's exports; each AssemblyScript source adds its functions (see src/kernel/assembly/index.ts). */
export type KernelExports = Record<string, (...args: number[]) => number> & { heapBase(): number };

export interface KernelInstance {
  exports: KernelExports;
  memory: WebAssembly.Memory;
  /** First byte free for callers: everything below is the kernel's static tables. */
  heapBase: number;
  /** Grows memory so that [0, bytes) is addressable; returns a fresh view (views die on growth). */
  ensure(bytes: number): Uint8Array;
  bytes(): Uint8Array;
}

/** Instantiates the kernel over a new shared memory of `initialBytes` (grown on demand, at most 4 GiB). */
export function instantiateKernel(initialBytes = 16 << 20): KernelInstance {
  const pages = Math.max(1, Math.ceil(initialBytes / WASM_PAGE));
  const memory = new WebAssembly.Memory({ initial: pages, maximum: 65536, shared: true });
  const instance = new WebAssembly.Instance(kernelModule(), { env: { memory, abort: kernelAbort } });
  const exports = instance.exports as unknown as KernelExports;
  return {
    exports,
    memory,
    heapBase: alignUp(exports.heapBase(), 64),
    ensure(bytes: number): Uint8Array {
      const have = memory.buffer.byteLength;
      if (bytes > have) memory.grow(Math.ceil((bytes - have) / WASM_PAGE));
      return new Uint8Array(memory.buffer);
    },
    bytes: () => new Uint8Array(memory.buffer),
  };
}

/** `n` rounded up to a multiple of `to` (kernel regions start 64-byte aligned). */
export function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function kernelAbort(): never {
  throw new QuantLensError('INTERNAL', 'kernel abort');
}

/** The kernel's decoder of each plain type to f32 (`decode<T>ToF32(src, n, dst)`); F32 needs none. */
export const DECODE_TO_F32 = {
  F64: 'decodeF64ToF32',
  F16: 'decodeF16ToF32',
  BF16: 'decodeBF16ToF32',
  F8_E4M3: 'decodeF8E4M3ToF32',
  F8_E5M2: 'decodeF8E5M2ToF32',
  I64: 'decodeI64ToF32',
  I32: 'decodeI32ToF32',
  I16: 'decodeI16ToF32',
  I8: 'decodeI8ToF32',
  U64: 'decodeU64ToF32',
  U32: 'decodeU32ToF32',
  U16: 'decodeU16ToF32',
  U8: 'decodeU8ToF32',
  BOOL: 'decodeU8ToF32',
} as const satisfies Record<Exclude<PlainDType, 'F32'>, string>;

/**
 * Decodes `n` elements of a plain `dtype` at kernel address `src` into f32 at `dst` (no overlap;
 * F32 is copied). The same bits as the twin `decodeToF32` of src/core/stats/decode.ts.
 */
export function decodeToF32InKernel(kernel: KernelInstance, dtype: PlainDType, src: number, n: number, dst: number): void {
  if (dtype === 'F32') {
    kernel.bytes().copyWithin(dst, src, src + n * 4);
    return;
  }
  kernel.exports[DECODE_TO_F32[dtype]]!(src, n, dst);
}

/**
 * Hands out 64-byte-aligned regions of kernel memory above heapBase for one job; `reset` frees
 * them all. Memory grows as regions are taken (a WebAssembly memory never shrinks).
 */
export class KernelArena {
  private top: number;
  constructor(readonly kernel: KernelInstance) {
    this.top = kernel.heapBase;
  }

  take(bytes: number): number {
    const at = this.top;
    this.top = alignUp(at + bytes, 64);
    if (this.top > MAX_KERNEL_MEMORY_BYTES) {
      throw new QuantLensError('LIMIT_EXCEEDED', `kernel memory would exceed ${MAX_KERNEL_MEMORY_BYTES} bytes`);
    }
    this.kernel.ensure(this.top);
    return at;
  }

  reset(): void {
    this.top = this.kernel.heapBase;
  }
}
