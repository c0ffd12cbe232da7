import * as vscode from 'vscode';
import { QuantLensError, toQuantLensError } from '../../core/errors';
import type { AnalyzeAllReply, InspectorHostSide, InspectorState, InspectorWebviewSide, TensorDetailReply } from '../../shared/protocol';
import type { RpcEndpoint } from '../../shared/rpc';
import { Disposable } from '../dispose';
import { InspectorDocument } from './document';
import { inspectorSettings, largeFileConfirmBytes } from '../settings';
import { TensorStatsService } from './stats-service';
import { connectWebview, webviewOptions, webviewPage } from '../webview-page';

export const HEX_EDITOR_EXTENSION = 'ms-vscode.hexeditor';
const HEX_EDITOR_VIEW_TYPE = 'hexEditor.hexedit';

/** The readonly custom editor `quantlens.inspector` for checkpoints. */
export class InspectorEditorProvider extends Disposable implements vscode.CustomReadonlyEditorProvider<InspectorDocument> {
  static readonly viewType = 'quantlens.inspector';
  /** The same editor for `*.bin`, contributed with priority "option": most .bin files are not checkpoints. */
  static readonly optionViewType = 'quantlens.inspector.bin';

  private readonly sessions = new Set<InspectorSession>();
  private active: InspectorSession | undefined;

  private readonly statsService = this._register(new TensorStatsService());

  static register(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): InspectorEditorProvider {
    const provider = new InspectorEditorProvider(context.extensionUri, vscode.Uri.joinPath(context.globalStorageUri, 'stats-cache').fsPath, log);
    // no retainContextWhenHidden: the webview is rebuilt from the host's state when shown again
    const options = { supportsMultipleEditorsPerDocument: true };
    context.subscriptions.push(
      provider,
      vscode.window.registerCustomEditorProvider(InspectorEditorProvider.viewType, provider, options),
      vscode.window.registerCustomEditorProvider(InspectorEditorProvider.optionViewType, provider, options),
    );
    return provider;
  }

  private constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly cacheDir: string,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
  }

  /** The inspector the user looks at, if any (commands act on it). */
  get activeSession(): InspectorSession | undefined {
    return this.active;
  }

  /** An open inspector of this file, the active one first. */
  sessionFor(uri: vscode.Uri): InspectorSession | undefined {
    if (this.active?.document.uri.toString() === uri.toString()) return this.active;
    for (const s of this.sessions) if (s.document.uri.toString() === uri.toString()) return s;
    return undefined;
  }

  openCustomDocument(uri: vscode.Uri, _context: vscode.CustomDocumentOpenContext, token: vscode.CancellationToken): Promise<InspectorDocument> {
    return InspectorDocument.open(uri, token, this.log, this.cacheDir);
  }

  resolveCustomEditor(document: InspectorDocument, panel: vscode.WebviewPanel): void {
    const session = new InspectorSession(document, panel, this.extensionUri, this.statsService, this.log);
    this.sessions.add(session);
    const setActive = (): void => {
      if (panel.active) this.active = session;
      else if (this.active === session) this.active = undefined;
      void vscode.commands.executeCommand('setContext', 'quantlens.inspectorActive', this.active !== undefined);
    };
    setActive();
    session.onDispose(panel.onDidChangeViewState(setActive));
    session.onDispose(
      panel.onDidDispose(() => {
        this.sessions.delete(session);
        if (this.active === session) this.active = undefined;
        session.dispose();
        setActive();
      }),
    );
  }

  override dispose(): void {
    for (const s of this.sessions) s.dispose();
    this.sessions.clear();
    super.dispose();
  }
}

/** One inspector panel: its webview, its RPC endpoint and the handlers behind it. */
export class InspectorSession extends Disposable {
  readonly rpc: RpcEndpoint<InspectorWebviewSide, InspectorHostSide>;
  /** The tensor selected in the webview (Copy Tensor Stats acts on it). */
  selectedIndex: number | undefined;
  /** Set once the webview has had its initial state; events sent before that would be lost. */
  private webviewReady = false;
  private pendingReveal: number | undefined;

  constructor(
    readonly document: InspectorDocument,
    readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly statsService: TensorStatsService,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super();
    const webview = panel.webview;
    webview.options = webviewOptions(extensionUri);
    this.rpc = connectWebview(webview, 'inspector', log, (d) => this._register(d));
    this.registerHandlers();
    this._register(document.onDidChangeStats((results) => this.rpc.notify('statsUpdate', { results })));
    this._register(document.onAnalyzeProgress((p) => this.rpc.notify('analyzeProgress', p)));
    this._register(document.onAnalyzeFinished((r) => this.rpc.notify('analyzeFinished', r)));
    webview.html = webviewPage(webview, extensionUri, 'inspector', 'QuantLens Inspector', 'Reading the checkpoint…');
  }

  /**
   * Analyze All Tensors with a cancellable progress notification (one per run: a second caller
   * joins the running analysis). Asks first when the model is larger than the confirmation threshold.
   */
  async analyzeAll(signal?: AbortSignal): Promise<AnalyzeAllReply | undefined> {
    const { document } = this;
    const bins = inspectorSettings().histogramBins;
    if (document.analyzing) return document.analyzeAll(this.statsService, bins, signal);
    const result = document.result;
    if (result.kind !== 'model') throw new QuantLensError('UNSUPPORTED', 'the model did not open');
    const threshold = largeFileConfirmBytes();
    if (threshold > 0 && result.state.totals.bytes > threshold) {
      const go = 'Analyze';
      const gb = (result.state.totals.bytes / 1e9).toFixed(1);
      const choice = await vscode.window.showWarningMessage(`Analyze all ${result.model.tensors.length} tensors (${gb} GB)?`, { modal: true }, go);
      if (choice !== go) return undefined;
    }
    return vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `QuantLens: analyzing ${result.state.fileName}`, cancellable: true },
      async (progress, token) => {
        const cancel = token.onCancellationRequested(() => document.cancelAnalysis());
        let reported = 0;
        const sub = document.onAnalyzeProgress((p) => {
          const pct = p.bytesTotal > 0 ? (p.bytesDone / p.bytesTotal) * 100 : 100;
          progress.report({ message: `${p.done} / ${p.total} tensors`, increment: pct - reported });
          reported = pct;
        });
        try {
          const reply = await document.analyzeAll(this.statsService, bins, signal);
          this.log.info(`analyzed ${reply.analyzed} tensors (${reply.failed} failed${reply.cancelled ? ', cancelled' : ''}) in ${reply.elapsedMs.toFixed(0)} ms`);
          return reply;
        } finally {
          sub.dispose();
          cancel.dispose();
        }
      },
    );
  }

  /** One tensor's statistics as JSON (Copy Tensor Stats as JSON). */
  async statsJson(index: number): Promise<string> {
    const result = this.document.result;
    if (result.kind !== 'model') throw new QuantLensError('UNSUPPORTED', 'the model did not open');
    const t = result.model.tensors[index];
    if (!t) throw new QuantLensError('TENSOR_NOT_FOUND', `no tensor #${index}`);
    const stats = await this.document.tensorStats(this.statsService, index, inspectorSettings().histogramBins);
    return JSON.stringify({ name: t.name, dtype: t.dtype, shape: t.shape, ...stats }, null, 2);
  }

  /** Scrolls the table to a tensor and selects it (once the webview is ready). */
  reveal(index: number): void {
    this.pendingReveal = index;
    this.panel.reveal();
    if (this.webviewReady) this.flushReveal();
  }

  private flushReveal(): void {
    if (this.pendingReveal === undefined) return;
    this.rpc.notify('revealTensor', { index: this.pendingReveal });
    this.pendingReveal = undefined;
  }

  onDispose(d: vscode.Disposable): void {
    this._register(d);
  }

  private registerHandlers(): void {
    const { rpc, document } = this;
    const result = document.result;
    rpc.handle('ready', ({ firstPageRows }): InspectorState => {
      // a webview rebuilt after being hidden says ready again: it starts from the host's state
      this.webviewReady = true;
      setTimeout(() => this.flushReveal());
      if (result.kind === 'model') {
        // the first rows go with the state: the table draws without another round trip
        return firstPageRows ? { ...result.state, firstPage: result.index.page({ offset: 0, limit: firstPageRows }) } : result.state;
      }
      return {
        kind: 'error',
        fileName: document.uri.path.split('/').pop() ?? document.uri.path,
        error: result.error,
        hexEditorAvailable: vscode.extensions.getExtension(HEX_EDITOR_EXTENSION) !== undefined,
      };
    });
    rpc.handle('tensorPage', async (request) => {
      if (result.kind !== 'model') throw toQuantLensError(new Error('the model did not open'));
      try {
        if (request.filter || request.group || request.sort) await result.index.buildAll();
        return result.index.page(request);
      } catch (err) {
        throw toQuantLensError(err);
      }
    });
    rpc.handle('layerGroups', async (request) => {
      if (result.kind !== 'model') throw new QuantLensError('UNSUPPORTED', 'the model did not open');
      await result.index.buildAll();
      return result.index.groupPage(request);
    });
    rpc.handle('tensorDetail', async ({ index, bins }, signal): Promise<TensorDetailReply> => {
      if (result.kind !== 'model') throw new QuantLensError('UNSUPPORTED', 'the model did not open');
      try {
        const tensor = result.model.tensors[index];
        const row = result.index.row(index);
        if (!tensor || !row) throw new QuantLensError('TENSOR_NOT_FOUND', `no tensor #${index}`);
        const stats = await document.tensorStats(this.statsService, index, bins ?? inspectorSettings().histogramBins, signal);
        const reply: TensorDetailReply = { row, stats };
        if (tensor.shape.length === 2 && tensor.shape[0] > 1 && tensor.shape[1] > 1) {
          reply.profile = await this.statsService.profile(result.model, tensor, signal);
        }
        return reply;
      } catch (err) {
        throw toQuantLensError(err);
      }
    });
    rpc.handle('roleStrip', async ({ index }, signal) => {
      if (result.kind !== 'model') throw new QuantLensError('UNSUPPORTED', 'the model did not open');
      try {
        const bins = inspectorSettings().histogramBins;
        return await document.roleStrip(this.statsService, index, bins, signal, (done, total) => this.rpc.notify('roleStripProgress', { index, done, total }));
      } catch (err) {
        throw toQuantLensError(err);
      }
    });
    rpc.handle('analyzeAll', async (_request, signal) => {
      try {
        return (await this.analyzeAll(signal)) ?? { analyzed: 0, failed: 0, cancelled: true, elapsedMs: 0, declined: true };
      } catch (err) {
        throw toQuantLensError(err);
      }
    });
    rpc.on('copyStats', ({ index }) => {
      this.statsJson(index).then(
        (json) => vscode.env.clipboard.writeText(json),
        (err) => void vscode.window.showErrorMessage(`QuantLens: ${toQuantLensError(err).message}`),
      );
    });
    rpc.on('reopenWith', ({ editor }) => {
      const viewType = editor === 'hex' ? HEX_EDITOR_VIEW_TYPE : 'default';
      void vscode.commands.executeCommand('vscode.openWith', document.uri, viewType, this.panel.viewColumn);
    });
    rpc.on('selectionChanged', ({ index }) => {
      this.selectedIndex = index ?? undefined;
      void vscode.commands.executeCommand('setContext', 'quantlens.tensorSelected', this.selectedIndex !== undefined);
    });
  }
}
