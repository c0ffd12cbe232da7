import * as vscode from 'vscode';
import { toQuantLensError } from '../../core/errors';
import type { PlanHostSide, PlanPanelState, PlanWebviewSide } from '../../shared/protocol';
import type { RpcEndpoint } from '../../shared/rpc';
import { Disposable } from '../dispose';
import type { SensitivityService } from '../sensitivity/service';
import { connectWebview, webviewOptions, webviewPage } from '../webview-page';
import { planPanelState } from './plan-model';

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
  static show(extensionUri: vscode.Uri, service: SensitivityService, quantizeAvailable: () => boolean, log: vscode.LogOutputChannel): PlanPanel {
    if (PlanPanel.current && !PlanPanel.current.isDisposed) {
      PlanPanel.current.panel.reveal(undefined, true);
      return PlanPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(PlanPanel.viewType, 'QuantLens Plan', { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, webviewOptions(extensionUri));
    PlanPanel.current = new PlanPanel(panel, extensionUri, service, quantizeAvailable, log);
    return PlanPanel.current;
  }

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly service: SensitivityService,
    private readonly quantizeAvailable: () => boolean,
    log: vscode.LogOutputChannel,
  ) {
    super();
    this.rpc = connectWebview(panel.webview, 'plan', log, (d) => this._register(d));
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
