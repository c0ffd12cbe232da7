/**
 * How well a cheap sensitivity estimate (the weights' own error, or the importance-weighted one) ranks
 * the units of a `kld` sweep compared with their measured KL divergence: Spearman's rank correlation
 * per format, over the units the format applies to.
 */
import type { RankAgreement, SensitivityResult } from './types';

/** 1-based ranks, ties sharing their average rank. */
export function averageRanks(values: readonly number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(values.length);
  for (let i = 0; i < order.length; ) {
    let j = i + 1;
    while (j < order.length && order[j][0] === order[i][0]) j++;
    const rank = (i + j + 1) / 2;
    for (let k = i; k < j; k++) ranks[order[k][1]] = rank;
    i = j;
  }
  return ranks;
}

/** Spearman's ρ: Pearson's correlation of the average ranks; null for fewer than 3 pairs or a constant side. */
export function spearman(a: readonly number[], b: readonly number[]): number | null {
  if (a.length !== b.length || a.length < 3) return null;
  const ra = averageRanks(a);
  const rb = averageRanks(b);
  const n = a.length;
  const mean = (n + 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = ra[i] - mean;
    const db = rb[i] - mean;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : null;
}

/**
 * Rank agreement of `estimate` (a `weights` or `imatrix` sweep of the same model, every row measured)
 * with the units of `kld`: each unit's estimate is Σ params × relMSE over its tensors the format
 * applies to — the error the planner adds up — against the unit's measured mean KLD.
 */
export function compareRankings(kld: SensitivityResult, estimate: SensitivityResult): RankAgreement[] {
  const which = estimate.mode === 'imatrix' ? 'imatrix' : 'weights';
  const byName = new Map(estimate.tensors.map((t) => [t.name, t]));
  const measuredTensors = new Map(kld.tensors.map((t) => [t.name, t]));
  const pooled: [number[], number[]] = [[], []];
  const out: RankAgreement[] = [];
  for (const format of kld.types) {
    const measured: number[] = [];
    const estimated: number[] = [];
    for (const g of kld.kldGroups ?? []) {
      const m = g.kld[format];
      if (m === null || m === undefined) continue;
      let sum = 0;
      let seen = false;
      for (const name of g.tensors) {
        // Only the tensors the unit quantized to this format.
        if (!measuredTensors.get(name)?.errors[format]) continue;
        const e = byName.get(name)?.errors[format];
        if (!e) continue;
        sum += byName.get(name)!.params * e.relMse;
        seen = true;
      }
      if (!seen) continue;
      measured.push(m);
      estimated.push(sum);
    }
    if (measured.length === 0) continue;
    out.push({ estimate: which, format, units: measured.length, spearman: spearman(estimated, measured) });
    pooled[0].push(...estimated);
    pooled[1].push(...measured);
  }
  if (out.length > 1) out.push({ estimate: which, format: 'all', units: pooled[0].length, spearman: spearman(pooled[0], pooled[1]) });
  return out;
}
