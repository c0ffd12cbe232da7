import * as vscode from 'vscode';
import { toQuantLensError } from '../../core/errors';
import { ROLES } from '../../core/names';
import type { Plan } from '../../core/plan/plan';
import { defaultFormats, nominalBitsPerWeight, quantFormat } from '../../core/sensitivity/formats';
import type { BitMapView, PlanHostSide, PlanPanelState, PlanView, PlanWebviewSide } from '../../shared/protocol';
import { RpcEndpoint } from '../../shared/rpc';
import { Disposable } from '../dispose';
import type { ModelAnalysis, SensitivityService } from '../sensitivity/service';
import { webviewOptions, webviewPage } from '../webview-page';

/**
 * The plan panel: budget slider, trade-off curve, bit map, pins and the recipe/quantize actions for
 * the active checkpoint. One panel; it follows the checkpoint the sidebar shows.
 */
export class PlanPanel extends Disposable {
  static readonly viewType = 'quantlens.plan';
  private static current: PlanPanel | undefined;
  private readonly rpc: RpcEndpoint<PlanWebviewSide, PlanHostSide>;
  private ready = false;

  /** Opens the panel (or brings it forward). */
  static show(extensionUri: vscode.Uri, service: SensitivityService, quantizeAvailable: () => boolean): PlanPanel {
    if (PlanPanel.current && !PlanPanel.current.isDisposed) {
      PlanPanel.current.panel.reveal(undefined, true);
      return PlanPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(PlanPanel.viewType, 'QuantLens Plan', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(extensionUri));
    PlanPanel.current = new PlanPanel(panel, extensionUri, service, quantizeAvailable);
    return PlanPanel.current;
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly service: SensitivityService,
    private readonly quantizeAvailable: () => boolean,
  ) {
    super();
    this.rpc = new RpcEndpoint((message) => void panel.webview.postMessage(message));
    this._register({ dispose: () => this.rpc.dispose() });
    this._register(panel.webview.onDidReceiveMessage((message) => this.rpc.receive(message)));
    this._register(panel.onDidDispose(() => this.dispose()));
    this._register(service.onDidChange(() => this.push()));
    this.rpc.handle('ready', () => {
      this.ready = true;
      return this.state();
    });
    this.rpc.handle('setBudget', ({ budget }) => {
      const m = this.service.active;
      if (m) this.service.setBudget(m, budget);
    });
    this.rpc.handle('setPins', ({ pins, exclude }) => {
      const m = this.service.active;
      if (!m) return;
      try {
        this.service.setPins(m, pins, exclude);
      } catch (err) {
        throw toQuantLensError(err);
      }
    });
    this.rpc.on('planAction', ({ action }) => {
      const command = { exportRecipe: 'quantlens.exportRecipe', quantizeWithPlan: 'quantlens.quantizeWithPlan', runSweep: 'quantlens.runSensitivity' }[action];
      void vscode.commands.executeCommand(command);
    });
    this.rpc.on('webviewError', ({ message }) => console.error(`plan webview: ${message}`));
    panel.webview.html = webviewPage(panel.webview, extensionUri, 'plan', 'QuantLens Plan');
    this.push();
  }

  private push(): void {
    const m = this.service.active;
    this.panel.title = m ? `Plan: ${m.fileName}` : 'QuantLens Plan';
    if (this.ready) this.rpc.notify('planState', this.state());
  }

  private state(): PlanPanelState {
    return planPanelState(this.service.active, this.quantizeAvailable());
  }

  override dispose(): void {
    if (PlanPanel.current === this) PlanPanel.current = undefined;
    super.dispose();
    this.panel.dispose();
  }
}

/** What the panel draws for an analysis (exported for tests). */
export function planPanelState(m: ModelAnalysis | undefined, quantizeAvailable: boolean): PlanPanelState {
  if (!m) {
    return { fileName: '', target: 'gguf', mode: 'weights', status: 'noSweep', message: 'Open a checkpoint in the inspector.', formats: [], pins: [], exclude: [], quantizeAvailable: false };
  }
  const types = m.result?.types ?? defaultFormats(m.target).map((f) => f.name);
  const formats = types
    .map((name) => ({ name, bitsPerWeight: nominalBitsPerWeight(quantFormat(name, m.target)) }))
    .sort((a, b) => b.bitsPerWeight - a.bitsPerWeight);
  const status = m.sweep ? 'sweeping' : m.plan ? 'ready' : m.result || m.planError ? 'error' : 'noSweep';
  return {
    fileName: m.fileName,
    target: m.target,
    mode: m.result?.mode ?? (m.imatrixPath ? 'imatrix' : 'weights'),
    status,
    progress: m.sweep?.progress,
    message: m.planError,
    formats,
    pins: m.pins,
    exclude: m.exclude,
    plan: m.plan && planView(m.plan),
    quantizeAvailable: quantizeAvailable && m.plan !== undefined,
  };
}

export function planView(plan: Plan): PlanView {
  const counts: Record<string, number> = {};
  for (const t of plan.tensors) counts[t.format ?? 'kept'] = (counts[t.format ?? 'kept'] ?? 0) + 1;
  return {
    budget: plan.budget,
    bitsPerWeight: plan.bitsPerWeight,
    bytes: plan.bytes,
    params: plan.params,
    estimatedError: plan.estimatedError,
    gap: plan.gap,
    errorUnit: plan.errorUnit,
    frontier: plan.frontier,
    uniform: plan.uniform,
    bitmap: bitMap(plan),
    counts,
    warnings: plan.warnings,
  };
}

/** Layers × roles of the matrices (1-D tensors left out), each cell the format with the most bits among its tensors. */
export function bitMap(plan: Plan): BitMapView {
  const matrices = plan.tensors.filter((t) => t.shape.length >= 2);
  const roles = ROLES.filter((r) => matrices.some((t) => t.role === r));
  const layerSet = new Set(matrices.map((t) => t.layer));
  const layers = [...layerSet].sort((a, b) => (a ?? -1) - (b ?? -1));
  const bits = (f: string) => nominalBitsPerWeight(quantFormat(f, plan.target));
  const cells = layers.map((layer) =>
    roles.map((role) => {
      const here = matrices.filter((t) => t.layer === layer && t.role === role);
      if (here.length === 0) return null;
      const formats = here.map((t) => t.format).filter((f): f is string => f !== null);
      if (formats.length === 0) return 'kept';
      return formats.reduce((best, f) => (bits(f) > bits(best) ? f : best));
    }),
  );
  return { layers, roles, cells };
}
