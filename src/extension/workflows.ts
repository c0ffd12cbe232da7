import * as vscode from 'vscode';
import { basename } from 'node:path';
import { toQuantLensError } from '../core/errors';
import { registerActivations } from './activations/register';
import { ComparePanel } from './compare/panel';
import { LazyKernelPool } from './kernel-pool';
import { PlanPanel } from './plan/panel';
import { parseBudget } from './plan/plan-model';
import { exportRecipe } from './plan/recipe';
import { QuantizeCommand } from './quantize/command';
import { SensitivityService } from './sensitivity/service';
import { SensitivityTreeProvider } from './sensitivity/tree';

const INSPECTOR_VIEW_TYPES = new Set(['quantlens.inspector', 'quantlens.inspector.bin']);

function fail(err: unknown): void {
  const e = toQuantLensError(err);
  if (e.code !== 'CANCELLED') void vscode.window.showErrorMessage(`QuantLens: ${e.message}`);
}

/** The checkpoint a command acts on: its argument, else the inspector in front, else the sidebar's. */
function targetOf(service: SensitivityService, uri: unknown): vscode.Uri | undefined {
  if (uri instanceof vscode.Uri) return uri;
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  if (input instanceof vscode.TabInputCustom && INSPECTOR_VIEW_TYPES.has(input.viewType)) return input.uri;
  return service.active?.uri;
}

/**
 * The sensitivity sidebar, the plan panel, Quantize and the comparison view: their services and
 * commands (declared in package.json's contributes).
 */
export function registerWorkflows(context: vscode.ExtensionContext, log: vscode.LogOutputChannel): void {
  const pool = new LazyKernelPool();
  const service = new SensitivityService(pool, vscode.Uri.joinPath(context.globalStorageUri, 'sensitivity-cache').fsPath, log);
  const tree = new SensitivityTreeProvider(service);
  const quantize = new QuantizeCommand(pool, service, log);
  const extensionUri = context.extensionUri;
  const openPlan = () => PlanPanel.show(extensionUri, service, () => true, log);
  registerActivations(context, { extensionUri, pool, sensitivity: service, storageDir: vscode.Uri.joinPath(context.globalStorageUri, 'activations').fsPath, log });

  const followInspector = (): void => {
    const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
    if (input instanceof vscode.TabInputCustom && INSPECTOR_VIEW_TYPES.has(input.viewType)) service.setActive(input.uri);
  };
  followInspector();
  void vscode.commands.executeCommand('setContext', 'quantlens.quantizeAvailable', true);

  const analysisFor = (uri: unknown) => {
    const target = targetOf(service, uri);
    if (!target) {
      void vscode.window.showInformationMessage('QuantLens: open a checkpoint in the inspector first.');
      return undefined;
    }
    service.setActive(target);
    return service.analysisOf(target);
  };

  context.subscriptions.push(
    pool,
    service,
    tree,
    vscode.window.tabGroups.onDidChangeTabs(followInspector),
    vscode.window.tabGroups.onDidChangeTabGroups(followInspector),

    vscode.commands.registerCommand('quantlens.runSensitivity', async (uri?: vscode.Uri) => {
      const m = analysisFor(uri);
      if (!m) return;
      await vscode.commands.executeCommand(`${SensitivityTreeProvider.viewId}.focus`);
      try {
        await service.runSweep(m);
      } catch (err) {
        fail(err);
      }
    }),

    vscode.commands.registerCommand('quantlens.loadImatrix', async (uri?: vscode.Uri) => {
      const m = analysisFor(uri);
      if (!m) return;
      const picked = await vscode.window.showOpenDialog({
        title: `Importance matrix for ${m.fileName}`,
        canSelectMany: false,
        defaultUri: vscode.Uri.joinPath(m.uri, '..'),
        filters: { 'llama.cpp importance matrix': ['gguf', 'dat', 'imatrix'], 'All files': ['*'] },
      });
      if (!picked?.[0]) return;
      const hadSweep = m.result !== undefined;
      service.setImatrix(m, picked[0].fsPath);
      void vscode.window.showInformationMessage(`QuantLens: ${basename(picked[0].fsPath)} weights the sweep and Quantize for ${m.fileName}.`);
      if (hadSweep) await vscode.commands.executeCommand('quantlens.runSensitivity', m.uri);
    }),

    vscode.commands.registerCommand('quantlens.setBudget', async (uri?: vscode.Uri) => {
      const m = analysisFor(uri);
      if (!m) return;
      const current = m.budget;
      const text = await vscode.window.showInputBox({
        title: `Budget for ${m.fileName}`,
        prompt: 'Bits per weight (e.g. 4.5) or the size of the tensors (e.g. 120MB, 3.9GiB)',
        value: current ? (current.kind === 'bitsPerWeight' ? String(current.value) : `${(current.value / 1e6).toFixed(1)}MB`) : '4.5',
        validateInput: (v) => {
          try {
            const b = parseBudget(v);
            return b.value > 0 ? undefined : 'The budget must be positive.';
          } catch (err) {
            return toQuantLensError(err).message;
          }
        },
      });
      if (text === undefined) return;
      service.setBudget(m, parseBudget(text));
      if (!m.result) {
        const run = 'Run Sensitivity Sweep';
        if ((await vscode.window.showInformationMessage(`QuantLens: the budget applies once ${m.fileName} has a sensitivity sweep.`, run)) === run) {
          await vscode.commands.executeCommand('quantlens.runSensitivity', m.uri);
        }
      } else if (m.planError) {
        void vscode.window.showWarningMessage(`QuantLens: ${m.planError}`);
      }
    }),

    vscode.commands.registerCommand('quantlens.openPlan', (uri?: vscode.Uri) => {
      const target = targetOf(service, uri);
      if (target) service.setActive(target);
      openPlan();
    }),

    vscode.commands.registerCommand('quantlens.exportRecipe', async (uri?: vscode.Uri) => {
      const m = analysisFor(uri);
      if (!m) return;
      if (!m.plan) {
        void vscode.window.showInformationMessage(`QuantLens: ${m.planError ?? `run the sensitivity sweep of ${m.fileName} first; the plan comes from it.`}`);
        return;
      }
      try {
        await exportRecipe(m, m.plan);
      } catch (err) {
        fail(err);
      }
    }),

    vscode.commands.registerCommand('quantlens.quantize', async (uri?: vscode.Uri) => {
      const target = uri instanceof vscode.Uri ? uri : targetOf(service, undefined);
      if (!target) {
        void vscode.window.showInformationMessage('QuantLens: choose a checkpoint to quantize (right-click it in the explorer).');
        return;
      }
      await quantize.run(target);
    }),

    vscode.commands.registerCommand('quantlens.quantizeWithPlan', async (uri?: vscode.Uri) => {
      const m = analysisFor(uri);
      if (!m) return;
      if (!m.plan) {
        void vscode.window.showInformationMessage(`QuantLens: ${m.fileName} has no plan yet: run the sensitivity sweep first.`);
        return;
      }
      await quantize.run(m.uri, { kind: 'plan', plan: m.plan });
    }),

    vscode.commands.registerCommand('quantlens.compareCheckpoints', async (uri?: vscode.Uri, uris?: vscode.Uri[]) => {
      let pair = Array.isArray(uris) && uris.length === 2 ? uris : undefined;
      if (!pair) {
        const first = uri instanceof vscode.Uri ? uri : targetOf(service, undefined);
        const picked = await vscode.window.showOpenDialog({
          title: first ? `Compare ${basename(first.fsPath)} with…` : 'Compare two checkpoints',
          canSelectMany: !first,
          defaultUri: first ? vscode.Uri.joinPath(first, '..') : undefined,
        });
        if (!picked) return;
        pair = first ? [first, picked[0]] : picked.slice(0, 2);
        if (pair.length !== 2) {
          void vscode.window.showInformationMessage('QuantLens: select two checkpoints to compare.');
          return;
        }
      }
      if (pair.some((u) => u.scheme !== 'file')) {
        void vscode.window.showErrorMessage('QuantLens: the comparison reads local files only.');
        return;
      }
      ComparePanel.open(extensionUri, pool, pair[0], pair[1], log);
    }),
  );
}
