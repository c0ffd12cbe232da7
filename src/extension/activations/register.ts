import * as vscode from 'vscode';
import { toQuantLensError } from '../../core/errors';
import { activeTabUri } from '../commands';
import { ActivationsPanel, type ActivationsDeps } from './panel';

/** QuantLens: Show Activations (inspector title bar, explorer context menu, command palette). */
export function registerActivations(context: vscode.ExtensionContext, deps: ActivationsDeps): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('quantlens.showActivations', (uri?: vscode.Uri) => {
      const target = uri instanceof vscode.Uri ? uri : activeTabUri();
      if (!target) {
        void vscode.window.showInformationMessage('QuantLens: open an LLM checkpoint (.gguf, .safetensors, .pt) or an ONNX model first.');
        return;
      }
      try {
        ActivationsPanel.show(deps, target);
      } catch (err) {
        void vscode.window.showErrorMessage(`QuantLens: ${toQuantLensError(err).message}`);
      }
    }),
  );
}
