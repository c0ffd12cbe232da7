import * as vscode from 'vscode';
import { basename } from 'node:path';
import { QuantLensError, toQuantLensError } from '../../core/errors';
import type { Budget, PinRule } from '../../core/plan/plan';
import { runSensitivity, type SensitivityResult } from '../../core/sensitivity';
import type { QuantTarget } from '../../core/sensitivity/formats';
import { poolSweepRunner } from '../../kernel/pool-sensitivity';
import type { LazyKernelPool } from '../kernel-pool';
import { planOf, rankLayers, type AnalysisState, type LayerSensitivity } from './sensitivity-model';
/** Tree and panel refreshes while a sweep streams in, at most this often. */
const STREAM_REFRESH_MS = 250;

/** Sensitivity and plan of one checkpoint. */
export interface ModelAnalysis extends AnalysisState {
  readonly uri: vscode.Uri;
}

function sweepTarget(): QuantTarget {
  return vscode.workspace.getConfiguration('quantlens').get<string>('sensitivity.target', 'gguf') === 'safetensors' ? 'safetensors' : 'gguf';
}

function sweepTypes(): string[] | undefined {
  const types = vscode.workspace.getConfiguration('quantlens').get<string[]>('sensitivity.types', []);
  return Array.isArray(types) && types.length > 0 ? types : undefined;
}

/**
 * Sensitivity sweeps and plans per checkpoint, for the sidebar, the plan panel and Quantize. The
 * "active" checkpoint follows the inspector the user looks at. Sweeps run in the kernel pool and are
 * cached under the extension's global storage (keyed by the files and the settings).
 */
export class SensitivityService implements vscode.Disposable {
  private readonly models = new Map<string, ModelAnalysis>();
  private activeUri: vscode.Uri | undefined;
  private readonly changed = new vscode.EventEmitter<ModelAnalysis | undefined>();
  /** Fires when the active checkpoint changes, or its sweep or plan does (the analysis, or undefined). */
  readonly onDidChange = this.changed.event;
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: LazyKernelPool,
    private readonly cacheDir: string,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  get active(): ModelAnalysis | undefined {
    return this.activeUri ? this.models.get(this.activeUri.toString()) : undefined;
  }

  /** The analysis of a checkpoint (created empty on first use). */
  analysisOf(uri: vscode.Uri): ModelAnalysis {
    const key = uri.toString();
    let m = this.models.get(key);
    if (!m) {
      m = {
        uri,
        fileName: basename(uri.fsPath),
        target: sweepTarget(),
        imatrixPath: undefined,
        budget: null,
        pins: [],
        exclude: [],
        tensors: [],
        result: undefined,
        sweep: undefined,
        plan: undefined,
        planError: undefined,
      };
      this.models.set(key, m);
    }
    return m;
  }

  setActive(uri: vscode.Uri | undefined): void {
    if (uri?.toString() === this.activeUri?.toString() || (uri && uri.scheme !== 'file')) return;
    if (!uri) return; // keep the last checkpoint when the user switches to another kind of editor
    this.activeUri = uri;
    this.analysisOf(uri);
    this.changed.fire(this.active);
  }

  /**
   * Runs the sweep with a cancellable progress notification; results stream into the tree.
   * Resolves when done (false when cancelled).
   */
  async runSweep(m: ModelAnalysis): Promise<boolean> {
    if (m.sweep) return false;
    if (m.uri.scheme !== 'file') throw new QuantLensError('UNSUPPORTED', 'the sensitivity sweep reads local files only');
    const controller = new AbortController();
    m.sweep = { progress: 0, controller };
    m.tensors = [];
    m.result = undefined;
    m.plan = undefined;
    m.planError = undefined;
    m.target = sweepTarget();
    this.fire(m);
    const full = vscode.workspace.getConfiguration('quantlens').get<boolean>('sensitivity.fullSweep', false);
    try {
      return await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: `QuantLens: sensitivity of ${m.fileName}`, cancellable: true },
        async (progress, token) => {
          const cancel = token.onCancellationRequested(() => controller.abort());
          let reported = 0;
          try {
            const result = await runSensitivity(m.uri.fsPath, {
              target: m.target,
              types: sweepTypes(),
              imatrixPath: m.imatrixPath,
              sampleElements: full ? null : undefined,
              cacheDir: this.cacheDir,
              runner: poolSweepRunner(this.pool.kernel, m.uri.fsPath),
              signal: controller.signal,
              onProgress: (p) => {
                const share = p.workTotal > 0 ? p.workDone / p.workTotal : 1;
                m.sweep && (m.sweep.progress = share);
                progress.report({ message: `${p.tensorsDone} / ${p.tensors} tensors`, increment: (share - reported) * 100 });
                reported = share;
                this.fireSoon(m);
              },
              onTensor: (t) => {
                m.tensors.push(t);
                this.fireSoon(m);
              },
            });
            m.result = result;
            m.tensors = result.tensors;
            this.log.info(`sensitivity of ${m.fileName}: ${result.tensors.length} tensors, ${result.mode}, ${result.cached ? 'from the cache' : `${result.seconds.toFixed(1)} s`}`);
            this.replan(m);
            return true;
          } finally {
            cancel.dispose();
          }
        },
      );
    } catch (err) {
      const e = toQuantLensError(err);
      if (e.code === 'CANCELLED') {
        m.planError = 'The sweep was cancelled.';
        return false;
      }
      m.planError = e.message;
      throw e;
    } finally {
      m.sweep = undefined;
      this.fire(m);
    }
  }

  cancelSweep(m: ModelAnalysis): void {
    m.sweep?.controller.abort();
  }

  /** Uses an importance matrix for this checkpoint's sweeps (and Quantize); a finished sweep is now stale. */
  setImatrix(m: ModelAnalysis, path: string | undefined): void {
    m.imatrixPath = path;
    m.result = undefined;
    m.tensors = [];
    m.plan = undefined;
    m.planError = undefined;
    this.fire(m);
  }

  /** Shows a sweep measured elsewhere (an ONNX model's output sensitivity, from the Activations view) and plans from it. */
  showResult(m: ModelAnalysis, result: SensitivityResult): void {
    m.sweep?.controller.abort();
    m.result = result;
    m.tensors = result.tensors;
    m.target = result.target;
    this.replan(m);
    this.fire(m);
  }

  setBudget(m: ModelAnalysis, budget: Budget): void {
    m.budget = budget;
    this.replan(m);
    this.fire(m);
  }

  setPins(m: ModelAnalysis, pins: PinRule[], exclude: string[]): void {
    m.pins = pins;
    m.exclude = exclude;
    this.replan(m);
    this.fire(m);
  }

  /** Recomputes the plan from the finished sweep (the planner takes milliseconds). */
  private replan(m: ModelAnalysis): void {
    m.plan = undefined;
    m.planError = undefined;
    const result = m.result;
    if (!result) return;
    try {
      const { plan, budget } = planOf(result, m.budget, m.pins, m.exclude);
      m.plan = plan;
      m.budget = budget;
    } catch (err) {
      m.planError = toQuantLensError(err).message;
    }
  }

  /** Per-layer groups of the measured tensors, most sensitive first (at the reference format). */
  layers(m: ModelAnalysis): { reference: string | undefined; layers: LayerSensitivity[] } {
    const types = m.result?.types ?? [...new Set(m.tensors.flatMap((t) => Object.keys(t.errors)))];
    return rankLayers(m.tensors, types, m.target, m.result?.mode);
  }

  private fire(m: ModelAnalysis): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    if (this.active === m) this.changed.fire(m);
  }

  private fireSoon(m: ModelAnalysis): void {
    this.refreshTimer ??= setTimeout(() => this.fire(m), STREAM_REFRESH_MS);
  }

  dispose(): void {
    clearTimeout(this.refreshTimer);
    for (const m of this.models.values()) m.sweep?.controller.abort();
    this.changed.dispose();
  }
}
