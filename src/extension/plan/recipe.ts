import * as vscode from 'vscode';
import { writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { QuantLensError } from '../../core/errors';
import { compressedTensorsConfig, llamaQuantizeRecipe, planToJson, shellCommand } from '../../core/plan/export';
import type { Plan } from '../../core/plan/plan';
import type { ModelAnalysis } from '../sensitivity/service';

type RecipeKind = 'plan' | 'llama' | 'compressed-tensors';

function stem(m: ModelAnalysis): string {
  return basename(m.uri.fsPath).replace(/(\.safetensors\.index\.json|\.index\.json|\.safetensors|\.gguf|\.onnx|\.pt|\.pth|\.bin|\.jit)$/, '');
}

/**
 * *Export Recipe…*: the plan JSON, llama-quantize's `--tensor-type-file` (with the command line that
 * uses it, copied on request), or a compressed-tensors `quantization_config`, saved where the user says.
 */
export async function exportRecipe(m: ModelAnalysis, plan: Plan): Promise<string | undefined> {
  const items: Array<vscode.QuickPickItem & { recipe: RecipeKind }> = [
    { recipe: 'plan', label: 'Plan JSON', description: 'assignment, budget, error, frontier' },
  ];
  if (plan.target === 'gguf') items.push({ recipe: 'llama', label: 'llama-quantize tensor-type file', description: 'one regex=type per line, plus the command that uses it' });
  else items.push({ recipe: 'compressed-tensors', label: 'compressed-tensors quantization_config', description: 'config_groups with module targets, ignore' });
  const picked = await vscode.window.showQuickPick(items, { title: `Export the plan of ${m.fileName}`, placeHolder: 'Recipe format' });
  if (!picked) return undefined;

  const dir = dirname(m.uri.fsPath);
  const names: Record<RecipeKind, string> = {
    plan: `${stem(m)}-plan.json`,
    llama: `${stem(m)}.tensor-types.txt`,
    'compressed-tensors': `${stem(m)}-quantization_config.json`,
  };
  const target = await vscode.window.showSaveDialog({
    title: `Save ${picked.label}`,
    defaultUri: vscode.Uri.file(join(dir, names[picked.recipe])),
    filters: picked.recipe === 'llama' ? { Text: ['txt'] } : { JSON: ['json'] },
  });
  if (!target) return undefined;
  const path = target.fsPath;
  const input = m.uri.fsPath;
  let text: string;
  let command: string | undefined;
  if (picked.recipe === 'plan') text = `${JSON.stringify(planToJson(plan), null, 2)}\n`;
  else if (picked.recipe === 'compressed-tensors') text = `${JSON.stringify({ quantization_config: compressedTensorsConfig(plan) }, null, 2)}\n`;
  else {
    const r = llamaQuantizeRecipe(plan, { input, output: join(dir, `${stem(m)}-mixed.gguf`), imatrix: m.imatrixPath });
    text = r.tensorTypeFile;
    command = shellCommand(['llama-quantize', ...r.argsWithFile.map((a) => (a === '<file>' ? path : a)), ...r.positional]);
  }
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
