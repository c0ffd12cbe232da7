// The kernel's one WebAssembly module: every kernel source is re-exported here.
// Kernels never allocate (runtime stub): callers pass pointers into memory at or above heapBase().

export function heapBase(): usize {
  return __heap_base;
}
export * from './dequant';

export * from './decode';
export * from './stats';
export * from './histogram';
export * from './rtn';
export * from './quant_ggml';
export * from './matmul';
