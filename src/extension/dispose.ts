import type * as vscode from 'vscode';

/** Disposes every item, collecting the first error so one failure does not leak the rest. */
export function disposeAll(items: Iterable<vscode.Disposable>): void {
  let first: unknown;
  for (const item of items) {
    try {
      item.dispose();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/** Owns disposables registered with `_register` and disposes them with itself (vscode-hexeditor's `dispose.ts`). */
export abstract class Disposable implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private _isDisposed = false;

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) return;
    this._isDisposed = true;
    disposeAll(this.disposables.splice(0));
  }

  protected _register<T extends vscode.Disposable>(value: T): T {
    if (this._isDisposed) value.dispose();
    else this.disposables.push(value);
    return value;
  }
}
