import * as vscode from 'vscode';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { QuantLensError, toQuantLensError } from '../../core/errors';
import type {
  ActivationsActionReply, ActivationsActionRequest, ActivationsHostSide, ActivationsProgressEvent, ActivationsResultView, ActivationsState, ActivationsWebviewSide,
  CalibrationRequest, PickPathReply, PickPathRequest, SiteDetailReply,
} from '../../shared/protocol';
import type { RpcEndpoint } from '../../shared/rpc';
import { Disposable } from '../dispose';
import type { LazyKernelPool } from '../kernel-pool';
import type { SensitivityService } from '../sensitivity/service';
import { connectWebview, webviewOptions, webviewPage } from '../webview-page';
import { LlmActivations, llmCalibrationText } from './llm';
import { DEFAULT_IMAGE_NORMALISATION, OnnxActivations, onnxCalibrationSet, quantizedPathFor, readOnnxFacts, type OnnxModelFacts, type QuantizeChoice } from './onnx';

/** What every Activations panel shares. */
export interface ActivationsDeps {
  extensionUri: vscode.Uri;
  pool: LazyKernelPool;
  sensitivity: SensitivityService;
  /** where importance matrices computed here are written for the sensitivity sweep */
  storageDir: string;
  log: vscode.LogOutputChannel;
}

/** The bundled calibration text (media/), used when the user picks no file. */
const DEFAULT_TEXT = 'calibration-default.txt';

const DIALOG_FILTERS: Record<PickPathRequest['what'], Record<string, string[]> | undefined> = {
  text: { 'Text': ['txt', 'md', 'raw'], 'All files': ['*'] },
  images: undefined,
  arrays: { 'NumPy arrays': ['npy', 'npz'] },
  audio: { 'WAV audio': ['wav'] },
};

/**
 * The Activations view of one checkpoint, a webview panel beside the inspector: pick calibration
 * data, run it through the model (matrix products or ONNX Runtime in the kernel pool) with progress
 * and cancel, then per-site histograms beside the weight's, the channel profile of each linear's
 * input and a strip of absmax and kurtosis in execution order. ONNX models add Quantize (int8 QDQ),
 * Evaluate against the original and Compare; LLM calibrations hand their importance matrix to the
 * sensitivity sidebar.
 */
export class ActivationsPanel extends Disposable {
  static readonly viewType = 'quantlens.activations';
  private static readonly open = new Map<string, ActivationsPanel>();

  private readonly rpc: RpcEndpoint<ActivationsWebviewSide, ActivationsHostSide>;
  private readonly kind: 'llm' | 'onnx';
  private readonly facts: Promise<OnnxModelFacts | undefined>;
  private running: AbortController | undefined;
  private result: LlmActivations | OnnxActivations | undefined;
  private quantized: ActivationsState['quantized'] = null;
  private evaluation: ActivationsState['evaluation'] = null;
  private readonly fileName: string;

  /** Opens (or reveals) the panel of `uri`. */
  static show(deps: ActivationsDeps, uri: vscode.Uri): ActivationsPanel {
    if (uri.scheme !== 'file') throw new QuantLensError('UNSUPPORTED', 'the Activations view reads local files only');
    const existing = ActivationsPanel.open.get(uri.toString());
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const panel = vscode.window.createWebviewPanel(ActivationsPanel.viewType, `Activations: ${basename(uri.fsPath)}`, vscode.ViewColumn.Beside, webviewOptions(deps.extensionUri));
    const created = new ActivationsPanel(panel, deps, uri);
    ActivationsPanel.open.set(uri.toString(), created);
    return created;
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly deps: ActivationsDeps,
    private readonly uri: vscode.Uri,
  ) {
    super();
    this.fileName = basename(uri.fsPath);
    this.kind = /\.onnx$/i.test(uri.fsPath) ? 'onnx' : 'llm';
    const opening = new AbortController();
    this._register({ dispose: () => opening.abort() });
    this.facts = this.kind === 'onnx' ? readOnnxFacts(uri.fsPath, opening.signal) : Promise.resolve(undefined);
    this.facts.catch(() => undefined);
    this.rpc = connectWebview(panel.webview, 'activations', deps.log, (d) => this._register(d));
    this._register({ dispose: () => this.running?.abort() });
    this._register({ dispose: () => ActivationsPanel.open.delete(uri.toString()) });
    this._register(panel.onDidDispose(() => this.dispose()));
    this.rpc.handle('ready', () => this.state());
    this.rpc.handle('pickPath', (request) => this.pickPath(request));
    this.rpc.handle('runCalibration', (request) => this.calibrate(request));
    this.rpc.handle('siteDetail', ({ id, weight }, signal) => this.siteDetail(id, weight, signal));
    this.rpc.handle('action', ({ action }) => this.act(action));
    this.rpc.on('cancelCalibration', () => this.running?.abort());
    panel.webview.html = webviewPage(panel.webview, deps.extensionUri, 'activations', panel.title);
  }

  private get defaultTextPath(): string {
    return vscode.Uri.joinPath(this.deps.extensionUri, 'media', DEFAULT_TEXT).fsPath;
  }

  private async state(): Promise<ActivationsState> {
    const facts = await this.facts;
    return {
      fileName: this.fileName,
      path: this.uri.fsPath,
      kind: this.kind,
      defaultText: this.kind === 'llm' ? { name: DEFAULT_TEXT, bytes: existsSync(this.defaultTextPath) ? statSync(this.defaultTextPath).size : 0 } : null,
      onnxInputs: facts?.inputs ?? [],
      symbolicDims: facts?.symbolicDims ?? [],
      defaultImage: DEFAULT_IMAGE_NORMALISATION,
      running: this.running !== undefined,
      result: this.result?.view ?? null,
      quantized: this.quantized,
      evaluation: this.evaluation,
    };
  }

  private async pickPath({ what }: PickPathRequest): Promise<PickPathReply> {
    const folder = what === 'images';
    const picked = await vscode.window.showOpenDialog({
      title: folder ? 'Folder of calibration images (.png, .jpg)' : what === 'text' ? 'Calibration text' : `Calibration ${what === 'arrays' ? '.npy / .npz' : '.wav'} file`,
      canSelectFiles: !folder,
      canSelectFolders: folder,
      canSelectMany: false,
      defaultUri: vscode.Uri.joinPath(this.uri, '..'),
      filters: DIALOG_FILTERS[what],
    });
    return { path: picked?.[0]?.fsPath ?? null };
  }

  private progress(event: ActivationsProgressEvent): void {
    this.rpc.notify('activationsProgress', event);
  }

  /**
   * Runs one job with a cancellable notification and progress in the panel; the panel's Cancel and
   * closing the panel abort it too.
   */
  private async withJob<T>(title: string, body: (signal: AbortSignal, report: (stage: string, done: number, total: number) => void) => Promise<T>): Promise<T> {
    if (this.running) throw new QuantLensError('USAGE', 'a calibration or action is already running in this panel');
    const controller = new AbortController();
    this.running = controller;
    try {
      return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `QuantLens: ${title}`, cancellable: true }, async (progress, token) => {
        const cancel = token.onCancellationRequested(() => controller.abort());
        let reported = 0;
        try {
          const value = await body(controller.signal, (stage, done, total) => {
            const share = total > 0 ? done / total : 0;
            progress.report({ message: `${stage} ${done}/${total}`, increment: Math.max(0, share - reported) * 100 });
            reported = share;
            this.progress({ stage, done, total, state: 'running' });
          });
          this.progress({ stage: title, done: 1, total: 1, state: 'done' });
          return value;
        } finally {
          cancel.dispose();
        }
      });
    } catch (err) {
      const e = controller.signal.aborted ? new QuantLensError('CANCELLED', 'cancelled') : toQuantLensError(err);
      this.progress({ stage: title, done: 0, total: 1, state: e.code === 'CANCELLED' ? 'cancelled' : 'error', message: e.message });
      throw e;
    } finally {
      this.running = undefined;
    }
  }

  private async calibrate(request: CalibrationRequest): Promise<ActivationsResultView> {
    if (request.kind !== this.kind) throw new QuantLensError('USAGE', `${this.fileName} is not an ${request.kind === 'llm' ? 'LLM checkpoint' : 'ONNX model'}`);
    const pool = this.deps.pool.kernel;
    const result = await this.withJob(`activations of ${this.fileName}`, async (signal, report) => {
      if (request.kind === 'llm') {
        report('reading the text and the model', 0, 1);
        const text = await llmCalibrationText(request.textPath, this.defaultTextPath);
        return LlmActivations.run(this.uri.fsPath, { ...text, ctx: request.ctx, chunks: request.chunks }, pool, signal, (d, t) => report('chunk', d, t));
      }
      const facts = await this.facts;
      if (!facts) throw new QuantLensError('INTERNAL', 'the model inputs were not read');
      report('reading calibration inputs', 0, 1);
      const set = await onnxCalibrationSet(facts, request, pool, signal, (d, t) => report('calibration files', d, t));
      return OnnxActivations.run(this.uri.fsPath, facts, set, pool, signal, report);
    });
    this.result = result;
    this.quantized = null;
    this.evaluation = null;
    this.deps.log.info(`activations of ${this.fileName}: ${result.view.summary} in ${result.view.seconds.toFixed(1)} s`);
    if (result instanceof LlmActivations) await this.handImatrixToSidebar(result);
    return result.view;
  }

  /** Writes the importance matrix where the sweep reads it and makes it this checkpoint's (imatrix mode). */
  private async handImatrixToSidebar(result: LlmActivations): Promise<void> {
    const id = createHash('sha256').update(this.uri.fsPath).digest('hex').slice(0, 16);
    const file = join(this.deps.storageDir, `${basename(this.uri.fsPath).replace(/[^\w.-]+/g, '_')}-${id}.imatrix.gguf`);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, result.imatrixGguf);
    this.deps.sensitivity.setImatrix(this.deps.sensitivity.analysisOf(this.uri), file);
  }

  private async siteDetail(id: string, weight: string | undefined, signal: AbortSignal): Promise<SiteDetailReply> {
    const result = this.result;
    if (!result) throw new QuantLensError('USAGE', 'run the calibration first');
    const pool = this.deps.pool.kernel;
    return result instanceof LlmActivations ? result.detail(id, weight, pool, signal) : result.detail(id, pool, signal);
  }

  private async act(action: ActivationsActionRequest['action']): Promise<ActivationsActionReply> {
    const result = this.result;
    const reply = (message: string | null): ActivationsActionReply => ({ quantized: this.quantized, evaluation: this.evaluation, message });
    if (action === 'imatrixSweep') {
      void vscode.commands.executeCommand('quantlens.runSensitivity', this.uri);
      return reply(null);
    }
    if (!(result instanceof OnnxActivations)) throw new QuantLensError('USAGE', 'run the calibration of an ONNX model first');
    const pool = this.deps.pool.kernel;
    switch (action) {
      case 'quantize': {
        const choice = await pickQuantizeChoice();
        if (!choice) return reply(null);
        const output = await vscode.window.showInputBox({
          title: `Quantize ${this.fileName} (int8 QDQ): output file`,
          value: quantizedPathFor(this.uri.fsPath),
          prompt: 'Written to a temporary file beside it and renamed when complete; an existing file is never replaced.',
          validateInput: (value) => {
            if (!value.trim()) return 'Give an output path.';
            if (value === this.uri.fsPath) return 'The output cannot be the input.';
            if (existsSync(value)) return `${basename(value)} exists; QuantLens never overwrites.`;
            if (!existsSync(dirname(value))) return `The folder ${dirname(value)} does not exist.`;
            return undefined;
          },
        });
        if (!output) return reply(null);
        const q = await this.withJob(`quantizing ${this.fileName} to int8 QDQ`, (signal, report) =>
          result.quantize(output, choice, pool, signal, (d, t) => report(d < t ? 'weights' : 'written', d, t)),
        );
        this.quantized = { path: q.output, fileName: basename(q.output) };
        this.evaluation = null;
        const ranges = q.activationRanges.length ? `, ${q.activationRanges.length} activation ranges (${q.rangeMethod})` : '';
        return reply(`Wrote ${basename(q.output)}: ${q.quantized.length} weights int8 per channel${ranges}, ${(q.bytes / 1e6).toFixed(2)} MB (opset ${q.opsetFrom} → ${q.opsetTo}).`);
      }
      case 'evaluate': {
        const candidate = this.quantized?.path;
        if (!candidate) throw new QuantLensError('USAGE', 'quantize the model first');
        this.evaluation = await this.withJob(`evaluating ${basename(candidate)} against ${this.fileName}`, (signal, report) =>
          result.evaluate(candidate, pool, signal, (d, t) => report('samples', d, t)),
        );
        return reply(null);
      }
      case 'compare': {
        const candidate = this.quantized?.path;
        if (!candidate) throw new QuantLensError('USAGE', 'quantize the model first');
        await vscode.commands.executeCommand('quantlens.compareCheckpoints', this.uri, [this.uri, vscode.Uri.file(candidate)]);
        return reply(null);
      }
      case 'outputSensitivity': {
        const r = await this.withJob(`output sensitivity of ${this.fileName}`, (signal, report) => result.outputSensitivity(pool, signal, (d, t, label) => report(label, d, t)));
        this.deps.sensitivity.showResult(this.deps.sensitivity.analysisOf(this.uri), r.sweep);
        this.deps.sensitivity.setActive(this.uri);
        void vscode.commands.executeCommand('quantlens.sensitivity.focus');
        const worst = r.ranking.slice(0, 3).join(', ');
        return reply(`${r.layers.length} layers ranked by output SQNR at ${r.types[0]} in the Sensitivity sidebar; most sensitive: ${worst}.`);
      }
    }
  }

  override dispose(): void {
    if (this.isDisposed) return;
    super.dispose();
    this.panel.dispose();
  }
}

/** Weights only, or W8A8 with one of the range methods over the calibrated histograms. */
async function pickQuantizeChoice(): Promise<QuantizeChoice | undefined> {
  const items: Array<vscode.QuickPickItem & { choice: QuantizeChoice }> = [
    { label: 'W8A8, MSE-optimal ranges', description: 'weights int8 per channel, activations int8 per tensor', detail: 'Each activation range minimises the expected squared error over its calibration histogram.', choice: { activations: true, rangeMethod: 'mse' } },
    { label: 'W8A8, percentile ranges', description: 'weights int8 per channel, activations int8 per tensor', detail: 'Ranges keep 99.99% of the calibrated values.', choice: { activations: true, rangeMethod: 'percentile' } },
    { label: 'W8A8, min/max ranges', description: 'weights int8 per channel, activations int8 per tensor', detail: 'Ranges are the calibrated minimum and maximum.', choice: { activations: true, rangeMethod: 'minmax' } },
    { label: 'Weights only', description: 'weights int8 per channel, activations float', detail: 'DequantizeLinear behind every Conv/MatMul/Gemm weight.', choice: { activations: false, rangeMethod: 'minmax' } },
  ];
  const picked = await vscode.window.showQuickPick(items, { title: 'Quantize (int8 QDQ) with the calibrated ranges', matchOnDescription: true });
  return picked?.choice;
}
