/**
 * The forward pass's matrix products in one kernel instance, in the calling thread: what a worker uses
 * when the whole forward pass runs inside it (calibrate and evaluate jobs), since a worker cannot use
 * the pool. Weights are kept resident in kernel memory by name up to a budget (copied again only when
 * a different weight object of that name arrives: streamed layers, overrides); beyond the budget they
 * are copied per product into a scratch region.
 */
import { throwIfAborted } from '../core/errors';
import type { LinearWeight, MatmulBackend } from '../core/model/llama';
import { matmulInKernel } from './matmul-job';
import type { KernelArena, KernelInstance } from './wasm';

/** Weight bytes kept resident in a worker's kernel memory (the rest of its 4 GiB holds activations and scratch). */
export const KERNEL_RESIDENT_WEIGHT_BYTES = 1 << 30;

interface Slot {
  at: number;
  weight: LinearWeight | null;
}

/** A region of kernel memory that grows (by taking a larger one from the arena) when a product needs more. */
class Scratch {
  at = 0;
  bytes = 0;
  constructor(private readonly arena: KernelArena) {}

  fit(bytes: number): number {
    if (bytes > this.bytes) {
      this.bytes = Math.max(bytes, this.bytes * 2);
      this.at = this.arena.take(this.bytes);
    }
    return this.at;
  }
}

export class KernelMatmul implements MatmulBackend {
  private readonly resident = new Map<string, Slot>();
  private residentBytes = 0;
  private readonly x: Scratch;
  private readonly out: Scratch;
  private readonly w: Scratch;

  constructor(
    private readonly kernel: KernelInstance,
    private readonly arena: KernelArena,
    private readonly maxResidentBytes = KERNEL_RESIDENT_WEIGHT_BYTES,
  ) {
    this.x = new Scratch(arena);
    this.out = new Scratch(arena);
    this.w = new Scratch(arena);
  }

  async linear(x: Float32Array, n: number, w: LinearWeight, signal?: AbortSignal): Promise<Float32Array> {
    throwIfAborted(signal);
    const weightBytes = w.rows * w.cols * 4;
    let slot = this.resident.get(w.name);
    if (!slot && this.residentBytes + weightBytes <= this.maxResidentBytes) {
      slot = { at: this.arena.take(weightBytes), weight: null };
      this.resident.set(w.name, slot);
      this.residentBytes += weightBytes;
    }
    const fresh = !slot || slot.weight !== w;
    const values = fresh ? await w.values() : null;
    // Take every region before making views: growing the memory detaches earlier views.
    const wAt = slot ? slot.at : this.w.fit(weightBytes);
    const xAt = this.x.fit(n * w.cols * 4);
    const outAt = this.out.fit(n * w.rows * 4);
    const buffer = this.kernel.memory.buffer;
    if (values) {
      new Float32Array(buffer, wAt, w.rows * w.cols).set(values);
      if (slot) slot.weight = w;
    }
    new Float32Array(buffer, xAt, n * w.cols).set(x.subarray(0, n * w.cols));
    matmulInKernel(this.kernel, xAt, n, wAt, w.rows, w.cols, outAt, w.rows);
    return new Float32Array(this.kernel.memory.buffer, outAt, n * w.rows).slice();
  }
}
