import type { Chart } from 'chart.js';
import type { RoleStripPoint, RoleStripReply, StatsSummary, TensorRow } from '../../src/shared/protocol';
import type { InspectorRpc } from './api';
import { stripChart } from './charts';
import { h } from './dom';
import { formatCount, formatStat } from './format';

type Metric = 'absMax' | 'std' | 'kurtosis' | 'outlierShare';

/** `minDeviation`: a layer closer than this to the median never stands out (one 6σ value in 10,000 is not news). */
const METRICS: Array<{ key: Metric; label: string; scale: number; unit: string; colorVar: string; minDeviation: number }> = [
  { key: 'absMax', label: 'AbsMax', scale: 1, unit: '', colorVar: '--vscode-charts-orange', minDeviation: 0 },
  { key: 'std', label: 'Std', scale: 1, unit: '', colorVar: '--vscode-charts-blue', minDeviation: 0 },
  { key: 'kurtosis', label: 'Kurtosis (excess)', scale: 1, unit: '', colorVar: '--vscode-charts-purple', minDeviation: 0.5 },
  { key: 'outlierShare', label: 'Outliers (> 6σ)', scale: 100, unit: ' %', colorVar: '--vscode-charts-green', minDeviation: 0.05 },
];

/**
 * Layers whose value stands apart from the others: more than 3.5 robust standard deviations
 * (1.4826 × the median absolute deviation) from the median, as in Iglewicz and Hoaglin's modified
 * z-score. When most layers agree exactly (MAD 0), a layer more than half the median away stands out.
 */
export function oddOnes(values: Array<number | null>, minDeviation = 0): boolean[] {
  const known = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (known.length < 4) return values.map(() => false);
  const median = medianOf(known);
  const mad = medianOf(known.map((v) => Math.abs(v - median)));
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return false;
    const d = Math.abs(v - median);
    if (d <= minDeviation) return false;
    return mad > 0 ? d / (1.4826 * mad) > 3.5 : d > 0.5 * Math.abs(median) && d > 0;
  });
}

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The strip across layers in the tensor view: absmax, std, kurtosis and outlier share of the
 * tensor with the same name in every layer, so the odd layer shows at a glance. The host computes
 * the statistics it does not have yet (progress shown); a click on a point opens that layer's tensor.
 */
export class RoleStrip {
  readonly element = h('section', { class: 'role-strip', 'data-testid': 'role-strip' });
  private charts: Chart[] = [];
  private reply: RoleStripReply | undefined;
  private selected = -1;

  constructor(
    private readonly rpc: InspectorRpc,
    private readonly onPick: (index: number) => void,
  ) {
    rpc.on('roleStripProgress', ({ index, done, total }) => {
      if (index !== this.selected || this.reply) return;
      const status = this.element.querySelector('[data-testid="strip-status"]');
      if (status) status.textContent = `Computing statistics of ${formatCount(total)} tensors across layers… ${formatCount(done)} / ${formatCount(total)}`;
    });
  }

  /** Asks for the strip of `row`'s role; returns when drawn (or at once for a tensor outside layers). */
  async show(row: TensorRow, signal: AbortSignal): Promise<void> {
    this.clear();
    this.reply = undefined;
    this.selected = row.index;
    if (row.layer === null) {
      this.element.hidden = true;
      return;
    }
    this.element.hidden = false;
    this.element.replaceChildren(
      h('h3', null, 'Across layers'),
      h('p', { class: 'muted', 'data-testid': 'strip-status' }, 'Looking for this tensor in the other layers…'),
    );
    try {
      const reply = await this.rpc.request('roleStrip', { index: row.index }, { signal });
      if (signal.aborted || this.selected !== row.index) return;
      this.reply = reply;
      this.render();
    } catch (err) {
      if (signal.aborted) return;
      const e = err as Error & { code?: string };
      this.element.replaceChildren(h('h3', null, 'Across layers'), h('p', { class: 'error-text', 'data-testid': 'strip-error' }, `${e.code ?? 'ERROR'}: ${e.message}`));
    }
  }

  /** Redraws in the current theme's colours. */
  redraw(): void {
    if (this.reply && !this.element.hidden) this.render();
  }

  clear(): void {
    for (const c of this.charts) c.destroy();
    this.charts = [];
  }

  private render(): void {
    const reply = this.reply!;
    this.clear();
    const { points } = reply;
    if (points.length < 2) {
      this.element.hidden = true;
      return;
    }
    const labels = points.map((p) => String(p.layer));
    const current = points.findIndex((p) => p.index === this.selected);
    const flagged = new Map<number, string[]>();
    const parts: HTMLElement[] = [
      h('h3', null, `Across layers: ${reply.pattern}`),
      h('p', { class: 'muted hint' }, `${points.length} layers · this tensor highlighted · click a point to open that layer's tensor`),
    ];
    const canvases: Array<[HTMLCanvasElement, (typeof METRICS)[number], Array<number | null>, boolean[]]> = [];
    for (const m of METRICS) {
      const values = points.map((p) => scaled(p.stats, m.key, m.scale));
      const odd = oddOnes(values, m.minDeviation);
      odd.forEach((o, i) => {
        if (o) flagged.set(i, [...(flagged.get(i) ?? []), m.label]);
      });
      const canvas = h('canvas', { 'data-testid': `strip-${m.key}`, 'aria-label': `${m.label} by layer` });
      canvases.push([canvas, m, values, odd]);
      parts.push(h('div', { class: 'strip-label' }, m.label), h('div', { class: 'chart strip' }, canvas));
    }
    const missing = points.filter((p) => !p.stats).length;
    if (missing) parts.push(h('p', { class: 'muted hint' }, `${missing} of these tensors could not be read.`));
    parts.splice(2, 0, this.oddList(points, flagged));
    this.element.replaceChildren(...parts);
    for (const [canvas, m, values, odd] of canvases) {
      this.charts.push(
        stripChart(canvas, {
          labels,
          values,
          odd,
          current,
          colorVar: m.colorVar,
          format: (v) => `${formatStat(v)}${m.unit}`,
          title: (i) => points[i].name,
          onPick: (i) => this.onPick(points[i].index),
        }),
      );
    }
  }

  /** The layers that stand out, by name, as links (what the charts show, said in words). */
  private oddList(points: RoleStripPoint[], flagged: Map<number, string[]>): HTMLElement {
    const list = h('p', { class: 'strip-odd', 'data-testid': 'strip-odd' });
    if (flagged.size === 0) {
      list.append('No layer stands out.');
      return list;
    }
    list.append('Stands out: ');
    [...flagged.entries()].forEach(([i, metrics], n) => {
      const link = h('a', { href: '#', class: 'link', 'data-layer': points[i].layer, title: points[i].name }, `layer ${points[i].layer}`);
      link.addEventListener('click', (e) => {
        e.preventDefault();
        this.onPick(points[i].index);
      });
      list.append(n > 0 ? '; ' : '', link, ` (${metrics.join(', ').toLowerCase()})`);
    });
    return list;
  }
}

function scaled(stats: StatsSummary | null, key: Metric, scale: number): number | null {
  const v = stats?.[key];
  return v === null || v === undefined ? null : v * scale;
}
