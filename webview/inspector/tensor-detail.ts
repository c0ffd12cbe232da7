import type { Chart } from 'chart.js';
import type { StatsSummary, TensorDetailReply, TensorRow } from '../../src/shared/protocol';
import type { InspectorRpc } from './api';
import { HistogramChart, lineChart } from './charts';
import { h } from './dom';
import { formatCount, formatShape, formatStat } from './format';
import { RoleStrip } from './role-strip';

const STAT_ROWS: Array<[keyof StatsSummary, string]> = [
  ['count', 'Elements'],
  ['finite', 'Finite'],
  ['nonFinite', 'NaN / ±∞'],
  ['zeros', 'Zeros'],
  ['min', 'Min'],
  ['max', 'Max'],
  ['mean', 'Mean'],
  ['std', 'Std'],
  ['absMax', 'AbsMax'],
  ['kurtosis', 'Kurtosis (excess)'],
  ['outlierShare', 'Outliers (> 6σ)'],
];

/** The tensor view: statistics, histogram and (for 2-D tensors) absmax profiles, from the worker pool. */
export class TensorDetail {
  readonly element = h('aside', { class: 'tensor-detail', 'data-testid': 'tensor-detail', hidden: true });
  private histogram: HistogramChart | undefined;
  private charts: Chart[] = [];
  private request: AbortController | undefined;
  private current: TensorDetailReply | undefined;
  private readonly strip: RoleStrip;

  /** `onPick`: open another tensor (a point of the strip across layers). */
  constructor(
    private readonly rpc: InspectorRpc,
    private readonly bins: number,
    onPick: (index: number) => void,
  ) {
    this.strip = new RoleStrip(rpc, onPick);
  }

  async show(row: TensorRow): Promise<void> {
    this.request?.abort();
    const controller = (this.request = new AbortController());
    this.element.hidden = false;
    this.clearCharts();
    this.element.replaceChildren(this.heading(row), h('p', { class: 'muted', 'data-testid': 'detail-loading' }, 'Computing statistics…'));
    try {
      const reply = await this.rpc.request('tensorDetail', { index: row.index, bins: this.bins }, { signal: controller.signal });
      if (controller.signal.aborted) return;
      this.current = reply;
      this.render();
    } catch (err) {
      if (controller.signal.aborted) return;
      const e = err as Error & { code?: string };
      this.element.replaceChildren(this.heading(row), h('p', { class: 'error-text', 'data-testid': 'detail-error' }, `${e.code ?? 'ERROR'}: ${e.message}`));
      return;
    }
    await this.strip.show(row, controller.signal);
  }

  /** Redraws the charts (after a theme change: their colours come from the theme). */
  redraw(): void {
    if (this.current && !this.element.hidden) {
      this.render();
      this.strip.redraw();
    }
  }

  private heading(row: TensorRow): HTMLElement {
    return h(
      'div',
      null,
      h('h2', { 'data-testid': 'detail-name' }, row.name),
      h(
        'p',
        { class: 'muted' },
        `${row.dtype} ${formatShape(row.shape)} · ${formatCount(row.params)} parameters · ${row.role}${row.layer !== null ? ` · layer ${row.layer}` : ''} · ${row.file}`,
      ),
    );
  }

  private render(): void {
    const reply = this.current!;
    this.clearCharts();
    const { stats } = reply;
    const table = h('table', { class: 'grid stats-table', 'data-testid': 'detail-stats' });
    for (const [key, label] of STAT_ROWS) {
      const v = stats[key];
      const text = key === 'count' || key === 'finite' || key === 'nonFinite' || key === 'zeros' ? formatCount(v as number) : key === 'outlierShare' && v !== null ? `${((v as number) * 100).toFixed(3)} %` : formatStat(v);
      table.append(h('tr', null, h('th', null, label), h('td', { class: 'num', 'data-testid': `stat-${key}`, 'data-value': v === null ? 'null' : String(v) }, text)));
    }
    const canvas = h('canvas', { 'data-testid': 'histogram', 'aria-label': 'Histogram of the values' });
    const log = h('vscode-checkbox', { label: 'Log count axis', 'data-testid': 'histogram-log' }) as HTMLElement & { checked: boolean };
    const reset = h('vscode-button', { secondary: true, 'data-testid': 'histogram-reset' }, 'Reset zoom');
    const copy = h('vscode-button', { secondary: true, 'data-testid': 'copy-stats' }, 'Copy JSON');
    copy.addEventListener('click', () => this.rpc.notify('copyStats', { index: reply.row.index }));
    const parts: HTMLElement[] = [
      this.heading(reply.row),
      table,
      h('h3', null, `Histogram (${stats.histogram.counts.length} bins)`),
      h('div', { class: 'chart' }, canvas),
      h('div', { class: 'chart-tools' }, log, reset, copy),
      h('p', { class: 'muted hint' }, 'Drag across the histogram to zoom; double-click to reset.'),
    ];
    let rowsCanvas: HTMLCanvasElement | undefined;
    let colsCanvas: HTMLCanvasElement | undefined;
    if (reply.profile) {
      rowsCanvas = h('canvas', { 'data-testid': 'profile-rows' });
      colsCanvas = h('canvas', { 'data-testid': 'profile-columns' });
      parts.push(
        h('h3', null, `AbsMax per row (${formatCount(reply.row.shape[0])} rows)`),
        h('div', { class: 'chart small' }, rowsCanvas),
        h('h3', null, `AbsMax per column (${formatCount(reply.row.shape[1])} columns)`),
        h('div', { class: 'chart small' }, colsCanvas),
      );
    }
    parts.push(this.strip.element);
    this.element.replaceChildren(...parts);
    this.histogram = new HistogramChart(canvas, stats.histogram);
    log.addEventListener('change', () => this.histogram?.setLog(!!log.checked));
    reset.addEventListener('click', () => this.histogram?.resetZoom());
    if (reply.profile && rowsCanvas && colsCanvas) {
      const labels = (n: number, of: number): string[] => Array.from({ length: n }, (_, i) => String(Math.floor((i * of) / n)));
      this.charts.push(lineChart(rowsCanvas, labels(reply.profile.rows.length, reply.row.shape[0]), reply.profile.rows));
      this.charts.push(lineChart(colsCanvas, labels(reply.profile.columns.length, reply.row.shape[1]), reply.profile.columns, '--vscode-charts-purple'));
    }
  }

  private clearCharts(): void {
    this.strip.clear();
    this.histogram?.destroy();
    this.histogram = undefined;
    for (const c of this.charts) c.destroy();
    this.charts = [];
  }
}
