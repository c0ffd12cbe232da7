import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, LogarithmicScale, Tooltip, type ChartConfiguration } from 'chart.js';
import type { CompareHostSide, CompareProgressEvent, CompareRow, CompareSideSummary, CompareState, CompareWebviewSide, PairDetailReply, RangeHistogramView } from '../../src/shared/protocol';
import { connectToHost } from '../host-connection';
import { h } from '../inspector/dom';
import { formatBytes, formatCount, formatParams, formatStat } from '../inspector/format';
import { outputsSection } from './outputs';
import { axisColors, themeColor, withAlpha } from './theme';
import './compare.css';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LogarithmicScale, Tooltip, Legend);

/** Bumped when the messages this bundle speaks change. */
const WEBVIEW_VERSION = 1;
const HISTOGRAM_BINS = 128;

const rpc = connectToHost<CompareHostSide, CompareWebviewSide>();

type SortKey = 'index' | 'name' | 'dtype' | 'params' | 'relMse' | 'sqnrDb' | 'maxAbsErr' | 'cosine';
const COLUMNS: Array<{ key: SortKey; label: string; numeric: boolean; title: string }> = [
  { key: 'name', label: 'Tensor', numeric: false, title: 'Name in the first checkpoint' },
  { key: 'dtype', label: 'dtype', numeric: false, title: 'Stored type: first → second' },
  { key: 'params', label: 'Params', numeric: true, title: 'Elements' },
  { key: 'relMse', label: 'rel. MSE', numeric: true, title: '‖a − b‖² ÷ ‖a‖²' },
  { key: 'sqnrDb', label: 'SQNR dB', numeric: true, title: '10·log10(‖a‖² ÷ ‖a − b‖²); empty when equal' },
  { key: 'maxAbsErr', label: 'max |err|', numeric: true, title: 'Largest |a − b|' },
  { key: 'cosine', label: 'cosine', numeric: true, title: 'Cosine similarity of a and b' },
];

const app = document.getElementById('app')!;
let state: CompareState;
let sort: { key: SortKey; descending: boolean } = { key: 'index', descending: false };
let selected: number | undefined;
const rowElements = new Map<number, HTMLTableRowElement>();
const charts: { strip?: Chart; overlay?: Chart; error?: Chart } = {};
let lastDetail: PairDetailReply | undefined;
let detailRequest: AbortController | undefined;

const tbody = h('tbody');
const progressText = h('span', { class: 'muted', 'data-testid': 'compare-status' });
const progressBar = h('vscode-progress-bar', { value: 0, max: 1 }) as HTMLElement & { value: number };
const cancelButton = h('vscode-button', { secondary: true, 'data-testid': 'compare-cancel' }, 'Cancel');
const detail = h('section', { class: 'detail', 'data-testid': 'pair-detail' }, h('p', { class: 'muted' }, 'Select a tensor to overlay its two histograms and see its error histogram.'));
const stripCanvas = h('canvas', { 'data-testid': 'sqnr-strip', 'aria-label': 'SQNR by layer' });

void start();

async function start(): Promise<void> {
  state = await rpc.request('ready', { version: WEBVIEW_VERSION });
  app.removeAttribute('aria-busy');
  app.replaceChildren(view());
  renderRows();
  showProgress(state.progress);
  drawStrip();
  rpc.on('compareRows', ({ rows }) => {
    for (const r of rows) state.rows[r.index] = r;
    if (sort.key === 'index') for (const r of rows) updateRow(r);
    else renderRows();
    drawStrip();
  });
  rpc.on('compareProgress', (p) => showProgress(p));
  cancelButton.addEventListener('click', () => rpc.notify('cancelCompare', {}));
  new MutationObserver(() => {
    drawStrip();
    if (lastDetail) drawDetail(lastDetail);
  }).observe(document.body, { attributes: true, attributeFilter: ['class'] });
}

function view(): HTMLElement {
  const header = h('header', { class: 'title' }, h('h1', null, `${state.a.fileName} ↔ ${state.b.fileName}`));
  const sides = h('div', { class: 'sides' }, sideCard('First', state.a), sideCard('Second', state.b));
  const unmatched: HTMLElement[] = [];
  if (state.onlyInA.length) unmatched.push(h('div', { class: 'muted' }, `Only in ${state.a.fileName}: ${listed(state.onlyInA)}`));
  if (state.onlyInB.length) unmatched.push(h('div', { class: 'muted' }, `Only in ${state.b.fileName}: ${listed(state.onlyInB)}`));
  if (state.shapeMismatch.length) unmatched.push(h('div', { class: 'muted' }, `Shapes differ (not compared): ${listed(state.shapeMismatch)}`));
  const head = h('tr', null);
  for (const c of COLUMNS) {
    const th = h('th', { class: c.numeric ? 'num' : '', title: c.title, 'data-sort': c.key }, c.label);
    th.addEventListener('click', () => {
      sort = sort.key === c.key ? { key: c.key, descending: !sort.descending } : { key: c.key, descending: c.key === 'relMse' || c.key === 'maxAbsErr' };
      renderRows();
    });
    head.append(th);
  }
  const table = h('table', { class: 'pairs', 'data-testid': 'compare-table' }, h('thead', null, head), tbody);
  return h(
    'div',
    { class: 'compare' },
    header,
    sides,
    ...unmatched,
    ...(state.outputs ? [outputsSection(state.outputs, rpc, { a: state.a.fileName, b: state.b.fileName })] : []),
    h('div', { class: 'progress-row' }, progressText, progressBar, cancelButton),
    h('section', { class: 'strip' }, h('h2', null, 'SQNR by layer (dB, parameter-weighted)'), h('div', { class: 'strip-box' }, stripCanvas)),
    h('div', { class: 'body' }, h('div', { class: 'table-box' }, table), detail),
  );
}

function listed(names: string[]): string {
  return names.length > 6 ? `${names.slice(0, 6).join(', ')} and ${names.length - 6} more` : names.join(', ');
}

function sideCard(label: string, s: CompareSideSummary): HTMLElement {
  return h(
    'div',
    { class: 'side', 'data-testid': `side-${label === 'First' ? 'a' : 'b'}` },
    h('div', { class: 'muted' }, label),
    h('div', { class: 'side-name', title: s.path }, s.fileName),
    h(
      'dl',
      null,
      h('dt', null, 'Format'),
      h('dd', null, s.format),
      h('dt', null, 'Size'),
      h('dd', { 'data-testid': 'side-bytes' }, formatBytes(s.bytes)),
      h('dt', null, 'Bits per weight'),
      h('dd', { 'data-testid': 'side-bpw' }, s.bitsPerWeight === null ? '–' : s.bitsPerWeight.toFixed(3)),
      h('dt', null, 'Tensors'),
      h('dd', null, `${formatCount(s.tensors)} · ${formatParams(s.params)} params`),
      h('dt', null, 'dtypes'),
      h('dd', null, s.dtypes.map((d) => `${d.dtype} ×${d.tensors}`).join(', ')),
    ),
  );
}

function showProgress(p: CompareProgressEvent): void {
  state.progress = p;
  progressBar.value = p.total > 0 ? p.done / p.total : 1;
  progressBar.hidden = p.state !== 'running';
  cancelButton.hidden = p.state !== 'running';
  const what = `${formatCount(p.done)} / ${formatCount(p.total)} tensors compared`;
  progressText.textContent = p.state === 'running' ? what : p.state === 'done' ? `${what} in ${(p.elapsedMs / 1000).toFixed(1)} s` : p.state === 'cancelled' ? `Cancelled: ${what}` : `${what}: ${p.message ?? 'failed'}`;
  progressText.dataset.state = p.state;
}

function sortValue(r: CompareRow, key: SortKey): number | string | null {
  switch (key) {
    case 'index':
      return r.index;
    case 'name':
      return r.name;
    case 'dtype':
      return `${r.dtypeA}→${r.dtypeB}`;
    case 'params':
      return r.params;
    default:
      return r[key];
  }
}

function renderRows(): void {
  const rows = [...state.rows];
  const { key, descending } = sort;
  rows.sort((x, y) => {
    const a = sortValue(x, key);
    const b = sortValue(y, key);
    // unmeasured and empty figures last, whichever the direction
    if (a === null || b === null) return a === null ? (b === null ? x.index - y.index : 1) : -1;
    const c = typeof a === 'string' ? a.localeCompare(b as string) : a - (b as number);
    return (descending ? -c : c) || x.index - y.index;
  });
  tbody.replaceChildren(...rows.map((r) => rowElement(r)));
  for (const th of app.querySelectorAll<HTMLElement>('th[data-sort]')) {
    th.dataset.active = th.dataset.sort === key ? (descending ? 'desc' : 'asc') : '';
  }
}

function updateRow(r: CompareRow): void {
  rowElements.get(r.index)?.replaceWith(rowElement(r));
}

function rowElement(r: CompareRow): HTMLTableRowElement {
  const cell = (text: string, numeric = true, title?: string) => h('td', { class: numeric ? 'num' : '', title }, text);
  const pending = r.measured ? '' : '…';
  const tr = h(
    'tr',
    { 'data-index': r.index, class: `${selected === r.index ? 'selected' : ''}${r.error ? ' failed' : ''}`, title: r.error ?? (r.name !== r.nameB ? `${r.name} ↔ ${r.nameB}` : r.name) },
    cell(r.name, false),
    cell(r.dtypeA === r.dtypeB ? r.dtypeA : `${r.dtypeA} → ${r.dtypeB}`, false),
    cell(formatParams(r.params)),
    cell(r.error ? 'error' : r.measured ? (r.relMse === null ? '0' : r.relMse.toExponential(2)) : pending),
    cell(r.measured && !r.error ? (r.sqnrDb === null ? 'equal' : r.sqnrDb.toFixed(1)) : pending),
    cell(r.measured && r.maxAbsErr !== null ? formatStat(r.maxAbsErr) : pending),
    cell(r.measured && r.cosine !== null ? r.cosine.toFixed(6) : pending),
  ) as HTMLTableRowElement;
  tr.addEventListener('click', () => select(r.index));
  tr.addEventListener('dblclick', () => rpc.notify('revealTensor', { side: 'a', name: r.name }));
  rowElements.set(r.index, tr);
  return tr;
}

async function select(index: number): Promise<void> {
  const previous = selected;
  selected = index;
  if (previous !== undefined) rowElements.get(previous)?.classList.remove('selected');
  rowElements.get(index)?.classList.add('selected');
  const r = state.rows[index];
  detailRequest?.abort();
  const controller = (detailRequest = new AbortController());
  detail.replaceChildren(h('h2', null, r.name), h('p', { class: 'muted', 'data-testid': 'detail-loading' }, 'Computing histograms in the worker…'));
  try {
    const reply = await rpc.request('pairDetail', { index, bins: HISTOGRAM_BINS }, { signal: controller.signal });
    if (selected !== index) return;
    lastDetail = reply;
    drawDetail(reply);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code !== 'CANCELLED' && selected === index) detail.replaceChildren(h('h2', null, r.name), h('p', { class: 'error-text' }, `${e.code ?? 'ERROR'}: ${e.message}`));
  }
}

function binLabels(hist: RangeHistogramView): string[] {
  const n = hist.counts.length;
  const lo = hist.lo ?? 0;
  const width = n > 0 && hist.hi !== null && hist.lo !== null ? (hist.hi - hist.lo) / n : 0;
  return hist.counts.map((_, i) => formatStat(lo + (i + 0.5) * width));
}

function barOptions(log: boolean): ChartConfiguration<'bar'>['options'] {
  const { text, grid } = axisColors();
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { legend: { labels: { color: text, boxWidth: 10 } } },
    scales: {
      x: { stacked: false, ticks: { color: text, maxTicksLimit: 7, maxRotation: 0 }, grid: { display: false } },
      y: log ? { type: 'logarithmic', ticks: { color: text, maxTicksLimit: 5 }, grid: { color: grid } } : { beginAtZero: true, ticks: { color: text, maxTicksLimit: 5 }, grid: { color: grid } },
    },
  };
}

function drawDetail(d: PairDetailReply): void {
  const r = state.rows[d.index];
  const overlay = h('canvas', { 'data-testid': 'histogram-overlay' });
  const error = h('canvas', { 'data-testid': 'histogram-error' });
  const figures = r.measured && !r.error ? `SQNR ${r.sqnrDb === null ? 'equal' : `${r.sqnrDb.toFixed(2)} dB`} · rel. MSE ${r.relMse?.toExponential(3) ?? '0'} · max |err| ${formatStat(r.maxAbsErr)} · cosine ${r.cosine?.toFixed(6) ?? '–'}` : '';
  const reveal = h('a', { href: '#', class: 'link' }, 'Reveal in inspector');
  reveal.addEventListener('click', (e) => {
    e.preventDefault();
    rpc.notify('revealTensor', { side: 'a', name: r.name });
  });
  detail.replaceChildren(
    h('h2', null, r.name),
    h('div', { class: 'muted' }, figures, ' · ', reveal),
    h('h3', null, 'Values: both checkpoints over one range'),
    h('div', { class: 'chart-box' }, overlay),
    h('h3', null, `Error (${state.b.fileName} − ${state.a.fileName})`),
    h('div', { class: 'chart-box' }, error),
  );
  charts.overlay?.destroy();
  charts.error?.destroy();
  const blue = themeColor('--vscode-charts-blue', 'steelblue');
  const orange = themeColor('--vscode-charts-orange', 'orange');
  const red = themeColor('--vscode-charts-red', 'crimson');
  charts.overlay = new Chart(overlay, {
    type: 'bar',
    data: {
      labels: binLabels(d.a),
      datasets: [
        { label: state.a.fileName, data: d.a.counts, backgroundColor: withAlpha(blue, 0.55), borderWidth: 0, barPercentage: 1, categoryPercentage: 1, grouped: false },
        { label: state.b.fileName, data: d.b.counts, backgroundColor: withAlpha(orange, 0.55), borderWidth: 0, barPercentage: 1, categoryPercentage: 1, grouped: false },
      ],
    },
    options: barOptions(false),
  });
  charts.error = new Chart(error, {
    type: 'bar',
    data: { labels: binLabels(d.error), datasets: [{ label: 'b − a', data: d.error.counts, backgroundColor: red, borderWidth: 0, barPercentage: 1, categoryPercentage: 1 }] },
    options: { ...barOptions(true), plugins: { legend: { display: false } } },
  });
}

/** Parameter-weighted relative MSE per layer, as SQNR (the same aggregation as the sensitivity view). */
function layerSqnr(): { labels: string[]; values: Array<number | null> } {
  const groups = new Map<number | null, { params: number; weighted: number }>();
  for (const r of state.rows) {
    if (!r.measured || r.error || r.relMse === null) continue;
    const g = groups.get(r.layer) ?? { params: 0, weighted: 0 };
    g.params += r.params;
    g.weighted += r.params * r.relMse;
    groups.set(r.layer, g);
  }
  const keys = [...groups.keys()].sort((a, b) => (a ?? -1) - (b ?? -1));
  return {
    labels: keys.map((k) => (k === null ? 'other' : String(k))),
    values: keys.map((k) => {
      const g = groups.get(k)!;
      const rel = g.weighted / g.params;
      return rel > 0 ? 10 * Math.log10(1 / rel) : null;
    }),
  };
}

function drawStrip(): void {
  const { labels, values } = layerSqnr();
  const color = themeColor('--vscode-charts-green', 'seagreen');
  const data = { labels, datasets: [{ label: 'SQNR dB', data: values, backgroundColor: color, borderWidth: 0 }] };
  if (charts.strip) {
    charts.strip.data = data;
    charts.strip.options = { ...barOptions(false), plugins: { legend: { display: false } } };
    charts.strip.update();
    return;
  }
  charts.strip = new Chart(stripCanvas, { type: 'bar', data, options: { ...barOptions(false), plugins: { legend: { display: false } } } });
}
