import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from 'chart.js';
import { axisColors, themeColor } from '../compare/theme';
import { formatStat } from './format';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LogarithmicScale, LineController, LineElement, PointElement, Tooltip);

export interface HistogramData {
  min: number | null;
  max: number | null;
  counts: number[];
}

/**
 * The histogram of a tensor's values: linear or log count axis, drag across it to zoom into a range
 * of bins, double-click (or `resetZoom`) to see all of it again.
 */
export class HistogramChart {
  private chart: Chart<'bar'> | undefined;
  private log = false;
  private zoom: [number, number] | undefined;
  private dragFrom: number | undefined;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly data: HistogramData,
  ) {
    canvas.addEventListener('mousedown', (e) => (this.dragFrom = this.binAt(e)));
    canvas.addEventListener('mouseup', (e) => {
      const from = this.dragFrom;
      this.dragFrom = undefined;
      const to = this.binAt(e);
      if (from === undefined || to === undefined || Math.abs(to - from) < 2) return;
      this.zoom = [Math.min(from, to), Math.max(from, to)];
      this.draw();
    });
    canvas.addEventListener('dblclick', () => this.resetZoom());
    this.draw();
  }

  setLog(log: boolean): void {
    this.log = log;
    this.draw();
  }

  resetZoom(): void {
    this.zoom = undefined;
    this.draw();
  }

  /** Redraws with the current theme's colours. */
  draw(): void {
    this.chart?.destroy();
    const { min, max, counts } = this.data;
    const n = counts.length;
    const lo = min ?? 0;
    const width = n > 0 && max !== null && min !== null ? (max - min) / n : 0;
    const labels = counts.map((_, i) => formatStat(lo + (i + 0.5) * width));
    const { text, grid } = axisColors();
    const bar = themeColor('--vscode-charts-blue', 'steelblue');
    const config: ChartConfiguration<'bar'> = {
      type: 'bar',
      data: { labels, datasets: [{ data: counts, backgroundColor: bar, borderWidth: 0, barPercentage: 1, categoryPercentage: 1 }] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          tooltip: {
            callbacks: {
              title: (items) => {
                const i = items[0]?.dataIndex ?? 0;
                return `[${formatStat(lo + i * width)}, ${formatStat(lo + (i + 1) * width)})`;
              },
            },
          },
        },
        scales: {
          x: {
            min: this.zoom?.[0],
            max: this.zoom?.[1],
            ticks: { color: text, maxTicksLimit: 6, maxRotation: 0 },
            grid: { display: false },
          },
          y: this.log
            ? { type: 'logarithmic', ticks: { color: text, maxTicksLimit: 6 }, grid: { color: grid } }
            : { type: 'linear', beginAtZero: true, ticks: { color: text, maxTicksLimit: 6 }, grid: { color: grid } },
        },
      },
    };
    this.chart = new Chart(this.canvas, config);
  }

  destroy(): void {
    this.chart?.destroy();
  }

  private binAt(e: MouseEvent): number | undefined {
    const x = this.chart?.scales.x;
    if (!x) return undefined;
    const v = x.getValueForPixel(e.offsetX);
    return v === undefined ? undefined : Math.round(v);
  }
}

/** A small line chart (absmax per row or column, a strip across layers). */
export function lineChart(canvas: HTMLCanvasElement, labels: string[], values: number[], colorVar = '--vscode-charts-orange'): Chart<'line'> {
  const { text, grid } = axisColors();
  return new Chart(canvas, {
    type: 'line',
    data: { labels, datasets: [{ data: values, borderColor: themeColor(colorVar, 'orange'), borderWidth: 1, pointRadius: 0 }] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: { ticks: { color: text, maxTicksLimit: 6, maxRotation: 0 }, grid: { display: false } },
        y: { beginAtZero: true, ticks: { color: text, maxTicksLimit: 5 }, grid: { color: grid } },
      },
    },
  });
}

export interface StripChartOptions {
  labels: string[];
  values: Array<number | null>;
  /** Points that stand out (drawn larger, in the theme's red). */
  odd: boolean[];
  /** The point of the tensor on view (drawn largest, in the foreground colour), or -1. */
  current: number;
  colorVar: string;
  format(value: number): string;
  title(i: number): string;
  onPick(i: number): void;
}

/** One statistic by layer: a line through every layer's value, odd layers and the current one marked. */
export function stripChart(canvas: HTMLCanvasElement, o: StripChartOptions): Chart<'line'> {
  const { text, grid } = axisColors();
  const line = themeColor(o.colorVar, 'steelblue');
  const red = themeColor('--vscode-charts-red', 'red');
  const here = themeColor('--vscode-foreground', text);
  const pointColor = o.values.map((_, i) => (i === o.current ? here : o.odd[i] ? red : line));
  const pointRadius = o.values.map((_, i) => (i === o.current ? 5 : o.odd[i] ? 4.5 : 2.5));
  return new Chart(canvas, {
    type: 'line',
    data: {
      labels: o.labels,
      datasets: [
        {
          data: o.values,
          borderColor: line,
          borderWidth: 1.5,
          pointBackgroundColor: pointColor,
          pointBorderColor: pointColor,
          pointRadius,
          pointHoverRadius: 6,
          spanGaps: true,
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      onClick: (_event, elements) => {
        if (elements[0]) o.onPick(elements[0].index);
      },
      plugins: {
        tooltip: {
          callbacks: {
            title: (items) => o.title(items[0]?.dataIndex ?? 0),
            label: (item) => (item.parsed.y === null ? '' : o.format(item.parsed.y)),
          },
        },
      },
      scales: {
        x: { title: { display: false }, ticks: { color: text, maxTicksLimit: 12, maxRotation: 0 }, grid: { display: false } },
        y: { ticks: { color: text, maxTicksLimit: 4, callback: (v) => String(Number(Number(v).toPrecision(3))) }, grid: { color: grid } },
      },
    },
  });
}
