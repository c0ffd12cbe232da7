import * as vscode from 'vscode';
import { registerCommands } from './commands';
import { InspectorEditorProvider } from './inspector/provider';
import { registerWorkflows } from './workflows';

/**
 * Entry point. Contributions activate the extension (`activationEvents: []`); a failure here is
 * shown to the user rather than left in the extension host log (rust-analyzer's `main.ts`).
 */
export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('QuantLens', { log: true });
  context.subscriptions.push(log);
  try {
    const inspector = InspectorEditorProvider.register(context, log);
    registerCommands(context, inspector);
    registerWorkflows(context, log);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.error(`activation failed: ${message}`);
    void vscode.window.showErrorMessage(`QuantLens failed to start: ${message}`, 'Show Log').then((choice) => {
      if (choice) log.show();
    });
    throw err;
  }
}

export function deactivate(): void {}
