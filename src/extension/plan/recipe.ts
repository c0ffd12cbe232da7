import * as vscode from 'vscode';
import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { QuantLensError } from '../../core/errors';
import type { Plan } from '../../core/plan/plan';
import type { ModelAnalysis } from '../sensitivity/service';
import { recipeContent, recipeDefaultPath, recipeKinds, type RecipeKind } from './plan-model';

const RECIPE_ITEMS: Record<RecipeKind, vscode.QuickPickItem> = {
  plan: { label: 'Plan JSON', description: 'assignment, budget, error, frontier' },
  llama: { label: 'llama-quantize tensor-type file', description: 'one regex=type per line, plus the command that uses it' },
  'compressed-tensors': { label: 'compressed-tensors quantization_config', description: 'config_groups with module targets, ignore' },
};

/**
 * *Export Recipe…*: the plan JSON, llama-quantize's `--tensor-type-file` (with the command line that
 * uses it, copied on request), or a compressed-tensors `quantization_config`, saved where the user says.
 */
export async function exportRecipe(m: ModelAnalysis, plan: Plan): Promise<string | undefined> {
  const items = recipeKinds(plan).map((recipe) => ({ ...RECIPE_ITEMS[recipe], recipe }));
  const picked = await vscode.window.showQuickPick(items, { title: `Export the plan of ${m.fileName}`, placeHolder: 'Recipe format' });
  if (!picked) return undefined;
  const target = await vscode.window.showSaveDialog({
    title: `Save ${picked.label}`,
    defaultUri: vscode.Uri.file(recipeDefaultPath(picked.recipe, m.uri.fsPath)),
    filters: picked.recipe === 'llama' ? { Text: ['txt'] } : { JSON: ['json'] },
  });
  if (!target) return undefined;
  const path = target.fsPath;
  const { text, command } = recipeContent(picked.recipe, plan, m.uri.fsPath, path, m.imatrixPath);
  try {
    await writeFile(path, text);
  } catch (err) {
    throw new QuantLensError('OUTPUT', `cannot write ${path}: ${(err as Error).message}`, { file: path, cause: err });
  }
  const copy = 'Copy Command';
  const open = 'Open';
  void vscode.window
    .showInformationMessage(command ? `QuantLens: wrote ${basename(path)}. Run: ${command}` : `QuantLens: wrote ${basename(path)}.`, ...(command ? [copy, open] : [open]))
    .then(async (choice) => {
      if (choice === copy && command) await vscode.env.clipboard.writeText(command);
      if (choice === open) await vscode.window.showTextDocument(target);
    });
  return path;
}
