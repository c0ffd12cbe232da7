import * as vscode from 'vscode';
import { basename } from 'node:path';
import { QuantLensError, toQuantLensError } from '../../core/errors';
import { compareOutputs, runModelFile } from '../../core/onnx/evaluate';
import type { CalibrationSet } from '../../core/onnx/samples';
import { poolOnnxRunner } from '../../kernel/onnx';
import type { CalibrationRequest, CompareOutputsProgressEvent, CompareOutputsSetup, CompareOutputsView, PickPathReply, PickPathRequest } from '../../shared/protocol';
import { DEFAULT_IMAGE_NORMALISATION, onnxCalibrationSet, readOnnxFacts, type OnnxModelFacts } from '../activations/onnx';
import type { LazyKernelPool } from '../kernel-pool';

/** Synthetic samples when the user gives no inputs. */
export const DEFAULT_OUTPUT_SAMPLES = 8;

const SOURCE_NAMES: Record<CalibrationSet['sources'][number], string> = { npy: '.npy', npz: '.npz', images: 'image', audio: '.wav', synthetic: 'synthetic' };

const DIALOG_FILTERS: Record<PickPathRequest['what'], Record<string, string[]> | undefined> = {
  images: undefined,
  arrays: { 'NumPy arrays': ['npy', 'npz'] },
  audio: { 'WAV audio': ['wav'] },
  text: undefined,
};

export interface OutputsListener {
  progress(event: CompareOutputsProgressEvent): void;
  result(view: CompareOutputsView): void;
}

/**
 * The Outputs section of a comparison of two ONNX models: both run in ONNX Runtime in the kernel
 * workers on the same calibration samples (synthetic by default, or files the user picks, decoded in
 * a worker), their graph outputs compared (core/onnx/evaluate.ts: SQNR, relative MSE, top-1
 * agreement for classifier-like outputs). One run at a time, cancellable, with a notification.
 */
export class OutputComparison {
  private running: AbortController | undefined;
  private result: CompareOutputsView | null = null;
  private lastProgress: CompareOutputsProgressEvent | null = null;

  private constructor(
    private readonly a: vscode.Uri,
    private readonly b: vscode.Uri,
    private readonly facts: OnnxModelFacts,
    private readonly pool: LazyKernelPool,
    private readonly listener: OutputsListener,
  ) {}

  static async open(a: vscode.Uri, b: vscode.Uri, pool: LazyKernelPool, listener: OutputsListener, signal: AbortSignal): Promise<OutputComparison> {
    return new OutputComparison(a, b, await readOnnxFacts(a.fsPath, signal), pool, listener);
  }

  setup(): CompareOutputsSetup {
    return {
      inputs: this.facts.inputs,
      symbolicDims: this.facts.symbolicDims,
      defaultImage: DEFAULT_IMAGE_NORMALISATION,
      defaultSamples: DEFAULT_OUTPUT_SAMPLES,
      result: this.result,
      progress: this.lastProgress,
    };
  }

  /** Synthetic inputs need no answer from the user when the model has no symbolic dims to give. */
  get runsBySelf(): boolean {
    return this.facts.symbolicDims.length === 0;
  }

  /** The default run: synthetic samples; its result goes to the listener. */
  async runSynthetic(signal: AbortSignal): Promise<void> {
    try {
      const view = await this.run(
        { kind: 'onnx', source: 'synthetic', path: '', image: DEFAULT_IMAGE_NORMALISATION, samples: DEFAULT_OUTPUT_SAMPLES, dims: {} },
        signal,
      );
      this.listener.result(view);
    } catch {
      // reported through the progress event
    }
  }

  async run(request: Extract<CalibrationRequest, { kind: 'onnx' }>, signal: AbortSignal): Promise<CompareOutputsView> {
    if (this.running) throw new QuantLensError('USAGE', 'the outputs are already being compared');
    const controller = new AbortController();
    this.running = controller;
    const both = AbortSignal.any([signal, controller.signal]);
    const started = performance.now();
    const report = (stage: string, done: number, total: number, state: CompareOutputsProgressEvent['state'] = 'running', message?: string) => {
      this.lastProgress = { stage, done, total, state, ...(message ? { message } : {}) };
      this.listener.progress(this.lastProgress);
    };
    try {
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `QuantLens: outputs of ${basename(this.a.fsPath)} and ${basename(this.b.fsPath)}`, cancellable: true },
        async (progress, token) => {
          const cancel = token.onCancellationRequested(() => controller.abort());
          try {
            const step = (stage: string) => (done: number, total: number) => {
              progress.report({ message: `${stage} ${done}/${total}` });
              report(stage, done, total);
            };
            report('reading inputs', 0, 1);
            const set = await onnxCalibrationSet(this.facts, request, this.pool.kernel, both, step('reading inputs'));
            const runner = poolOnnxRunner(this.pool.kernel);
            const first = await runModelFile(this.a.fsPath, set.samples, runner, { signal: both, onProgress: step(basename(this.a.fsPath)) });
            const second = await runModelFile(this.b.fsPath, set.samples, runner, { signal: both, onProgress: step(basename(this.b.fsPath)) });
            const outputs = compareOutputs(first, second);
            const view: CompareOutputsView = {
              candidate: basename(this.b.fsPath),
              samples: set.samples.length,
              synthetic: set.synthetic,
              outputs: outputs.map((o) => ({ name: o.name, sqnrDb: o.sqnrDb, relMse: o.relMse, top1Agreement: o.top1Agreement, rows: o.rows })),
              summary: `${set.samples.length} samples from ${set.synthetic ? 'synthetic inputs' : `${set.files.length} ${set.sources.map((s) => SOURCE_NAMES[s]).join(' + ')} file${set.files.length === 1 ? '' : 's'}`}`,
              seconds: (performance.now() - started) / 1000,
            };
            this.result = view;
            report('done', 1, 1, 'done');
            return view;
          } finally {
            cancel.dispose();
          }
        },
      );
    } catch (err) {
      const e = both.aborted ? new QuantLensError('CANCELLED', 'cancelled') : toQuantLensError(err);
      report(e.code === 'CANCELLED' ? 'cancelled' : 'failed', 0, 1, e.code === 'CANCELLED' ? 'cancelled' : 'error', e.message);
      throw e;
    } finally {
      this.running = undefined;
    }
  }

  cancel(): void {
    this.running?.abort();
  }

  async pickPath({ what }: PickPathRequest): Promise<PickPathReply> {
    const folder = what === 'images';
    const picked = await vscode.window.showOpenDialog({
      title: folder ? 'Folder of calibration images (.png, .jpg)' : `Calibration ${what === 'arrays' ? '.npy / .npz' : '.wav'} file`,
      canSelectFiles: !folder,
      canSelectFolders: folder,
      canSelectMany: false,
      defaultUri: vscode.Uri.joinPath(this.a, '..'),
      filters: DIALOG_FILTERS[what],
    });
    return { path: picked?.[0]?.fsPath ?? null };
  }
}
