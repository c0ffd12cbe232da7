import assert from 'node:assert/strict';
import { test } from 'node:test';
import { knapsackFrontier, lowerConvexHull, minimumBytes, solveKnapsack, type KnapsackItem } from '../../src/core/plan/solver';

/** xorshift32, so every instance is reproducible from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/** Items shaped like tensors: more bytes, less error, with noise so hulls are not trivial. */
function randomItems(r: () => number, n: number, m: number, integerBytes: boolean): KnapsackItem[] {
  return Array.from({ length: n }, () => {
    const size = 1 + Math.floor(r() * 20);
    const sens = 0.1 + r() * 10;
    return {
      options: Array.from({ length: m }, () => {
        const bits = 2 + r() * 7;
        const bytes = integerBytes ? Math.round(size * bits) : size * bits;
        return { bytes, error: sens * size * 2 ** -bits * (0.5 + r()) };
      }),
    };
  });
}

function bruteForce(items: KnapsackItem[], budget: number): number {
  let best = Infinity;
  const walk = (i: number, bytes: number, error: number) => {
    if (bytes > budget) return;
    if (i === items.length) {
      best = Math.min(best, error);
      return;
    }
    for (const o of items[i].options) walk(i + 1, bytes + o.bytes, error + o.error);
  };
  walk(0, 0, 0);
  return best;
}

test('solver: within the reported gap of the brute-force optimum, budget met', () => {
  const r = rng(12345);
  let exact = 0;
  for (let trial = 0; trial < 300; trial++) {
    const n = 2 + Math.floor(r() * 5);
    const m = 2 + Math.floor(r() * 4);
    const items = randomItems(r, n, m, trial % 2 === 0);
    const lo = minimumBytes(items);
    const hi = items.reduce((s, it) => s + Math.max(...it.options.map((o) => o.bytes)), 0);
    const budget = lo + r() * (hi - lo);
    const sol = solveKnapsack(items, budget);
    assert.ok(sol, `trial ${trial}: feasible budget refused`);
    const opt = bruteForce(items, budget);
    const eps = 1e-9 * Math.max(1, opt);
    assert.ok(sol.bytes <= budget + 1e-9, `trial ${trial}: ${sol.bytes} bytes over budget ${budget}`);
    assert.ok(sol.error >= opt - eps, `trial ${trial}: error ${sol.error} below the optimum ${opt}`);
    assert.ok(sol.lowerBound <= opt + eps, `trial ${trial}: bound ${sol.lowerBound} above the optimum ${opt}`);
    assert.ok(sol.error - opt <= sol.gap + eps, `trial ${trial}: ${sol.error - opt} from optimum, gap says ${sol.gap}`);
    assert.equal(sol.choice.length, n);
    if (sol.error - opt <= eps) exact++;
  }
  // The repair is a heuristic, but on instances this small it should find the optimum most of the time.
  assert.ok(exact >= 240, `optimum found in ${exact} of 300 instances`);
});

test('solver: infeasible budget → null; generous budget → every item at its least error, gap 0', () => {
  const items: KnapsackItem[] = [
    { options: [{ bytes: 10, error: 5 }, { bytes: 20, error: 1 }] },
    { options: [{ bytes: 5, error: 3 }, { bytes: 8, error: 2 }, { bytes: 30, error: 2.5 }] },
  ];
  assert.equal(solveKnapsack(items, 14), null);
  const sol = solveKnapsack(items, 1000)!;
  assert.deepEqual(sol.choice, [1, 1]);
  assert.equal(sol.gap, 0);
  assert.equal(sol.bytes, 28);
});

test('convex hull drops dominated and above-hull options', () => {
  const hull = lowerConvexHull([
    { bytes: 4, error: 10 },
    { bytes: 6, error: 9.5 }, // above the segment 4→8
    { bytes: 8, error: 2 },
    { bytes: 9, error: 3 }, // dominated
    { bytes: 16, error: 1 },
  ]);
  assert.deepEqual(hull, [0, 2, 4]);
});

test('frontier: bytes increase, error decreases, each point is optimal for its own budget', () => {
  const r = rng(777);
  for (let trial = 0; trial < 40; trial++) {
    const items = randomItems(r, 4, 4, true);
    const f = knapsackFrontier(items);
    for (let i = 1; i < f.length; i++) {
      assert.ok(f[i].bytes > f[i - 1].bytes, 'bytes strictly increase');
      assert.ok(f[i].error <= f[i - 1].error + 1e-12, 'error never increases');
    }
    for (const p of f) {
      const opt = bruteForce(items, p.bytes);
      assert.ok(Math.abs(opt - p.error) <= 1e-9 * Math.max(1, opt), `frontier point ${p.bytes} B: ${p.error} vs optimum ${opt}`);
    }
  }
});
