import * as vscode from 'vscode';
import { QuantLensError, toQuantLensError } from '../../core/errors';
import type { ModelInfo, TensorInfo } from '../../core/model';
import type { TensorStats as CoreTensorStats } from '../../core/stats/stats';
import { computeAbsMaxProfile, computeTensorStats } from '../../kernel/tensor-stats';
import type { StatsSummary, TensorStats } from '../../shared/protocol';
import { LazyKernelPool } from '../kernel-pool';

/** Points per absmax profile sent to the webview (max-pooled), whatever the tensor's size. */
export const PROFILE_POINTS = 512;

export interface AnalyzeCallbacks {
  signal: AbortSignal;
  onResult(index: number, stats: TensorStats): void;
  onProgress(done: number, total: number, bytesDone: number, bytesTotal: number): void;
}

/**
 * Tensor statistics for the inspector, computed in the kernel's worker pool. The pool starts on
 * first use and is terminated with this service (and restarted when the worker setting changes).
 */
export class TensorStatsService implements vscode.Disposable {
  private readonly pool = new LazyKernelPool();

  /** Statistics and histogram of one tensor. */
  async stats(model: ModelInfo, tensor: TensorInfo, bins: number, signal?: AbortSignal): Promise<TensorStats> {
    const [stats] = await computeTensorStats(this.pool.kernel, model, [tensor], { bins, signal });
    return wireStats(stats);
  }

  /** Absmax per row and per column of a 2-D tensor, max-pooled to at most PROFILE_POINTS each. */
  async profile(model: ModelInfo, tensor: TensorInfo, signal?: AbortSignal): Promise<{ rows: number[]; columns: number[] }> {
    const p = await computeAbsMaxProfile(this.pool.kernel, model, tensor, { signal });
    return { rows: maxPool(p.rows, PROFILE_POINTS), columns: maxPool(p.cols, PROFILE_POINTS) };
  }

  /**
   * Statistics of many tensors, results reported as they arrive; a tensor that fails is counted
   * and skipped (its error goes to `onError`), cancelling stops everything.
   */
  async analyze(model: ModelInfo, indices: readonly number[], bins: number, cb: AnalyzeCallbacks & { onError(index: number, err: QuantLensError): void }): Promise<{ analyzed: number; failed: number }> {
    const pool = this.pool.kernel;
    const bytesTotal = indices.reduce((s, i) => s + model.tensors[i].byteLength, 0);
    const partial = new Map<number, number>();
    let bytesDone = 0;
    let done = 0;
    let failed = 0;
    // largest first, so the workers finish together
    const order = [...indices].sort((a, b) => model.tensors[b].byteLength - model.tensors[a].byteLength);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < order.length) {
        if (cb.signal.aborted) throw new QuantLensError('CANCELLED', 'cancelled');
        const index = order[next++];
        const tensor = model.tensors[index];
        const onProgress = (d: number, t: number): void => {
          const now = t > 0 ? (d / t) * tensor.byteLength : 0;
          bytesDone += now - (partial.get(index) ?? 0);
          partial.set(index, now);
          cb.onProgress(done, indices.length, bytesDone, bytesTotal);
        };
        try {
          const [stats] = await computeTensorStats(pool, model, [tensor], { bins, signal: cb.signal, onProgress });
          cb.onResult(index, wireStats(stats));
        } catch (err) {
          const e = toQuantLensError(err);
          if (e.code === 'CANCELLED') throw e;
          failed++;
          cb.onError(index, e);
        }
        bytesDone += tensor.byteLength - (partial.get(index) ?? 0);
        partial.delete(index);
        done++;
        cb.onProgress(done, indices.length, bytesDone, bytesTotal);
      }
    };
    await Promise.all(Array.from({ length: Math.min(order.length, pool.size * 2) }, lane));
    return { analyzed: done - failed, failed };
  }

  dispose(): void {
    this.pool.dispose();
  }
}

/** The summary half of a tensor's statistics (what the table shows and the cache keeps). */
export function summaryOf(s: TensorStats): StatsSummary {
  const { histogram: _histogram, ...summary } = s;
  return summary;
}

/** Core statistics as the webview receives them (the same fields; checked here at compile time). */
function wireStats(s: CoreTensorStats): TensorStats {
  return s;
}

function maxPool(values: Float32Array, points: number): number[] {
  if (values.length <= points) return Array.from(values, (v) => (Number.isFinite(v) ? v : 0));
  const out: number[] = [];
  const step = values.length / points;
  for (let p = 0; p < points; p++) {
    let m = 0;
    for (let i = Math.floor(p * step); i < Math.floor((p + 1) * step); i++) if (values[i] > m) m = values[i];
    out.push(m);
  }
  return out;
}
