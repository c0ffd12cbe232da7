/**
 * Multiple-choice knapsack: one option per item, minimise Σ error subject to Σ bytes ≤ budget.
 *
 * Lagrangian relaxation: for a multiplier λ every item independently minimises error + λ·bytes, and as λ
 * falls each item walks the lower convex hull of its (bytes, error) points. Sorting every hull step of
 * every item by its slope yields all multipliers at once (the LP relaxation of the multiple-choice
 * knapsack, Sinha & Zoltners 1979): the steps that fit give an integer point, the first step that does
 * not fit, taken fractionally, gives the relaxation's bound. A repair step then spends what is left of
 * the budget (or, from the rounded-up point, recovers the overflow) greedily over all options.
 */

export interface KnapsackOption {
  bytes: number;
  error: number;
}

export interface KnapsackItem {
  /** At least one option. */
  options: readonly KnapsackOption[];
}

export interface KnapsackSolution {
  /** For each item, the index of the chosen option. */
  choice: number[];
  bytes: number;
  error: number;
  /** The relaxation's bound: no choice within the budget has a lower error. */
  lowerBound: number;
  /** error − lowerBound: how far the plan can be from the optimum at most. */
  gap: number;
}

/** A point of the relaxation's frontier: an integer choice that is optimal for a budget of exactly `bytes`. */
export interface FrontierPoint {
  bytes: number;
  error: number;
}

interface HullStep {
  item: number;
  /** Index (into the item's options) of the hull point this step moves to. */
  to: number;
  dBytes: number;
  dError: number;
  /** Error removed per byte spent. */
  efficiency: number;
}

/**
 * The lower convex hull of an item's options, cheapest first, as option indices. Dominated options
 * (costlier and no better) and options above the hull can never be a Lagrangian choice.
 */
export function lowerConvexHull(options: readonly KnapsackOption[]): number[] {
  const order = options.map((_, i) => i).sort((a, b) => options[a].bytes - options[b].bytes || options[a].error - options[b].error);
  const frontier: number[] = [];
  for (const i of order) {
    if (frontier.length > 0) {
      const last = options[frontier[frontier.length - 1]];
      if (options[i].bytes === last.bytes || options[i].error >= last.error) continue;
    }
    frontier.push(i);
  }
  const hull: number[] = [];
  for (const i of frontier) {
    while (hull.length >= 2) {
      const o = options[hull[hull.length - 2]];
      const a = options[hull[hull.length - 1]];
      const b = options[i];
      // a lies on or above the segment o→b: drop it
      const cross = (a.bytes - o.bytes) * (b.error - o.error) - (a.error - o.error) * (b.bytes - o.bytes);
      if (cross > 0) break;
      hull.pop();
    }
    hull.push(i);
  }
  return hull;
}

interface Relaxation {
  hulls: number[][];
  steps: HullStep[];
  baseBytes: number;
  baseError: number;
}

function relax(items: readonly KnapsackItem[]): Relaxation {
  const hulls = items.map((it) => lowerConvexHull(it.options));
  const steps: HullStep[] = [];
  let baseBytes = 0;
  let baseError = 0;
  hulls.forEach((hull, item) => {
    const opts = items[item].options;
    baseBytes += opts[hull[0]].bytes;
    baseError += opts[hull[0]].error;
    for (let k = 1; k < hull.length; k++) {
      const dBytes = opts[hull[k]].bytes - opts[hull[k - 1]].bytes;
      const dError = opts[hull[k]].error - opts[hull[k - 1]].error;
      steps.push({ item, to: hull[k], dBytes, dError, efficiency: -dError / dBytes });
    }
  });
  // Within one item efficiencies strictly decrease along the hull, so this order keeps each item's steps in sequence.
  steps.sort((a, b) => b.efficiency - a.efficiency || a.item - b.item || a.dBytes - b.dBytes);
  return { hulls, steps, baseBytes, baseError };
}

/** The relaxation's frontier from the cheapest choice to the most precise one, bytes increasing, error decreasing. */
export function knapsackFrontier(items: readonly KnapsackItem[]): FrontierPoint[] {
  const r = relax(items);
  const points: FrontierPoint[] = [{ bytes: r.baseBytes, error: r.baseError }];
  let bytes = r.baseBytes;
  let error = r.baseError;
  for (const s of r.steps) {
    bytes += s.dBytes;
    error += s.dError;
    points.push({ bytes, error: Math.max(0, error) });
  }
  return points;
}

/** The smallest number of bytes any choice needs. */
export function minimumBytes(items: readonly KnapsackItem[]): number {
  let sum = 0;
  for (const it of items) sum += Math.min(...it.options.map((o) => o.bytes));
  return sum;
}

/**
 * Best choice found within `budget` bytes, with the relaxation's bound. Returns null when even the
 * cheapest choice exceeds the budget.
 */
export function solveKnapsack(items: readonly KnapsackItem[], budget: number): KnapsackSolution | null {
  const r = relax(items);
  if (r.baseBytes > budget) return null;

  const prefix = r.hulls.map((h) => h[0]);
  let bytes = r.baseBytes;
  let error = r.baseError;
  let lowerBound: number | null = null;
  let breakStep: HullStep | null = null;
  for (const s of r.steps) {
    if (bytes + s.dBytes <= budget) {
      prefix[s.item] = s.to;
      bytes += s.dBytes;
      error += s.dError;
      continue;
    }
    lowerBound = error + ((budget - bytes) / s.dBytes) * s.dError;
    breakStep = s;
    break;
  }
  // Every step fitted: each item holds its least-error option, which is optimal.
  if (lowerBound === null || breakStep === null) return finish(items, prefix, error);

  // Two repairs: fill the leftover bytes from the prefix, or take the break step and give bytes back.
  const filled = prefix.slice();
  fillBudget(items, filled, budget);
  const roundedUp = prefix.slice();
  roundedUp[breakStep.item] = breakStep.to;
  recoverOverflow(items, roundedUp, budget);
  fillBudget(items, roundedUp, budget);
  const best = totalError(items, roundedUp) < totalError(items, filled) && totalBytes(items, roundedUp) <= budget ? roundedUp : filled;
  return finish(items, best, lowerBound);
}

function finish(items: readonly KnapsackItem[], choice: number[], lowerBound: number): KnapsackSolution {
  const error = totalError(items, choice);
  // Floating sums may place the bound a hair above the integer error on exact optima.
  const bound = Math.min(lowerBound, error);
  return { choice, bytes: totalBytes(items, choice), error, lowerBound: bound, gap: error - bound };
}

function totalBytes(items: readonly KnapsackItem[], choice: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < items.length; i++) s += items[i].options[choice[i]].bytes;
  return s;
}

function totalError(items: readonly KnapsackItem[], choice: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < items.length; i++) s += items[i].options[choice[i]].error;
  return s;
}

/** Greedy upgrades: repeatedly take the change that removes the most error per byte and still fits. */
function fillBudget(items: readonly KnapsackItem[], choice: number[], budget: number): void {
  let left = budget - totalBytes(items, choice);
  for (;;) {
    let bestItem = -1;
    let bestOption = -1;
    let bestScore = 0;
    let bestGain = 0;
    for (let i = 0; i < items.length; i++) {
      const cur = items[i].options[choice[i]];
      items[i].options.forEach((o, j) => {
        const gain = cur.error - o.error;
        const cost = o.bytes - cur.bytes;
        if (gain <= 0 || cost > left) return;
        // A change that frees bytes and lowers the error is always taken first.
        const score = cost <= 0 ? Infinity : gain / cost;
        if (score > bestScore || (score === bestScore && gain > bestGain)) {
          bestItem = i;
          bestOption = j;
          bestScore = score;
          bestGain = gain;
        }
      });
    }
    if (bestItem < 0) return;
    left -= items[bestItem].options[bestOption].bytes - items[bestItem].options[choice[bestItem]].bytes;
    choice[bestItem] = bestOption;
  }
}

/** Greedy downgrades until the choice fits: each time the change that adds the least error per byte saved. */
function recoverOverflow(items: readonly KnapsackItem[], choice: number[], budget: number): void {
  let over = totalBytes(items, choice) - budget;
  while (over > 0) {
    let bestItem = -1;
    let bestOption = -1;
    let bestScore = Infinity;
    for (let i = 0; i < items.length; i++) {
      const cur = items[i].options[choice[i]];
      items[i].options.forEach((o, j) => {
        const saved = cur.bytes - o.bytes;
        if (saved <= 0) return;
        const score = Math.max(0, o.error - cur.error) / Math.min(saved, over);
        if (score < bestScore) {
          bestItem = i;
          bestOption = j;
          bestScore = score;
        }
      });
    }
    if (bestItem < 0) return;
    over -= items[bestItem].options[choice[bestItem]].bytes - items[bestItem].options[bestOption].bytes;
    choice[bestItem] = bestOption;
  }
}
