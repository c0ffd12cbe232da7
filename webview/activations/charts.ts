/**
 * The Activations view's charts (Chart.js, colours from VS Code's theme variables): a histogram, the
 * layer strip (absmax bars, kurtosis line, execution order) and the per-channel absmax bars with
 * the outlier channels in the theme's red.
 */
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LineController, LineElement, LogarithmicScale, PointElement, Tooltip,
  type ChartConfiguration,
} from 'chart.js';
import type { ActivationSiteView, ChannelProfileView, TensorStats } from '../../src/shared/protocol';
import { axisColors, themeColor, withAlpha } from '../compare/theme';
import { formatStat } from '../inspector/format';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LogarithmicScale, LineController, LineElement, PointElement, Tooltip, Legend);

/** Log-axis ticks at powers of ten only, written compactly (0.1, 1, 10, 1k, 1M). */
function logTick(value: number | string): string {
  const v = Number(value);
  const exponent = Math.log10(v);
  if (!(v > 0) || Math.abs(exponent - Math.round(exponent)) > 1e-9) return '';
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(Number(v.toPrecision(1)));
}

/** A histogram of values over [min, max]; `log` puts counts on a log axis (peaked activations). */
export function histogramChart(canvas: HTMLCanvasElement, stats: TensorStats, colorVar: string, log: boolean): Chart<'bar'> {
  const { min, max, counts } = stats.histogram;
  const lo = min ?? 0;
  const width = counts.length > 0 && min !== null && max !== null ? (max - min) / counts.length : 0;
  const { text, grid } = axisColors();
  const config: ChartConfiguration<'bar'> = {
    type: 'bar',
    data: {
      labels: counts.map((_, i) => formatStat(lo + (i + 0.5) * width)),
      datasets: [{ data: counts, backgroundColor: themeColor(colorVar, 'steelblue'), borderWidth: 0, barPercentage: 1, categoryPercentage: 1 }],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { title: (items) => { const i = items[0]?.dataIndex ?? 0; return `[${formatStat(lo + i * width)}, ${formatStat(lo + (i + 1) * width)})`; } } },
      },
      scales: {
        x: { ticks: { color: text, maxTicksLimit: 6, maxRotation: 0 }, grid: { display: false } },
        // counts of 1 stay visible above the log axis's floor
        y: log ? { type: 'logarithmic', min: 0.5, ticks: { color: text, callback: (v) => (Number(v) >= 1 ? logTick(v) : '') }, grid: { color: grid } } : { type: 'linear', beginAtZero: true, ticks: { color: text, maxTicksLimit: 5 }, grid: { color: grid } },
      },
    },
  };
  return new Chart(canvas, config);
}

/** Absmax (bars, left axis, log) and kurtosis (line, right axis) per site in execution order; `onPick` gets a clicked site's index. */
export function stripChart(canvas: HTMLCanvasElement, sites: readonly ActivationSiteView[], selected: number, onPick: (index: number) => void): Chart {
  const { text, grid } = axisColors();
  const bar = themeColor('--vscode-charts-blue', 'steelblue');
  const hot = themeColor('--vscode-charts-red', 'crimson');
  const line = themeColor('--vscode-charts-orange', 'orange');
  const config: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: sites.map((s) => s.label),
      datasets: [
        {
          type: 'bar',
          label: 'absmax',
          data: sites.map((s) => (s.absMax !== null && s.absMax > 0 ? s.absMax : null)),
          backgroundColor: sites.map((s, i) => (i === selected ? themeColor('--vscode-charts-purple', 'purple') : s.outlierChannels > 0 ? withAlpha(hot, 0.8) : withAlpha(bar, 0.75))),
          borderWidth: 0,
          barPercentage: 0.9,
          categoryPercentage: 1,
          yAxisID: 'y',
          order: 2,
        },
        {
          type: 'line',
          label: 'kurtosis',
          data: sites.map((s) => s.kurtosis),
          borderColor: line,
          backgroundColor: line,
          borderWidth: 1.5,
          pointRadius: sites.length > 80 ? 0 : 2,
          yAxisID: 'k',
          order: 1,
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      onClick: (_event, elements) => {
        const i = elements[0]?.index;
        if (i !== undefined) onPick(i);
      },
      plugins: {
        legend: { labels: { color: text, boxWidth: 12 } },
        tooltip: { callbacks: { afterTitle: (items) => { const s = sites[items[0]?.dataIndex ?? 0]; return s ? `${s.op}${s.outlierChannels ? ` · ${s.outlierChannels} outlier channels in` : ''}` : ''; } } },
      },
      scales: {
        x: { ticks: { color: text, maxRotation: 0, autoSkip: true, maxTicksLimit: 12 }, grid: { display: false } },
        y: { type: 'logarithmic', position: 'left', title: { display: true, text: 'absmax', color: text }, ticks: { color: text, callback: logTick }, grid: { color: grid } },
        k: { type: 'linear', position: 'right', title: { display: true, text: 'kurtosis', color: text }, ticks: { color: text, maxTicksLimit: 5 }, grid: { display: false } },
      },
    },
  };
  return new Chart(canvas, config);
}

/** Per-channel absmax bars, outliers in red, and the outlier threshold (ratio × median) as a dashed line. */
export function channelChart(canvas: HTMLCanvasElement, profile: ChannelProfileView): Chart {
  const { text, grid } = axisColors();
  const bar = themeColor('--vscode-charts-blue', 'steelblue');
  const hot = themeColor('--vscode-charts-red', 'crimson');
  const threshold = profile.median * profile.ratio;
  const outliers = new Set(profile.outliers);
  const config: ChartConfiguration = {
    type: 'bar',
    data: {
      labels: profile.absMax.map((_, c) => String(c)),
      datasets: [
        {
          type: 'bar',
          label: 'channel absmax',
          data: profile.absMax,
          backgroundColor: profile.absMax.map((_, c) => (outliers.has(c) ? hot : withAlpha(bar, 0.8))),
          borderWidth: 0,
          barPercentage: 1,
          categoryPercentage: profile.absMax.length > 200 ? 1 : 0.9,
          order: 2,
        },
        {
          type: 'line',
          label: `outlier threshold (${profile.ratio}× median)`,
          data: profile.absMax.map(() => threshold),
          borderColor: hot,
          borderDash: [4, 4],
          borderWidth: 1,
          pointRadius: 0,
          order: 1,
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: {
        // the bars' colours say outlier or not; the legend names the threshold line only
        legend: { labels: { color: text, boxWidth: 12, filter: (item) => item.datasetIndex === 1 } },
        tooltip: { callbacks: { title: (items) => `channel ${items[0]?.dataIndex ?? 0}`, label: (item) => `absmax ${formatStat(profile.absMax[item.dataIndex])} (${formatStat(profile.median > 0 ? profile.absMax[item.dataIndex]! / profile.median : 0)}× median)` } },
      },
      scales: {
        x: { title: { display: true, text: `channel (axis ${profile.axis})`, color: text }, ticks: { color: text, maxTicksLimit: 10, maxRotation: 0 }, grid: { display: false } },
        y: { beginAtZero: true, ticks: { color: text, maxTicksLimit: 5 }, grid: { color: grid } },
      },
    },
  };
  return new Chart(canvas, config);
}
