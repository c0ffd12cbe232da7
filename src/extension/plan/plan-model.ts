/**
 * The plan panel's and the recipe export's content, without VS Code: the panel state, the bit map,
 * budgets as typed, and the recipe files. src/extension/plan/panel.ts and recipe.ts show them.
 */
import { dirname, join } from 'node:path';
import { ROLES } from '../../core/names';
import { compressedTensorsConfig, llamaQuantizeRecipe, planToJson, shellCommand } from '../../core/plan/export';
import { parseSize, type Budget, type Plan } from '../../core/plan/plan';
import { defaultFormats, nominalBitsPerWeight, quantFormat } from '../../core/sensitivity/formats';
import type { BitMapView, PlanPanelState, PlanView } from '../../shared/protocol';
import { checkpointStem } from '../quantize/quantize-model';
import type { AnalysisState } from '../sensitivity/sensitivity-model';

/** What the panel draws for an analysis. */
export function planPanelState(m: AnalysisState | undefined, quantizeAvailable: boolean): PlanPanelState {
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

/** Parses a budget as typed: a number of bits per weight (up to 32), or a size with a unit (120MB, 3.9GiB). */
export function parseBudget(text: string): Budget {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t) && Number(t) <= 32) return { kind: 'bitsPerWeight', value: Number(t) };
  return { kind: 'bytes', value: parseSize(t) };
}

export type RecipeKind = 'plan' | 'llama' | 'compressed-tensors';

/** The recipes a plan can be exported as (llama-quantize's for GGUF targets, compressed-tensors' for safetensors). */
export function recipeKinds(plan: Plan): RecipeKind[] {
  return ['plan', plan.target === 'gguf' ? 'llama' : 'compressed-tensors'];
}

/** The file a recipe is saved to by default: beside the checkpoint, named after it. */
export function recipeDefaultPath(kind: RecipeKind, checkpoint: string): string {
  const stem = checkpointStem(checkpoint);
  const names: Record<RecipeKind, string> = {
    plan: `${stem}-plan.json`,
    llama: `${stem}.tensor-types.txt`,
    'compressed-tensors': `${stem}-quantization_config.json`,
  };
  return join(dirname(checkpoint), names[kind]);
}

/**
 * A recipe's file content; for llama-quantize, also the command line that uses it (the tensor-type
 * file at `savedTo`, the output `<stem>-mixed.gguf` beside the checkpoint).
 */
export function recipeContent(kind: RecipeKind, plan: Plan, checkpoint: string, savedTo: string, imatrixPath?: string): { text: string; command?: string } {
  if (kind === 'plan') return { text: `${JSON.stringify(planToJson(plan), null, 2)}\n` };
  if (kind === 'compressed-tensors') return { text: `${JSON.stringify({ quantization_config: compressedTensorsConfig(plan) }, null, 2)}\n` };
  const r = llamaQuantizeRecipe(plan, { input: checkpoint, output: join(dirname(checkpoint), `${checkpointStem(checkpoint)}-mixed.gguf`), imatrix: imatrixPath });
  return {
    text: r.tensorTypeFile,
    command: shellCommand(['llama-quantize', ...r.argsWithFile.map((a) => (a === '<file>' ? savedTo : a)), ...r.positional]),
  };
}
