/**
 * Per-tensor errors aggregated to layers and roles, weighted by parameters: a group's relative MSE
 * is Σ params·relMSE ÷ Σ params over its tensors the format applies to (null when it applies to none).
 */
import type { Role } from '../names';
import type { FormatError, FormatErrors, GroupSensitivity, TensorSensitivity } from './types';

/** Relative MSE → SQNR in dB; null when lossless. */
export function sqnrDbOf(relMse: number): number | null {
  return relMse > 0 ? -10 * Math.log10(relMse) : null;
}

function aggregateErrors(tensors: readonly TensorSensitivity[], types: readonly string[]): FormatErrors {
  const errors: FormatErrors = {};
  for (const type of types) {
    let params = 0;
    let weighted = 0;
    let boundSq = 0;
    let maxAbsErr = 0;
    let kld: number | undefined;
    let outputs = 0;
    let hasOutputs = true;
    for (const t of tensors) {
      const e = t.errors[type];
      if (!e) continue;
      params += t.params;
      weighted += t.params * e.relMse;
      // Estimates of different tensors are independent: their interval half-widths add in quadrature.
      boundSq += (t.params * e.relMseBound) ** 2;
      maxAbsErr = Math.max(maxAbsErr, e.maxAbsErr);
      if (e.kld !== undefined) kld = (kld ?? 0) + e.kld;
      if (e.outputRelMse === undefined) hasOutputs = false;
      else outputs += t.params * e.outputRelMse;
    }
    if (params === 0) {
      errors[type] = null;
      continue;
    }
    const relMse = weighted / params;
    const g: FormatError = { relMse, sqnrDb: sqnrDbOf(relMse), maxAbsErr, relMseBound: Math.sqrt(boundSq) / params };
    if (kld !== undefined) g.kld = kld;
    if (hasOutputs) g.outputRelMse = outputs / params;
    errors[type] = g;
  }
  return errors;
}

function group(tensors: readonly TensorSensitivity[], types: readonly string[], key: (t: TensorSensitivity) => { layer: number | null; role: Role | 'all' }): GroupSensitivity[] {
  const groups = new Map<string, { layer: number | null; role: Role | 'all'; members: TensorSensitivity[] }>();
  for (const t of tensors) {
    if (!t.quantizable) continue;
    const k = key(t);
    const id = `${k.layer}\u0000${k.role}`;
    const g = groups.get(id) ?? { ...k, members: [] };
    g.members.push(t);
    groups.set(id, g);
  }
  return [...groups.values()].map((g) => ({
    layer: g.layer,
    role: g.role,
    params: g.members.reduce((s, t) => s + t.params, 0),
    errors: aggregateErrors(g.members, types),
  }));
}

const byLayerThenRole = (a: GroupSensitivity, b: GroupSensitivity) =>
  (a.layer ?? -1) - (b.layer ?? -1) || String(a.role).localeCompare(String(b.role));

/** Groups per (layer, role), per layer, and per role, in layer order. Tensors no format applies to are left out. */
export function aggregateSensitivity(tensors: readonly TensorSensitivity[], types: readonly string[]): {
  layers: GroupSensitivity[];
  byLayer: GroupSensitivity[];
  byRole: GroupSensitivity[];
} {
  return {
    layers: group(tensors, types, (t) => ({ layer: t.layer, role: t.role })).sort(byLayerThenRole),
    byLayer: group(tensors, types, (t) => ({ layer: t.layer, role: 'all' })).sort(byLayerThenRole),
    byRole: group(tensors, types, (t) => ({ layer: null, role: t.role })).sort(byLayerThenRole),
  };
}
