import * as vscode from 'vscode';
import { KernelPool } from '../kernel/pool';
import { workerCount } from './settings';

/**
 * The kernel worker pool of the sensitivity sweep, quantization and comparison: started on first
 * use, terminated with the extension, restarted when `quantlens.workers` changes. Cancelling a job
 * terminates the worker running it (src/kernel/pool.ts).
 */
export class LazyKernelPool implements vscode.Disposable {
  private pool: KernelPool | undefined;
  private readonly listener = vscode.workspace.onDidChangeConfiguration((e) => {
    if (e.affectsConfiguration('quantlens.workers')) this.reset();
  });

  get kernel(): KernelPool {
    const workers = workerCount();
    this.pool ??= new KernelPool(workers > 0 ? { size: workers } : {});
    return this.pool;
  }

  reset(): void {
    this.pool?.dispose();
    this.pool = undefined;
  }

  dispose(): void {
    this.listener.dispose();
    this.reset();
  }
}
