import { Chart, Legend, LinearScale, LineController, LineElement, LogarithmicScale, PointElement, ScatterController, Tooltip, type ChartConfiguration, type Plugin } from 'chart.js';
import type { BudgetView, PinView, PlanHostSide, PlanPanelState, PlanView, PlanWebviewSide } from '../../src/shared/protocol';
import type { RpcEndpoint } from '../../src/shared/rpc';
import { axisColors, formatColorVars, themeColor } from '../compare/theme';
import { connectToHost } from '../host-connection';
import { h } from '../inspector/dom';
import { formatBytesShort, formatCount } from '../inspector/format';
import './plan.css';

Chart.register(ScatterController, LineController, LineElement, PointElement, LinearScale, LogarithmicScale, Tooltip, Legend);

/** Bumped when the messages this bundle speaks change. */
const WEBVIEW_VERSION = 1;

type PlanRpc = RpcEndpoint<PlanHostSide, PlanWebviewSide>;

const rpc: PlanRpc = connectToHost<PlanHostSide, PlanWebviewSide>();

const app = document.getElementById('app')!;
let chart: Chart<'scatter'> | undefined;
let current: PlanPanelState | undefined;
/** A slider being dragged keeps its value while states arrive. */
let dragging = false;

void start();

async function start(): Promise<void> {
  const state = await rpc.request('ready', { version: WEBVIEW_VERSION });
  app.removeAttribute('aria-busy');
  render(state);
  rpc.on('planState', (s) => render(s));
  // VS Code swaps the body's theme class: the chart reads its colours again
  new MutationObserver(() => current && drawChart(current)).observe(document.body, { attributes: true, attributeFilter: ['class'] });
}

function render(state: PlanPanelState): void {
  current = state;
  if (dragging && state.plan) {
    updateFigures(state);
    drawChart(state);
    return;
  }
  chart?.destroy();
  chart = undefined;
  const header = h(
    'header',
    { class: 'title' },
    h('h1', null, state.fileName ? `Plan: ${state.fileName}` : 'QuantLens Plan'),
    state.fileName ? h('vscode-badge', { variant: 'counter' }, state.target === 'gguf' ? 'GGUF' : 'safetensors') : null,
    state.fileName ? h('span', { class: 'muted' }, state.mode === 'imatrix' ? 'importance-weighted error' : 'weight error') : null,
  );
  const body: Array<HTMLElement | null> = [header, statusView(state)];
  if (state.plan) {
    body.push(budgetView(state.plan), chartView(), bitMapView(state, state.plan), pinsView(state), actionsView(state));
  } else if (state.fileName && state.status !== 'sweeping') {
    body.push(pinsView(state));
  }
  app.replaceChildren(...body.filter((x): x is HTMLElement => x !== null));
  if (state.plan) drawChart(state);
}

function statusView(state: PlanPanelState): HTMLElement | null {
  if (state.status === 'sweeping') {
    const pct = ((state.progress ?? 0) * 100).toFixed(0);
    return h('div', { class: 'status', 'data-testid': 'plan-status' }, h('span', null, `Measuring sensitivity… ${pct}%`), h('vscode-progress-bar', { value: state.progress ?? 0, max: 1 }));
  }
  if (state.status === 'noSweep' || state.status === 'error') {
    const message = state.message ?? (state.fileName ? `The plan comes from a sensitivity sweep of ${state.fileName}.` : 'Open a checkpoint in the inspector.');
    const run = state.fileName ? h('vscode-button', { 'data-testid': 'run-sweep' }, 'Run Sensitivity Sweep') : null;
    run?.addEventListener('click', () => rpc.notify('planAction', { action: 'runSweep' }));
    return h('div', { class: `status ${state.status === 'error' ? 'error' : ''}`, 'data-testid': 'plan-status' }, h('span', null, message), run);
  }
  if (state.message) return h('div', { class: 'status error', 'data-testid': 'plan-status' }, state.message);
  return null;
}

/** The slider's range: the cheapest to the most precise plan of the curve. */
function sliderRange(plan: PlanView): { lo: number; hi: number } {
  const xs = plan.frontier.map((f) => f.bitsPerWeight);
  return { lo: Math.min(...xs), hi: Math.max(...xs) };
}

function budgetView(plan: PlanView): HTMLElement {
  const { lo, hi } = sliderRange(plan);
  const budgetBpw = (plan.budget.bytes * 8) / plan.params;
  const slider = h('input', {
    type: 'range',
    min: lo.toFixed(3),
    max: hi.toFixed(3),
    step: 0.01,
    value: Math.min(hi, Math.max(lo, budgetBpw)).toFixed(3),
    class: 'slider',
    'data-testid': 'budget-slider',
    'aria-label': 'Budget in bits per weight',
  });
  const readout = h('span', { class: 'readout', 'data-testid': 'budget-readout' }, budgetText(plan.budget, plan.params));
  const field = h('vscode-textfield', { placeholder: 'e.g. 4.5 or 120MB', 'data-testid': 'budget-field', class: 'budget-field' }) as HTMLElement & { value: string };
  let pending = 0;
  slider.addEventListener('input', () => {
    dragging = true;
    const value = Number(slider.value);
    readout.textContent = budgetText({ kind: 'bitsPerWeight', value }, plan.params);
    clearTimeout(pending);
    pending = window.setTimeout(() => void setBudget({ kind: 'bitsPerWeight', value }), 60);
  });
  slider.addEventListener('change', () => {
    dragging = false;
    void setBudget({ kind: 'bitsPerWeight', value: Number(slider.value) });
  });
  field.addEventListener('keydown', (e: KeyboardEvent) => {
    if (e.key !== 'Enter') return;
    const budget = parseBudget(field.value ?? '');
    if (budget) void setBudget(budget);
    else field.setAttribute('invalid', '');
  });
  return h(
    'section',
    { class: 'budget' },
    h('h2', null, 'Budget'),
    h('div', { class: 'budget-row' }, h('span', { class: 'muted' }, `${lo.toFixed(2)}`), slider, h('span', { class: 'muted' }, `${hi.toFixed(2)} bpw`), readout, field),
    h('div', { class: 'figures', 'data-testid': 'plan-figures' }, figuresText(plan)),
    ...plan.warnings.map((w) => h('div', { class: 'warning' }, w)),
  );
}

function updateFigures(state: PlanPanelState): void {
  const el = app.querySelector('[data-testid="plan-figures"]');
  if (el && state.plan) el.textContent = figuresText(state.plan);
  const map = app.querySelector('.bitmap');
  if (map && state.plan) map.replaceWith(bitMapView(state, state.plan));
}

function budgetText(b: BudgetView, params: number): string {
  const bytes = b.kind === 'bytes' ? b.value : (b.value * params) / 8;
  const bpw = b.kind === 'bitsPerWeight' ? b.value : (b.value * 8) / params;
  return `${bpw.toFixed(2)} bpw · ${formatBytesShort(Math.round(bytes))}`;
}

function figuresText(p: PlanView): string {
  const counts = Object.entries(p.counts)
    .sort((a, b) => b[1] - a[1])
    .map(([f, n]) => `${f} ×${n}`)
    .join(', ');
  return `Plan: ${p.bitsPerWeight.toFixed(3)} bits per weight, ${formatBytesShort(p.bytes)} · estimated error ${p.estimatedError.toExponential(3)} (within ${p.gap.toExponential(1)} of the optimum) · ${counts}`;
}

/** "4.5" → bits per weight; "120MB", "3.9GiB" → bytes. */
function parseBudget(text: string): BudgetView | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t) && Number(t) > 0 && Number(t) <= 32) return { kind: 'bitsPerWeight', value: Number(t) };
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.exec(t);
  if (!m) return undefined;
  const units: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
  return { kind: 'bytes', value: Math.round(Number(m[1]) * units[m[2].toLowerCase()]) };
}

async function setBudget(budget: BudgetView): Promise<void> {
  await rpc.request('setBudget', { budget });
}

function chartView(): HTMLElement {
  return h(
    'section',
    { class: 'curve' },
    h('h2', null, 'Trade-off: estimated error against size'),
    h('div', { class: 'chart-box' }, h('canvas', { 'data-testid': 'frontier-chart', 'aria-label': 'Trade-off curve' })),
    h('div', { class: 'muted small' }, 'The line: the best plan at each size. Labelled points: every tensor in one format. Click the chart to set the budget there.'),
  );
}

/** Draws the uniform points' format names beside them. */
const pointLabels: Plugin<'scatter'> = {
  id: 'pointLabels',
  afterDatasetsDraw(c) {
    const ctx = c.ctx;
    const meta = c.getDatasetMeta(1);
    const data = c.data.datasets[1]?.data as Array<{ x: number; y: number; label?: string }> | undefined;
    if (!data) return;
    ctx.save();
    ctx.fillStyle = axisColors().text;
    ctx.font = `11px ${getComputedStyle(document.body).fontFamily}`;
    meta.data.forEach((point, i) => {
      const label = data[i]?.label;
      if (label) ctx.fillText(label, point.x + 6, point.y - 6);
    });
    ctx.restore();
  },
};

function drawChart(state: PlanPanelState): void {
  const plan = state.plan;
  const canvas = app.querySelector<HTMLCanvasElement>('canvas[data-testid="frontier-chart"]');
  if (!plan || !canvas) return;
  const { text, grid } = axisColors();
  const line = themeColor('--vscode-charts-blue', 'steelblue');
  const uniform = themeColor('--vscode-charts-foreground', 'gray');
  const currentColor = themeColor('--vscode-charts-red', 'crimson');
  const positive = (e: number) => Math.max(e, 1e-12);
  const datasets = [
    { label: 'best plan per size', type: 'line' as const, data: plan.frontier.map((f) => ({ x: f.bitsPerWeight, y: positive(f.error) })), borderColor: line, backgroundColor: line, borderWidth: 2, pointRadius: 0, showLine: true },
    { label: 'uniform formats', data: plan.uniform.map((u) => ({ x: u.bitsPerWeight, y: positive(u.error), label: u.format })), backgroundColor: uniform, borderColor: uniform, pointRadius: 4, pointStyle: 'rectRot' as const },
    { label: 'this plan', data: [{ x: plan.bitsPerWeight, y: positive(plan.estimatedError) }], backgroundColor: currentColor, borderColor: currentColor, pointRadius: 7 },
  ];
  const config: ChartConfiguration<'scatter'> = {
    type: 'scatter',
    data: { datasets: datasets as ChartConfiguration<'scatter'>['data']['datasets'] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      layout: { padding: { right: 36, top: 8 } },
      plugins: {
        legend: { labels: { color: text, boxWidth: 10 } },
        tooltip: {
          callbacks: {
            label: (item) => {
              const p = item.raw as { x: number; y: number; label?: string };
              return `${p.label ? `${p.label}: ` : ''}${p.x.toFixed(2)} bpw, error ${p.y.toExponential(2)}`;
            },
          },
        },
      },
      onClick: (_event, _elements, c) => {
        const x = c.scales.x.getValueForPixel((_event.x ?? 0) as number);
        if (x !== undefined && Number.isFinite(x)) void setBudget({ kind: 'bitsPerWeight', value: Math.round(x * 100) / 100 });
      },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'bits per weight', color: text }, ticks: { color: text }, grid: { color: grid } },
        y: { type: 'logarithmic', title: { display: true, text: 'estimated error', color: text }, ticks: { color: text, maxTicksLimit: 6 }, grid: { color: grid } },
      },
    },
    plugins: [pointLabels],
  };
  if (chart) {
    chart.data.datasets = config.data.datasets;
    chart.options = config.options!;
    chart.update();
  } else {
    chart = new Chart(canvas, config);
  }
}

function bitMapView(state: PlanPanelState, plan: PlanView): HTMLElement {
  const colors = formatColorVars(state.formats.map((f) => f.name));
  const { layers, roles, cells } = plan.bitmap;
  const table = h('table', { class: 'bitmap-grid', 'data-testid': 'bitmap' });
  table.append(h('tr', null, h('th', null, 'layer'), ...roles.map((r) => h('th', null, r))));
  layers.forEach((layer, i) => {
    const tr = h('tr', null, h('th', null, layer === null ? 'other' : String(layer)));
    for (const [j, cell] of cells[i].entries()) {
      const td = h('td', { title: cell ? `layer ${layer ?? 'other'} ${roles[j]}: ${cell}` : undefined, 'data-format': cell ?? undefined }, cell ?? '');
      if (cell && cell !== 'kept') td.style.background = colors.get(cell) ?? 'transparent';
      if (cell === 'kept') td.classList.add('kept');
      tr.append(td);
    }
    table.append(tr);
  });
  const used = new Set(cells.flat().filter((c): c is string => c !== null));
  const legend = h(
    'div',
    { class: 'legend' },
    ...state.formats
      .filter((f) => used.has(f.name))
      .map((f) => {
        const swatch = h('span', { class: 'swatch' });
        swatch.style.background = colors.get(f.name) ?? 'transparent';
        return h('span', { class: 'legend-item' }, swatch, `${f.name} (${f.bitsPerWeight.toFixed(2)} bpw)`);
      }),
    used.has('kept') ? h('span', { class: 'legend-item' }, h('span', { class: 'swatch kept' }), 'kept as is') : null,
  );
  return h('section', { class: 'bitmap' }, h('h2', null, 'Bit map: format per layer and role'), h('div', { class: 'bitmap-scroll' }, table), legend);
}

function pinsView(state: PlanPanelState): HTMLElement {
  const list = h('ul', { class: 'pins', 'data-testid': 'pins' });
  const send = (pins: PinView[], exclude: string[]): void => {
    rpc.request('setPins', { pins, exclude }).catch((err: Error) => {
      error.textContent = err.message;
    });
  };
  state.pins.forEach((p, i) => {
    const remove = h('a', { href: '#', class: 'link', title: 'Remove this pin' }, 'remove');
    remove.addEventListener('click', (e) => {
      e.preventDefault();
      send(state.pins.filter((_, k) => k !== i), state.exclude);
    });
    list.append(h('li', null, h('code', null, p.pattern), ` ${p.atLeast ? '≥' : '='} ${p.format} `, remove));
  });
  state.exclude.forEach((x, i) => {
    const remove = h('a', { href: '#', class: 'link', title: 'Plan these tensors again' }, 'remove');
    remove.addEventListener('click', (e) => {
      e.preventDefault();
      send(state.pins, state.exclude.filter((_, k) => k !== i));
    });
    list.append(h('li', null, h('code', null, x), ' kept as is ', remove));
  });
  const pattern = h('vscode-textfield', { placeholder: 'regex, e.g. attn_v|v_proj', 'data-testid': 'pin-pattern' }) as HTMLElement & { value: string };
  const format = h('vscode-single-select', { 'data-testid': 'pin-format' }) as HTMLElement & { value: string };
  for (const f of state.formats) format.append(h('vscode-option', { value: f.name }, f.name));
  format.append(h('vscode-option', { value: 'keep' }, 'keep as is'));
  const atLeast = h('vscode-checkbox', { label: 'at least', 'data-testid': 'pin-at-least' }) as HTMLElement & { checked: boolean };
  const add = h('vscode-button', { secondary: true, 'data-testid': 'pin-add' }, 'Add Pin');
  const error = h('div', { class: 'error-text' });
  add.addEventListener('click', () => {
    const p = (pattern.value ?? '').trim();
    if (!p) return;
    try {
      new RegExp(p);
    } catch (err) {
      error.textContent = (err as Error).message;
      return;
    }
    const f = format.value || state.formats[0]?.name;
    if (f === 'keep') send(state.pins, [...state.exclude, p]);
    else if (f) send([...state.pins, { pattern: p, format: f, atLeast: !!atLeast.checked }], state.exclude);
  });
  return h(
    'section',
    { class: 'pins-section' },
    h('h2', null, 'Pins'),
    state.pins.length + state.exclude.length === 0 ? h('p', { class: 'muted' }, 'No pins: the planner chooses every tensor freely.') : list,
    h('div', { class: 'pin-form' }, pattern, format, atLeast, add),
    error,
  );
}

function actionsView(state: PlanPanelState): HTMLElement {
  const exportButton = h('vscode-button', { 'data-testid': 'export-recipe' }, 'Export Recipe…');
  exportButton.addEventListener('click', () => rpc.notify('planAction', { action: 'exportRecipe' }));
  // shown only when Quantize can carry the plan out: never a dead button
  const quantize = state.quantizeAvailable ? h('vscode-button', { secondary: true, 'data-testid': 'quantize-with-plan' }, 'Quantize with this Plan…') : null;
  quantize?.addEventListener('click', () => rpc.notify('planAction', { action: 'quantizeWithPlan' }));
  return h('section', { class: 'actions' }, exportButton, quantize, h('span', { class: 'muted' }, `${formatCount(state.plan?.params ?? 0)} parameters`));
}

