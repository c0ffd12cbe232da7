import * as vscode from 'vscode';
import { toQuantLensError } from '../../core/errors';
import type { PlanHostSide, PlanPanelState, PlanWebviewSide } from '../../shared/protocol';
import { RpcEndpoint } from '../../shared/rpc';
import { Disposable } from '../dispose';
import type { SensitivityService } from '../sensitivity/service';
import { webviewOptions, webviewPage } from '../webview-page';
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
