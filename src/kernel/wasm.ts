import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Where the built bundles live: next to this file once bundled, `dist/` when run from sources (tests). */
export const distDir = __filename.endsWith('.ts') ? resolve(__dirname, '../../dist') : __dirname;

const WASM_PAGE = 65536;
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

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function kernelAbort(): never {
  throw new Error('kernel abort');
}
