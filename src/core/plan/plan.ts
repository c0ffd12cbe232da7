/**
 * The mixed-precision planner: one format per tensor minimising the total estimated error under a
 * budget in bits per weight (llama.cpp's figure: Σ bytes × 8 ÷ Σ params, tensors left unquantized
 * counted at their kept size) or in bytes. Pins force a format or a minimum; excluded tensors are kept.
 */
import type { DType } from '../dtypes';
import { QuantLensError } from '../errors';
import { describeTensor, type Role } from '../names';
import { GGUF_ROW_FALLBACK, formatBytes, nominalBitsPerWeight, quantFormat, type QuantFormat, type QuantTarget } from '../sensitivity/formats';
import type { SensitivityMode, SensitivityResult, TensorSensitivity } from '../sensitivity/types';
import { knapsackFrontier, minimumBytes, solveKnapsack, type KnapsackItem } from './solver';

export type Budget = { kind: 'bitsPerWeight'; value: number } | { kind: 'bytes'; value: number };

/** Tensors whose name (or llama.cpp name) matches `pattern` take `format`, or at least its bits when `atLeast`. */
export interface PinRule {
  pattern: string;
  format: string;
  atLeast: boolean;
}

export interface PlanSettings {
  budget: Budget;
  /** First match wins. */
  pins?: PinRule[];
  /** Regexes of tensors left as they are. */
  exclude?: string[];
  /** Rules for the output projection and the token embedding (checked after the pins). */
  output?: { format: string; atLeast: boolean };
  embedding?: { format: string; atLeast: boolean };
  /** Largest number of frontier points returned (evenly spread along the curve). */
  maxFrontierPoints?: number;
}

export interface PlanCandidate {
  format: string;
  bytes: number;
  /** In the plan's error unit (see `Plan.errorUnit`). */
  error: number;
}

/** A tensor as the planner sees it: its kept size, and the formats it may take (none: it is kept). */
export interface PlanTensor {
  name: string;
  params: number;
  shape: number[];
  dtype: DType;
  keptBytes: number;
  candidates: PlanCandidate[];
}

export interface FrontierEntry {
  bitsPerWeight: number;
  bytes: number;
  error: number;
}

export interface UniformPoint extends FrontierEntry {
  format: string;
}

/** One tensor's place in the plan (the bit map of the plan panel). */
export interface PlannedTensor {
  name: string;
  layer: number | null;
  role: Role;
  params: number;
  shape: number[];
  /** null: kept as it is. */
  format: string | null;
  bytes: number;
  error: number;
}

export interface Plan {
  target: QuantTarget;
  mode: SensitivityMode;
  /** What `error` figures mean: for `weights`/`imatrix`, the parameter-weighted mean relative MSE of the planned tensors. */
  errorUnit: string;
  budget: Budget & { bytes: number };
  /** Quantized tensors → format. */
  assignment: Record<string, string>;
  /** Tensors left as they are → their dtype (1-D tensors, excluded ones, rows no format fits). */
  kept: Record<string, DType>;
  /** Every tensor, in the model's order. */
  tensors: PlannedTensor[];
  params: number;
  bytes: number;
  bitsPerWeight: number;
  estimatedError: number;
  /** No plan within the budget has an error below this. */
  lowerBound: number;
  /** estimatedError − lowerBound. */
  gap: number;
  /** The relaxation's trade-off curve, bits increasing: each point is optimal for its own size. */
  frontier: FrontierEntry[];
  /** Every tensor at one format (llama.cpp's fallback where rows do not fit), for comparison with the curve. */
  uniform: UniformPoint[];
  warnings: string[];
}

const DEFAULT_FRONTIER_POINTS = 256;

function compile(pattern: string, what: string): RegExp {
  try {
    return new RegExp(pattern);
  } catch (err) {
    throw new QuantLensError('USAGE', `${what} ${JSON.stringify(pattern)} is not a valid regular expression: ${(err as Error).message}`);
  }
}

/** Does the regex match the tensor's own name or its llama.cpp name? */
function matches(re: RegExp, name: string): boolean {
  const canonical = describeTensor(name).canonical;
  return re.test(name) || (canonical !== null && re.test(canonical));
}

function errorUnitOf(mode: SensitivityMode): string {
  if (mode === 'kld') return 'sum over tensors of the KL divergence with that tensor quantized';
  if (mode === 'outputs') return 'parameter-weighted mean relative MSE of the matmul outputs';
  return mode === 'imatrix' ? 'parameter-weighted mean activation-weighted relative MSE' : 'parameter-weighted mean relative MSE';
}

/**
 * Planner input from a sweep: each tensor's candidates with their bytes and error. The error is
 * Σ params × relMSE normalised by the planned parameters (weights, imatrix), the measured KLD (kld),
 * or the output relative MSE weighted likewise (outputs).
 */
export function planTensorsFromSensitivity(result: SensitivityResult): PlanTensor[] {
  const quantParams = result.tensors.reduce((s, t) => s + (t.quantizable ? t.params : 0), 0) || 1;
  return result.tensors.map((t) => ({
    name: t.name,
    params: t.params,
    shape: t.shape,
    dtype: t.dtype,
    keptBytes: t.keptBytes,
    candidates: candidatesOf(t, result, quantParams),
  }));
}

function candidatesOf(t: TensorSensitivity, result: SensitivityResult, quantParams: number): PlanCandidate[] {
  const out: PlanCandidate[] = [];
  const cols = t.shape[t.shape.length - 1];
  const rows = t.params / cols;
  for (const [name, e] of Object.entries(t.errors)) {
    if (e === null) continue;
    let error: number;
    if (result.mode === 'kld') {
      if (e.kld === undefined) throw new QuantLensError('USAGE', `sweep in kld mode holds no KLD for ${t.name} at ${name}`);
      error = e.kld;
    } else if (result.mode === 'outputs') {
      if (e.outputRelMse === undefined) throw new QuantLensError('USAGE', `sweep in outputs mode holds no output error for ${t.name} at ${name}`);
      error = (t.params * e.outputRelMse) / quantParams;
    } else {
      error = (t.params * e.relMse) / quantParams;
    }
    out.push({ format: name, bytes: formatBytes(quantFormat(name, result.target), rows, cols), error });
  }
  return out;
}

/** Bytes a budget allows for a model of `params` parameters. */
export function budgetBytes(budget: Budget, params: number): number {
  if (!(budget.value > 0) || !Number.isFinite(budget.value)) throw new QuantLensError('USAGE', `budget must be a positive number, got ${budget.value}`);
  return budget.kind === 'bytes' ? budget.value : Math.floor((budget.value * params) / 8);
}

/** Parses a size such as `4.2GB`, `3.9GiB`, `800MB`, `512MiB` or a plain byte count. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$/i.exec(text);
  if (!m) throw new QuantLensError('USAGE', `size ${JSON.stringify(text)}: expected a number with an optional unit (B, MB, GB, MiB, GiB, …)`);
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
  return Math.round(Number(m[1]) * units[(m[2] ?? 'B').toLowerCase()]);
}

/** Parses `REGEX=TYPE` (exact) or `REGEX>=TYPE` (at least TYPE's bits per weight). */
export function parsePin(text: string): PinRule {
  const at = text.lastIndexOf('=');
  if (at <= 0 || at === text.length - 1) throw new QuantLensError('USAGE', `pin ${JSON.stringify(text)}: expected REGEX=TYPE or REGEX>=TYPE`);
  const atLeast = text[at - 1] === '>';
  const pattern = text.slice(0, atLeast ? at - 1 : at);
  compile(pattern, 'pin');
  return { pattern, format: text.slice(at + 1), atLeast };
}

interface PlannedItem {
  tensor: PlanTensor;
  candidates: PlanCandidate[];
}

/** Plans formats for `tensors` (from `planTensorsFromSensitivity`) under `settings`. */
export function planMixedPrecision(tensors: PlanTensor[], target: QuantTarget, mode: SensitivityMode, settings: PlanSettings): Plan {
  const warnings: string[] = [];
  const params = tensors.reduce((s, t) => s + t.params, 0);
  if (params === 0) throw new QuantLensError('USAGE', 'the model has no parameters to plan');
  const budget = budgetBytes(settings.budget, params);
  const exclude = (settings.exclude ?? []).map((p) => compile(p, 'exclude'));
  const rules = pinRules(settings, target);

  const kept: Record<string, DType> = {};
  let keptBytes = 0;
  const planned: PlannedItem[] = [];
  for (const t of tensors) {
    const candidates = exclude.some((re) => matches(re, t.name)) || keptByTarget(t.name, target) ? [] : restrict(t, rules, target, warnings);
    if (candidates.length === 0) {
      kept[t.name] = t.dtype;
      keptBytes += t.keptBytes;
    } else {
      planned.push({ tensor: t, candidates });
    }
  }
  const items: KnapsackItem[] = planned.map((p) => ({ options: p.candidates }));
  const bpw = (bytes: number) => (bytes * 8) / params;
  const available = budget - keptBytes;
  const solution = solveKnapsack(items, available);
  if (solution === null) {
    const least = keptBytes + minimumBytes(items);
    throw new QuantLensError(
      'USAGE',
      `the budget of ${budget} bytes (${bpw(budget).toFixed(3)} bits per weight) is below the smallest plan: ${least} bytes (${bpw(least).toFixed(3)} bits per weight)`,
    );
  }
  const assignment: Record<string, string> = {};
  const chosen = new Map<string, PlanCandidate>();
  planned.forEach((p, i) => {
    const c = p.candidates[solution.choice[i]];
    assignment[p.tensor.name] = c.format;
    chosen.set(p.tensor.name, c);
  });
  const total = keptBytes + solution.bytes;
  const details: PlannedTensor[] = tensors.map((t) => {
    const c = chosen.get(t.name);
    const d = describeTensor(t.name);
    return { name: t.name, layer: d.layer, role: d.role, params: t.params, shape: t.shape, format: c?.format ?? null, bytes: c?.bytes ?? t.keptBytes, error: c?.error ?? 0 };
  });

  const frontier = spread(
    knapsackFrontier(items).map((f) => ({ bitsPerWeight: bpw(keptBytes + f.bytes), bytes: keptBytes + f.bytes, error: f.error })),
    settings.maxFrontierPoints ?? DEFAULT_FRONTIER_POINTS,
  );
  const uniform = uniformPoints(tensors, exclude, target, params);
  return {
    target,
    mode,
    errorUnit: errorUnitOf(mode),
    budget: { ...settings.budget, bytes: budget },
    assignment,
    kept,
    tensors: details,
    params,
    bytes: total,
    bitsPerWeight: bpw(total),
    estimatedError: solution.error,
    lowerBound: solution.lowerBound,
    gap: solution.gap,
    frontier,
    uniform,
    warnings,
  };
}

/**
 * compressed-tensors and bitsandbytes runtimes quantize Linear layers only: a safetensors plan keeps
 * the token embedding as it is.
 */
function keptByTarget(name: string, target: QuantTarget): boolean {
  return target === 'safetensors' && describeTensor(name).role === 'embed';
}

interface CompiledRule {
  re: RegExp | null;
  role: 'output' | 'embed' | null;
  format: QuantFormat;
  atLeast: boolean;
  label: string;
}

function pinRules(settings: PlanSettings, target: QuantTarget): CompiledRule[] {
  const rules: CompiledRule[] = (settings.pins ?? []).map((p) => ({
    re: compile(p.pattern, 'pin'),
    role: null,
    format: quantFormat(p.format, target),
    atLeast: p.atLeast,
    label: `${p.pattern}${p.atLeast ? '>=' : '='}${p.format}`,
  }));
  if (settings.output) rules.push({ re: null, role: 'output', format: quantFormat(settings.output.format, target), atLeast: settings.output.atLeast, label: 'output rule' });
  if (settings.embedding) rules.push({ re: null, role: 'embed', format: quantFormat(settings.embedding.format, target), atLeast: settings.embedding.atLeast, label: 'embedding rule' });
  return rules;
}

/** The candidates a tensor may take after the first rule that matches it. */
function restrict(t: PlanTensor, rules: CompiledRule[], target: QuantTarget, warnings: string[]): PlanCandidate[] {
  if (t.candidates.length === 0) return [];
  const rule = rules.find((r) => (r.re ? matches(r.re, t.name) : describeTensor(t.name).role === r.role));
  if (!rule) return t.candidates;
  let allowed: PlanCandidate[];
  if (rule.atLeast) {
    const floor = nominalBitsPerWeight(rule.format) - 1e-9;
    allowed = t.candidates.filter((c) => nominalBitsPerWeight(quantFormat(c.format, target)) >= floor);
  } else {
    allowed = t.candidates.filter((c) => c.format === rule.format.name);
  }
  if (allowed.length === 0) {
    warnings.push(`${rule.label}: no measured format of ${t.name} satisfies it; the tensor is planned freely`);
    return t.candidates;
  }
  return allowed;
}

function spread<T>(points: T[], max: number): T[] {
  if (points.length <= max || max < 2) return points;
  const out: T[] = [];
  for (let i = 0; i < max; i++) out.push(points[Math.round((i * (points.length - 1)) / (max - 1))]);
  return out;
}

/**
 * Every tensor at one format. Where it does not apply: llama.cpp's fallback when measured, else the
 * measured format with the nearest bits per weight at or above it, else the most precise one, else kept.
 */
function uniformPoints(tensors: PlanTensor[], exclude: RegExp[], target: QuantTarget, params: number): UniformPoint[] {
  const formats = new Set<string>();
  for (const t of tensors) for (const c of t.candidates) formats.add(c.format);
  const points: UniformPoint[] = [];
  for (const name of formats) {
    const f = quantFormat(name, target);
    const bits = nominalBitsPerWeight(f);
    let bytes = 0;
    let error = 0;
    for (const t of tensors) {
      const cands = exclude.some((re) => matches(re, t.name)) || keptByTarget(t.name, target) ? [] : t.candidates;
      const pick =
        cands.find((c) => c.format === name) ??
        cands.find((c) => f.target === 'gguf' && c.format === GGUF_ROW_FALLBACK[f.name]) ??
        nearestAbove(cands, bits, target) ??
        cands.reduce<PlanCandidate | undefined>((best, c) => (best === undefined || c.error < best.error ? c : best), undefined);
      bytes += pick ? pick.bytes : t.keptBytes;
      error += pick ? pick.error : 0;
    }
    points.push({ format: name, bitsPerWeight: (bytes * 8) / params, bytes, error });
  }
  return points.sort((a, b) => a.bytes - b.bytes);
}

function nearestAbove(cands: PlanCandidate[], bits: number, target: QuantTarget): PlanCandidate | undefined {
  let best: PlanCandidate | undefined;
  let bestBits = Infinity;
  for (const c of cands) {
    const b = nominalBitsPerWeight(quantFormat(c.format, target));
    if (b >= bits && b < bestBits) {
      best = c;
      bestBits = b;
    }
  }
  return best;
}
