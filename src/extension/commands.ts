import * as vscode from 'vscode';
import { toQuantLensError } from '../core/errors';
import { InspectorEditorProvider } from './inspector/provider';

/** Commands declared in package.json's contributes.commands. */
export function registerCommands(context: vscode.ExtensionContext, inspector: InspectorEditorProvider): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('quantlens.openInInspector', async (uri?: vscode.Uri) => {
      const target = uri instanceof vscode.Uri ? uri : activeTabUri();
      if (!target) {
        void vscode.window.showInformationMessage('QuantLens: select a checkpoint file to open in the inspector.');
        return;
      }
      await vscode.commands.executeCommand('vscode.openWith', target, InspectorEditorProvider.viewType);
    }),

    vscode.commands.registerCommand('quantlens.analyzeAllTensors', async () => {
      const session = inspector.activeSession;
      if (!session) {
        void vscode.window.showInformationMessage('QuantLens: open a checkpoint in the inspector first.');
        return;
      }
      try {
        await session.analyzeAll();
      } catch (err) {
        void vscode.window.showErrorMessage(`QuantLens: ${toQuantLensError(err).message}`);
      }
    }),

    vscode.commands.registerCommand('quantlens.copyTensorStats', async () => {
      const session = inspector.activeSession;
      if (session?.selectedIndex === undefined) {
        void vscode.window.showInformationMessage('QuantLens: select a tensor in the inspector first.');
        return;
      }
      try {
        await vscode.env.clipboard.writeText(await session.statsJson(session.selectedIndex));
      } catch (err) {
        void vscode.window.showErrorMessage(`QuantLens: ${toQuantLensError(err).message}`);
      }
    }),

    // Reveal Tensor(uri, tensor name or index): opens the file in the inspector and selects the tensor.
    vscode.commands.registerCommand('quantlens.revealTensor', async (first?: unknown, second?: unknown) => {
      const { uri, tensor } = revealArguments(first, second);
      const target = uri ?? inspector.activeSession?.document.uri;
      if (!target || tensor === undefined) return;
      await vscode.commands.executeCommand('vscode.openWith', target, InspectorEditorProvider.viewType);
      const session = inspector.sessionFor(target);
      const result = session?.document.result;
      if (!session || result?.kind !== 'model') return;
      const index = typeof tensor === 'number' ? tensor : result.model.tensors.findIndex((t) => t.name === tensor);
      if (index < 0 || index >= result.model.tensors.length) {
        void vscode.window.showWarningMessage(`QuantLens: no tensor ${String(tensor)} in ${target.path.split('/').pop()}`);
        return;
      }
      session.reveal(index);
    }),
  );
}

/**
 * Reveal Tensor's arguments: `(uri, tensor)` from code (the sidebar, the comparison), or one
 * `{ uri?, tensor }` object with the URI as text from a keybinding or a `command:` link.
 */
export function revealArguments(first: unknown, second: unknown): { uri?: vscode.Uri; tensor?: string | number } {
  const tensorOf = (x: unknown): string | number | undefined => (typeof x === 'string' || typeof x === 'number' ? x : undefined);
  if (first instanceof vscode.Uri) return { uri: first, tensor: tensorOf(second) };
  if (first && typeof first === 'object') {
    const { uri, tensor } = first as { uri?: unknown; tensor?: unknown };
    const parsed = typeof uri === 'string' ? (/^[a-z][\w+.-]*:/i.test(uri) ? vscode.Uri.parse(uri) : vscode.Uri.file(uri)) : undefined;
    return { uri: parsed, tensor: tensorOf(tensor) };
  }
  return { tensor: tensorOf(second) };
}

/** The URI of the active tab: a custom editor (the inspector itself) or a text editor. */
export function activeTabUri(): vscode.Uri | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom || input instanceof vscode.TabInputText) return input.uri;
  return undefined;
}
