import * as vscode from 'vscode';
import { basename } from 'node:path';
import { matchTensors, type TensorPair } from '../../core/compare';
import { QuantLensError, toQuantLensError } from '../../core/errors';
import { elementCount, type ModelInfo } from '../../core/model';
import { describeTensor } from '../../core/names';
import { openModel } from '../../core/readers';
import { summarizeModel } from '../../core/summary';
import type { CompareHostSide, CompareProgressEvent, CompareRow, CompareSideSummary, CompareState, CompareWebviewSide, PairDetailReply } from '../../shared/protocol';
import type { RpcEndpoint } from '../../shared/rpc';
import { Disposable } from '../dispose';
import type { LazyKernelPool } from '../kernel-pool';
import { connectWebview, webviewOptions, webviewPage } from '../webview-page';
import { OutputComparison } from './outputs';

/** Rows are sent to the webview in batches at most this often while results stream in. */
const ROW_BATCH_MS = 120;
/** Pair jobs in flight per worker (one computing, one reading). */
const JOBS_PER_WORKER = 2;

/**
 * The comparison of two checkpoints: one webview panel with both summaries, the matched tensors
 * (rows filled as the pool measures them, sortable), the selected pair's overlaid histograms and
 * error histogram, and an SQNR-by-layer strip; for two ONNX models also their outputs on calibration
 * inputs (outputs.ts). The measurement runs in the kernel pool with a
 * cancellable progress notification; closing the panel stops it.
 */
export class ComparePanel extends Disposable {
  static readonly viewType = 'quantlens.compare';
  private readonly rpc: RpcEndpoint<CompareWebviewSide, CompareHostSide>;
  private readonly controller = new AbortController();
  private state: CompareState | undefined;
  private pairs: TensorPair[] = [];
  private pending: CompareRow[] = [];
  /** Both sides are ONNX models: the Outputs section. */
  private outputs: OutputComparison | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private ready = false;
  private readonly started = performance.now();
  private readonly opened: Promise<void>;

  static open(extensionUri: vscode.Uri, pool: LazyKernelPool, a: vscode.Uri, b: vscode.Uri, log: vscode.LogOutputChannel): ComparePanel {
    const title = `${basename(a.fsPath)} ↔ ${basename(b.fsPath)}`;
    const panel = vscode.window.createWebviewPanel(ComparePanel.viewType, title, vscode.ViewColumn.Active, webviewOptions(extensionUri));
    return new ComparePanel(panel, extensionUri, pool, a, b, log);
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly pool: LazyKernelPool,
    private readonly a: vscode.Uri,
    private readonly b: vscode.Uri,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    this.rpc = connectWebview(panel.webview, 'compare', log, (d) => this._register(d));
    this._register(panel.onDidDispose(() => this.dispose()));
    this.opened = this.openBoth();
    this.rpc.handle('ready', async () => {
      await this.opened.catch(() => undefined);
      if (!this.state) throw new QuantLensError('INTERNAL', 'the comparison did not start');
      this.ready = true;
      this.pending = [];
      this.state.outputs = this.outputs?.setup() ?? null;
      return this.state;
    });
    this.rpc.handle('pairDetail', ({ index, bins }, signal) => this.pairDetail(index, bins, signal));
    this.rpc.handle('pickPath', async (request) => {
      await this.opened;
      if (!this.outputs) throw new QuantLensError('USAGE', 'outputs are compared for two ONNX models only');
      return this.outputs.pickPath(request);
    });
    this.rpc.handle('compareOutputs', async (request) => {
      await this.opened;
      if (!this.outputs) throw new QuantLensError('USAGE', 'outputs are compared for two ONNX models only');
      return this.outputs.run(request, this.controller.signal);
    });
    this.rpc.on('cancelOutputs', () => this.outputs?.cancel());
    this.rpc.on('cancelCompare', () => this.controller.abort());
    this.rpc.on('revealTensor', ({ side, name }) => void vscode.commands.executeCommand('quantlens.revealTensor', side === 'a' ? this.a : this.b, name));
    panel.webview.html = webviewPage(panel.webview, extensionUri, 'compare', panel.title);
    void this.opened.then(() => this.measureAll());
  }

  private async openBoth(): Promise<void> {
    try {
      const [ma, mb] = await Promise.all([openModel(this.a.fsPath, { signal: this.controller.signal }), openModel(this.b.fsPath, { signal: this.controller.signal })]);
      const { pairs, summary } = await matchTensors(ma, mb);
      this.pairs = pairs;
      if (ma.format === 'onnx' && mb.format === 'onnx') {
        this.outputs = await OutputComparison.open(
          this.a,
          this.b,
          this.pool,
          {
            progress: (event) => this.ready && this.rpc.notify('outputsProgress', event),
            result: (view) => this.ready && this.rpc.notify('outputsResult', view),
          },
          this.controller.signal,
        );
      }
      this.state = {
        a: sideSummary(this.a, ma),
        b: sideSummary(this.b, mb),
        rows: pairs.map((p, index) => {
          const d = describeTensor(p.a.name);
          return {
            index,
            name: p.a.name,
            nameB: p.b.name,
            dtypeA: p.a.dtype,
            dtypeB: p.b.dtype,
            layer: d.layer,
            role: d.role,
            params: elementCount(p.a.shape),
            measured: false,
            relMse: null,
            sqnrDb: null,
            maxAbsErr: null,
            cosine: null,
          };
        }),
        onlyInA: summary.onlyInA,
        onlyInB: summary.onlyInB,
        shapeMismatch: summary.shapeMismatch,
        progress: { done: 0, total: pairs.length, state: 'running', elapsedMs: 0 },
        outputs: this.outputs?.setup() ?? null,
      };
    } catch (err) {
      const e = toQuantLensError(err);
      this.log.error(`compare ${this.a.fsPath} ↔ ${this.b.fsPath}: [${e.code}] ${e.message}`);
      void vscode.window.showErrorMessage(`QuantLens: cannot compare: ${e.message}`);
      this.dispose();
      throw e;
    }
  }

  /** Measures every pair in the pool; rows go to the webview as they arrive. */
  private async measureAll(): Promise<void> {
    const state = this.state!;
    const signal = this.controller.signal;
    const progress = state.progress;
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `QuantLens: comparing ${state.a.fileName} with ${state.b.fileName}`, cancellable: true },
      async (report, token) => {
        const cancel = token.onCancellationRequested(() => this.controller.abort());
        const pool = this.pool.kernel;
        const order = this.pairs.map((_, i) => i).sort((x, y) => this.pairs[y].a.byteLength - this.pairs[x].a.byteLength);
        let next = 0;
        const lane = async (): Promise<void> => {
          while (next < order.length && !signal.aborted) {
            const index = order[next++];
            const pair = this.pairs[index];
            const row = state.rows[index];
            try {
              const r = await pool.run('compareTensors', { a: { path: this.a.fsPath, tensor: pair.a.name }, b: { path: this.b.fsPath, tensor: pair.b.name }, rowMapB: pair.rowMapB?.slice() }, { signal });
              Object.assign(row, { measured: true, relMse: r.relMse, sqnrDb: r.sqnrDb, maxAbsErr: r.maxAbsErr, cosine: r.cosine });
            } catch (err) {
              const e = toQuantLensError(err);
              if (e.code === 'CANCELLED') return;
              Object.assign(row, { measured: true, error: `${e.code}: ${e.message}` });
            }
            progress.done++;
            progress.elapsedMs = performance.now() - this.started;
            report.report({ message: `${progress.done} / ${progress.total} tensors`, increment: 100 / Math.max(1, progress.total) });
            this.queue(row);
          }
        };
        try {
          await Promise.all(Array.from({ length: Math.min(order.length, pool.size * JOBS_PER_WORKER) }, lane));
        } finally {
          cancel.dispose();
        }
      },
    );
    progress.state = signal.aborted ? 'cancelled' : 'done';
    progress.elapsedMs = performance.now() - this.started;
    this.log.info(`compared ${state.a.fileName} ↔ ${state.b.fileName}: ${progress.done}/${progress.total} tensors in ${(progress.elapsedMs / 1000).toFixed(1)} s${signal.aborted ? ' (cancelled)' : ''}`);
    this.flush();
    // two ONNX models: then their outputs on synthetic inputs, unless the user must give dims first
    if (this.outputs?.runsBySelf && !signal.aborted) void this.outputs.runSynthetic(signal);
  }

  private async pairDetail(index: number, bins: number, signal: AbortSignal): Promise<PairDetailReply> {
    await this.opened;
    const pair = this.pairs[index];
    if (!pair) throw new QuantLensError('TENSOR_NOT_FOUND', `no matched pair #${index}`);
    const both = AbortSignal.any([signal, this.controller.signal]);
    try {
      const r = await this.pool.kernel.run(
        'compareTensors',
        { a: { path: this.a.fsPath, tensor: pair.a.name }, b: { path: this.b.fsPath, tensor: pair.b.name }, rowMapB: pair.rowMapB?.slice(), bins },
        { signal: both },
      );
      if (!r.histograms) throw new QuantLensError('INTERNAL', 'the worker sent no histograms');
      return { index, ...r.histograms };
    } catch (err) {
      throw toQuantLensError(err);
    }
  }

  private queue(row: CompareRow): void {
    this.pending.push(row);
    this.flushTimer ??= setTimeout(() => this.flush(), ROW_BATCH_MS);
  }

  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.ready || !this.state) return;
    if (this.pending.length > 0) this.rpc.notify('compareRows', { rows: this.pending.splice(0) });
    this.rpc.notify('compareProgress', { ...this.state.progress } satisfies CompareProgressEvent);
  }

  override dispose(): void {
    if (this.isDisposed) return;
    this.controller.abort();
    clearTimeout(this.flushTimer);
    super.dispose();
    this.panel.dispose();
  }
}

function sideSummary(uri: vscode.Uri, model: ModelInfo): CompareSideSummary {
  const t = summarizeModel(model);
  return {
    fileName: basename(uri.fsPath),
    path: uri.fsPath,
    format: model.format,
    bytes: t.bytes,
    params: t.params,
    tensors: t.tensors,
    bitsPerWeight: t.bitsPerWeight,
    dtypes: Object.entries(t.byDtype)
      .map(([dtype, d]) => ({ dtype, tensors: d!.tensors, params: d!.params }))
      .sort((x, y) => y.params - x.params),
  };
}
