/**
 * The sensitivity sidebar's and the plan's decisions, without VS Code: the state kept per checkpoint,
 * the format layers are ranked by, the ranking itself, and the plan for a budget (the default budget
 * when the user has set none). src/extension/sensitivity/service.ts keeps the state and runs sweeps.
 */
import { planMixedPrecision, planTensorsFromSensitivity, type Budget, type PinRule, type Plan } from '../../core/plan/plan';
import { aggregateSensitivity } from '../../core/sensitivity/aggregate';
import { nominalBitsPerWeight, quantFormat, type QuantTarget } from '../../core/sensitivity/formats';
import type { FormatErrors, GroupSensitivity, SensitivityMode, SensitivityResult, TensorSensitivity } from '../../core/sensitivity/types';

/** The budget a plan starts from before the user sets one (clamped to what the model allows). */
export const DEFAULT_BUDGET_BPW = 4.5;

/** Sensitivity and plan of one checkpoint, as the sidebar and the plan panel show them. */
export interface AnalysisState {
  readonly fileName: string;
  target: QuantTarget;
  imatrixPath: string | undefined;
  /** null until the user sets one: the plan then starts at DEFAULT_BUDGET_BPW. */
  budget: Budget | null;
  pins: PinRule[];
  exclude: string[];
  /** Tensors measured so far (streaming) or all of them. */
  tensors: TensorSensitivity[];
  /** The finished sweep. */
  result: SensitivityResult | undefined;
  /** A running sweep: its share done (0–1) and how to stop it. */
  sweep: { progress: number; controller: AbortController } | undefined;
  plan: Plan | undefined;
  /** Why there is no plan (budget too small, bad pin, failed sweep). */
  planError: string | undefined;
}

/** A view of one layer (layer null: the tensors outside layers) for the tree. */
export interface LayerSensitivity {
  layer: number | null;
  group: GroupSensitivity | undefined;
  tensors: TensorSensitivity[];
}

/**
 * The format layers are ranked by: among formats measured on at least half of the measured
 * parameters, the one nearest 4.5 bits per weight (Q4_K on Llama-shaped models, Q4_0 where rows do
 * not fit K-quants), so "sensitive" means "hurt most at about 4 bits".
 */
export function referenceFormat(tensors: readonly TensorSensitivity[], types: readonly string[], target: QuantTarget): string | undefined {
  const measured = tensors.filter((t) => t.quantizable);
  const total = measured.reduce((s, t) => s + t.params, 0);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const type of types) {
    const covered = measured.reduce((s, t) => s + (t.errors[type] ? t.params : 0), 0);
    if (total === 0 || covered < total / 2) continue;
    const distance = Math.abs(nominalBitsPerWeight(quantFormat(type, target)) - DEFAULT_BUDGET_BPW);
    if (distance < bestDistance) {
      best = type;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * The measured matrices by layer, most sensitive layer first and most sensitive tensor first within
 * it, at the reference format; `outputs` sweeps rank by the model's output error, not the weight's own.
 */
export function rankLayers(
  tensors: readonly TensorSensitivity[],
  types: readonly string[],
  target: QuantTarget,
  mode: SensitivityMode = 'weights',
): { reference: string | undefined; layers: LayerSensitivity[] } {
  const reference = referenceFormat(tensors, types, target);
  const { byLayer } = aggregateSensitivity([...tensors], [...types]);
  const byKey = new Map<string, LayerSensitivity>();
  for (const t of tensors) {
    if (t.shape.length < 2) continue;
    const key = String(t.layer);
    const entry = byKey.get(key) ?? { layer: t.layer, group: byLayer.find((g) => g.layer === t.layer), tensors: [] };
    entry.tensors.push(t);
    byKey.set(key, entry);
  }
  const outputs = mode === 'outputs';
  const relMse = (errors: FormatErrors | undefined): number => {
    const e = reference ? errors?.[reference] : undefined;
    return (outputs ? e?.outputRelMse : e?.relMse) ?? -1;
  };
  const layers = [...byKey.values()].sort((a, b) => relMse(b.group?.errors) - relMse(a.group?.errors) || (a.layer ?? -1) - (b.layer ?? -1));
  for (const l of layers) l.tensors.sort((a, b) => relMse(b.errors) - relMse(a.errors) || a.name.localeCompare(b.name));
  return { reference, layers };
}

/**
 * The plan of a finished sweep for a budget; without one, DEFAULT_BUDGET_BPW clamped into the range
 * the trade-off curve spans. Throws the planner's error (budget too small, bad pin).
 */
export function planOf(result: SensitivityResult, budget: Budget | null, pins: PinRule[], exclude: string[]): { plan: Plan; budget: Budget } {
  const tensors = planTensorsFromSensitivity(result);
  const settings = { pins, exclude };
  if (!budget) {
    // the whole curve first (a budget every plan meets), then the default clamped into it
    const loose = planMixedPrecision(tensors, result.target, result.mode, { ...settings, budget: { kind: 'bitsPerWeight', value: 32 } });
    const lo = loose.frontier[0]?.bitsPerWeight ?? DEFAULT_BUDGET_BPW;
    const hi = loose.frontier[loose.frontier.length - 1]?.bitsPerWeight ?? DEFAULT_BUDGET_BPW;
    budget = { kind: 'bitsPerWeight', value: Math.min(hi, Math.max(lo * 1.0001, DEFAULT_BUDGET_BPW)) };
  }
  return { plan: planMixedPrecision(tensors, result.target, result.mode, { ...settings, budget }), budget };
}
