import type { Chart } from 'chart.js';
import type {
  ActivationsActionRequest, ActivationsHostSide, ActivationsProgressEvent, ActivationsResultView, ActivationsState, ActivationsWebviewSide,
  CalibrationRequest, ImageNormalisationView, OnnxEvaluationView, OnnxSourceKind, SiteDetailReply, TensorStats,
} from '../../src/shared/protocol';
import { connectToHost } from '../host-connection';
import { h } from '../inspector/dom';
import { formatCount, formatStat } from '../inspector/format';
import { channelChart, histogramChart, stripChart } from './charts';
import './activations.css';

/** Bumped when the messages this bundle speaks change. */
const WEBVIEW_VERSION = 1;

type Field = HTMLElement & { value: string };

const rpc = connectToHost<ActivationsHostSide, ActivationsWebviewSide>();

const app = document.getElementById('app')!;
let state: ActivationsState;
let selected = -1;
let logCounts = true;
let detailRequest: AbortController | undefined;
let lastDetail: SiteDetailReply | undefined;
const charts: { strip?: Chart; activation?: Chart; weight?: Chart; channels?: Chart } = {};

// the form's fields (built once per state)
const statusText = h('span', { class: 'muted', 'data-testid': 'calibration-status', 'data-state': 'idle' }, '');
const progressBar = h('vscode-progress-bar', { value: 0, max: 1, hidden: true }) as HTMLElement & { value: number };
const runButton = h('vscode-button', { 'data-testid': 'run-calibration' }, 'Run Calibration');
const cancelButton = h('vscode-button', { secondary: true, disabled: true, 'data-testid': 'cancel-calibration' }, 'Cancel');
const resultBox = h('section', { class: 'result', 'data-testid': 'result' });
let readRequest: () => CalibrationRequest;

void start();

async function start(): Promise<void> {
  state = await rpc.request('ready', { version: WEBVIEW_VERSION });
  app.removeAttribute('aria-busy');
  app.replaceChildren(view());
  rpc.on('activationsProgress', (p) => showProgress(p));
  runButton.addEventListener('click', () => void run());
  cancelButton.addEventListener('click', () => rpc.notify('cancelCalibration', {}));
  setRunning(state.running);
  if (state.result) showResult(state.result);
  // theme switches: redraw the charts with the new colours
  new MutationObserver(() => {
    if (state.result) drawStrip(state.result);
    if (lastDetail) drawDetail(lastDetail);
  }).observe(document.body, { attributes: true, attributeFilter: ['class'] });
}

function view(): HTMLElement {
  const header = h(
    'header',
    { class: 'title' },
    h('h1', null, `Activations: ${state.fileName}`),
    h('vscode-badge', { variant: 'counter' }, state.kind === 'onnx' ? 'ONNX' : 'LLM'),
    h('span', { class: 'muted small', title: state.path }, state.kind === 'onnx' ? 'ONNX Runtime (WebAssembly) in the kernel workers' : 'forward pass in a kernel worker'),
  );
  const form = state.kind === 'onnx' ? onnxForm() : llmForm();
  return h(
    'div',
    { class: 'activations' },
    header,
    h('section', { class: 'form', 'data-testid': 'calibration-form' }, h('h2', null, 'Calibration data'), form, h('div', { class: 'run-row' }, runButton, cancelButton, progressBar, statusText)),
    resultBox,
  );
}

// ---------------------------------------------------------------------------------------------
// Forms

function row(label: string, ...controls: Array<Node | null>): HTMLElement {
  return h('div', { class: 'row' }, h('label', { class: 'label' }, label), h('div', { class: 'controls' }, ...controls));
}

function textField(testId: string, value: string, placeholder = '', extra: Record<string, string> = {}): Field {
  return h('vscode-textfield', { 'data-testid': testId, value, placeholder, ...extra }) as Field;
}

function select(testId: string, options: Array<[string, string]>, value: string): Field {
  const el = h('vscode-single-select', { 'data-testid': testId }) as Field;
  for (const [v, label] of options) el.append(h('vscode-option', { value: v, selected: v === value }, label));
  return el;
}

function browseButton(what: 'text' | 'images' | 'arrays' | 'audio', target: Field): HTMLElement {
  const b = h('vscode-button', { secondary: true, 'data-testid': 'browse' }, 'Browse…');
  b.addEventListener('click', async () => {
    const { path } = await rpc.request('pickPath', { what });
    if (path) target.value = path;
  });
  return b;
}

function positiveInt(text: string, what: string): number {
  const n = Number(text.trim());
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${what}: a whole number above 0, not “${text}”`);
  return n;
}

function llmForm(): HTMLElement {
  const text = state.defaultText;
  const source = select('text-source', [['default', `Bundled default text (${text?.name ?? 'calibration-default.txt'}, ${((text?.bytes ?? 0) / 1000).toFixed(1)} kB of prose)`], ['file', 'A text file…']], 'default');
  const path = textField('path-field', '', '/path/to/calibration.txt', { class: 'path' });
  const browse = browseButton('text', path);
  const fileRow = row('Text file', path, browse);
  fileRow.hidden = true;
  source.addEventListener('change', () => (fileRow.hidden = source.value !== 'file'));
  const ctx = textField('ctx-field', '128', 'tokens', { class: 'num' });
  const chunks = textField('chunks-field', '', 'all', { class: 'num' });
  readRequest = () => ({
    kind: 'llm',
    textPath: source.value === 'file' ? requirePath(path.value) : null,
    ctx: positiveInt(ctx.value, 'Context'),
    chunks: chunks.value.trim() ? positiveInt(chunks.value, 'Chunks') : null,
  });
  return h(
    'div',
    null,
    row('Text', source),
    fileRow,
    row('Context', ctx, h('span', { class: 'muted small' }, 'tokens per chunk')),
    row('Chunks', chunks, h('span', { class: 'muted small' }, 'at most this many (empty: every whole chunk of the text)')),
    h('p', { class: 'muted small' }, 'Chunked as llama-imatrix does (whole chunks, BOS first). The run also computes the importance matrix; the Sensitivity sidebar then weights its sweep with it (imatrix mode).'),
  );
}

function requirePath(value: string): string {
  if (!value.trim()) throw new Error('Choose a file or folder first (Browse…).');
  return value.trim();
}

const SOURCE_LABELS: Array<[OnnxSourceKind, string]> = [
  ['images', 'A folder of images (.png, .jpg)'],
  ['arrays', 'A .npy or .npz file (or a folder of them)'],
  ['audio', 'A 16 kHz .wav file (or a folder of them)'],
  ['synthetic', 'Synthetic inputs (standard normal)'],
];

function onnxForm(): HTMLElement {
  const inputs = h(
    'table',
    { class: 'inputs', 'data-testid': 'model-inputs' },
    h('thead', null, h('tr', null, h('th', null, 'Input'), h('th', null, 'Type'), h('th', null, 'Shape'))),
    h('tbody', null, ...state.onnxInputs.map((i) => h('tr', null, h('td', null, i.name), h('td', null, i.type), h('td', null, `[${i.dims.map((d) => (d === null ? '?' : String(d))).join(', ')}]`)))),
  );
  const source = select('source-select', SOURCE_LABELS, 'images');
  const path = textField('path-field', '', '/path/to/images', { class: 'path' });
  const pathRow = row('Files', path, browseButton('images', path));
  const browse = pathRow.querySelector('[data-testid="browse"]')!;
  // the dialog follows the source kind
  browse.replaceWith(browseFor(source, path));
  const d = state.defaultImage;
  const scale = textField('image-scale', formatStat(d.scale), '', { class: 'num' });
  const mean = textField('image-mean', d.mean.join(', '), '', { class: 'triple' });
  const std = textField('image-std', d.std.join(', '), '', { class: 'triple' });
  const order = select('image-order', [['rgb', 'RGB'], ['bgr', 'BGR']], d.channelOrder);
  const resize = select('image-resize', [['stretch', 'stretch to the input size'], ['pad', 'keep aspect, pad the right (text lines)']], d.resize);
  const imageRows = h(
    'div',
    { class: 'image-rows' },
    row('Normalisation', h('span', { class: 'muted small' }, 'value = (pixel × scale − mean) ÷ std'), h('span', { class: 'muted small' }, 'scale'), scale, h('span', { class: 'muted small' }, 'mean'), mean, h('span', { class: 'muted small' }, 'std'), std),
    row('Channels', order, h('span', { class: 'muted small' }, 'resize'), resize),
  );
  const samples = textField('synthetic-samples', '8', '', { class: 'num' });
  const notice = h(
    'div',
    { class: 'notice warning', 'data-testid': 'synthetic-notice' },
    'Synthetic calibration is a weaker proxy: random inputs do not look like real data, so ranges, histograms and outlier channels can differ a lot from what real inputs give. Use real samples when you have them.',
  );
  const syntheticRows = h('div', null, row('Samples', samples), notice);
  const dimFields = new Map<string, Field>();
  const dimRow = state.symbolicDims.length
    ? row(
        'Symbolic dims',
        ...state.symbolicDims.flatMap((name) => {
          const f = textField(`dim-${name}`, '', 'size', { class: 'num' });
          dimFields.set(name, f);
          return [h('span', { class: 'small mono' }, name), f];
        }),
      )
    : null;
  const sync = (): void => {
    const kind = source.value as OnnxSourceKind;
    pathRow.hidden = kind === 'synthetic';
    imageRows.hidden = kind !== 'images';
    syntheticRows.hidden = kind !== 'synthetic';
    path.setAttribute('placeholder', kind === 'images' ? '/path/to/images' : kind === 'audio' ? '/path/to/speech.wav' : '/path/to/samples.npz');
  };
  source.addEventListener('change', sync);
  sync();
  readRequest = () => {
    const kind = source.value as OnnxSourceKind;
    const dims: Record<string, number> = {};
    for (const [name, f] of dimFields) dims[name] = positiveInt(f.value, `Dimension ${name}`);
    const image: ImageNormalisationView = {
      scale: Number(scale.value),
      mean: triple(mean.value, 'mean'),
      std: triple(std.value, 'std'),
      channelOrder: order.value === 'bgr' ? 'bgr' : 'rgb',
      resize: resize.value === 'pad' ? 'pad' : 'stretch',
    };
    if (!Number.isFinite(image.scale) || image.scale <= 0) throw new Error('Scale: a positive number (1/255 is 0.003922).');
    return { kind: 'onnx', source: kind, path: kind === 'synthetic' ? '' : requirePath(path.value), image, samples: kind === 'synthetic' ? positiveInt(samples.value, 'Samples') : 0, dims };
  };
  return h('div', null, inputs, row('Source', source), pathRow, imageRows, syntheticRows, dimRow);
}

function browseFor(source: Field, path: Field): HTMLElement {
  const b = h('vscode-button', { secondary: true, 'data-testid': 'browse' }, 'Browse…');
  b.addEventListener('click', async () => {
    const kind = source.value as OnnxSourceKind;
    const { path: picked } = await rpc.request('pickPath', { what: kind === 'synthetic' ? 'images' : kind });
    if (picked) path.value = picked;
  });
  return b;
}

function triple(text: string, what: string): number[] {
  const values = text.split(/[,\s]+/).filter(Boolean).map(Number);
  if (values.length === 0 || values.length > 4 || values.some((v) => !Number.isFinite(v))) throw new Error(`${what}: one number per channel, separated by commas`);
  if (what === 'std' && values.some((v) => v === 0)) throw new Error('std: no zero values');
  return values;
}

// ---------------------------------------------------------------------------------------------
// Running

async function run(): Promise<void> {
  let request: CalibrationRequest;
  try {
    request = readRequest();
  } catch (err) {
    showProgress({ stage: '', done: 0, total: 1, state: 'error', message: (err as Error).message });
    return;
  }
  setRunning(true);
  showProgress({ stage: 'starting', done: 0, total: 1, state: 'running' });
  try {
    const result = await rpc.request('runCalibration', request);
    state.result = result;
    state.quantized = null;
    state.evaluation = null;
    selected = -1;
    showResult(result);
    statusText.textContent = `Calibrated in ${result.seconds.toFixed(1)} s.`;
    statusText.dataset.state = 'done';
  } catch (err) {
    const e = err as Error & { code?: string };
    statusText.textContent = e.code === 'CANCELLED' ? 'Cancelled.' : e.message;
    statusText.dataset.state = e.code === 'CANCELLED' ? 'cancelled' : 'error';
  } finally {
    setRunning(false);
  }
}

function setRunning(running: boolean): void {
  runButton.toggleAttribute('disabled', running);
  cancelButton.toggleAttribute('disabled', !running);
  progressBar.hidden = !running;
  for (const b of resultBox.querySelectorAll('.actions vscode-button')) b.toggleAttribute('disabled', running);
}

function showProgress(p: ActivationsProgressEvent): void {
  if (p.state === 'running') {
    progressBar.value = p.total > 0 ? p.done / p.total : 0;
    statusText.textContent = `${p.stage}${p.total > 1 ? ` ${p.done}/${p.total}` : ''}…`;
    statusText.dataset.state = 'running';
  } else if (p.state === 'done') {
    progressBar.value = 1;
    statusText.textContent = `Done: ${p.stage}.`;
    statusText.dataset.state = 'done';
  } else if (p.state === 'error' || p.state === 'cancelled') {
    statusText.textContent = p.state === 'cancelled' ? 'Cancelled.' : (p.message ?? 'Failed.');
    statusText.dataset.state = p.state;
  }
}

// ---------------------------------------------------------------------------------------------
// Results

function showResult(result: ActivationsResultView): void {
  const notes: HTMLElement[] = result.notes.map((n) => h('p', { class: 'muted small' }, n));
  if (result.synthetic) notes.unshift(h('div', { class: 'notice warning' }, 'These statistics come from synthetic inputs, a weaker proxy for real data.'));
  const summary = h(
    'p',
    { class: 'summary', 'data-testid': 'result-summary' },
    result.summary,
    result.ppl !== null ? ` · perplexity ${result.ppl.toFixed(4)}` : '',
    ` · ${result.seconds.toFixed(1)} s`,
  );
  const extras: HTMLElement[] = [];
  if (result.imatrixWeights !== null) {
    const sweep = h('vscode-button', { secondary: true, 'data-testid': 'action-imatrix-sweep' }, 'Run Sensitivity Sweep (imatrix)');
    sweep.addEventListener('click', () => void act('imatrixSweep'));
    extras.push(h('div', { class: 'imatrix' }, h('span', null, `Importance matrix of ${result.imatrixWeights} weights handed to the Sensitivity sidebar (imatrix mode).`), sweep));
  }
  const stripCanvas = h('canvas', { 'data-testid': 'layer-strip', 'aria-label': 'Activation absmax and kurtosis per site in execution order' });
  const logBox = h('vscode-checkbox', { checked: logCounts, label: 'log counts', 'data-testid': 'log-counts' }) as HTMLElement & { checked: boolean };
  logBox.addEventListener('change', () => {
    logCounts = logBox.checked;
    if (lastDetail) drawDetail(lastDetail);
  });
  resultBox.replaceChildren(
    h('h2', null, 'Result'),
    summary,
    ...notes,
    ...extras,
    ...(state.kind === 'onnx' ? [onnxActions()] : []),
    h('h2', null, 'Layer strip: activation absmax (bars, log) and kurtosis (line), in execution order'),
    h('p', { class: 'muted small' }, 'Red bars: sites whose linear input has outlier channels. Click a bar or a row to see that site.'),
    h('div', { class: 'strip-box' }, stripCanvas),
    h('div', { class: 'body' }, h('div', { class: 'table-box' }, siteTable(result)), h('section', { class: 'detail', 'data-testid': 'site-detail' }, h('div', { class: 'detail-head' }, h('span', { class: 'muted' }, 'Select a site.'), logBox))),
  );
  drawStrip(result);
  const first = result.sites.findIndex((s) => s.weights.length > 0 && s.hasChannels);
  selectSite(first >= 0 ? first : 0);
}

function drawStrip(result: ActivationsResultView): void {
  const canvas = resultBox.querySelector<HTMLCanvasElement>('canvas[data-testid="layer-strip"]');
  if (!canvas) return;
  charts.strip?.destroy();
  charts.strip = stripChart(canvas, result.sites, selected, (i) => selectSite(i));
}

function siteTable(result: ActivationsResultView): HTMLElement {
  const tbody = h('tbody');
  result.sites.forEach((s, i) => {
    const tr = h(
      'tr',
      { 'data-index': i, title: s.weights.length ? `weights: ${s.weights.join(', ')}` : '' },
      h('td', { class: 'num muted' }, String(i)),
      h('td', { class: 'name' }, s.label),
      h('td', null, s.op),
      h('td', { class: 'num' }, formatStat(s.absMax)),
      h('td', { class: 'num' }, formatStat(s.kurtosis)),
      h('td', { class: `num${s.outlierChannels ? ' hot' : ''}` }, s.hasChannels ? String(s.outlierChannels) : ''),
    );
    tr.addEventListener('click', () => selectSite(i));
    tbody.append(tr);
  });
  return h(
    'table',
    { class: 'sites', 'data-testid': 'site-table' },
    h('thead', null, h('tr', null, h('th', { class: 'num' }, '#'), h('th', null, state.kind === 'onnx' ? 'Node' : 'Site'), h('th', null, state.kind === 'onnx' ? 'Op' : 'Kind'), h('th', { class: 'num' }, 'absmax'), h('th', { class: 'num' }, 'kurtosis'), h('th', { class: 'num', title: `channels of the input whose absmax exceeds 6× the median channel's` }, 'outlier ch.'))),
    tbody,
  );
}

function selectSite(index: number, weight?: string): void {
  const result = state.result;
  const site = result?.sites[index];
  if (!result || !site) return;
  selected = index;
  for (const tr of resultBox.querySelectorAll<HTMLTableRowElement>('table.sites tbody tr')) tr.classList.toggle('selected', Number(tr.dataset.index) === index);
  scrollRowIntoView(resultBox.querySelector<HTMLElement>(`table.sites tbody tr[data-index="${index}"]`));
  drawStrip(result);
  detailRequest?.abort();
  const controller = new AbortController();
  detailRequest = controller;
  const detail = resultBox.querySelector('[data-testid="site-detail"]')!;
  detail.setAttribute('aria-busy', 'true');
  rpc.request('siteDetail', { id: site.id, weight }, { signal: controller.signal }).then(
    (reply) => {
      if (controller.signal.aborted) return;
      detail.removeAttribute('aria-busy');
      lastDetail = reply;
      drawDetail(reply);
    },
    (err: Error & { code?: string }) => {
      if (err.code === 'CANCELLED') return;
      detail.removeAttribute('aria-busy');
      detail.replaceChildren(h('p', { class: 'error' }, err.message));
    },
  );
}

/** Scrolls the site list (only it, not the page) so that `row` shows. */
function scrollRowIntoView(row: HTMLElement | null): void {
  const box = row?.closest<HTMLElement>('.table-box');
  if (!row || !box) return;
  const header = box.querySelector('thead')?.getBoundingClientRect().height ?? 0;
  const top = row.offsetTop - header;
  if (top < box.scrollTop) box.scrollTop = top;
  else if (row.offsetTop + row.offsetHeight > box.scrollTop + box.clientHeight) box.scrollTop = row.offsetTop + row.offsetHeight - box.clientHeight;
}

function statsLine(s: TensorStats): string {
  return `min ${formatStat(s.min)} · max ${formatStat(s.max)} · mean ${formatStat(s.mean)} · std ${formatStat(s.std)} · kurtosis ${formatStat(s.kurtosis)} · >6σ ${formatStat(s.outlierShare)} · ${formatCount(s.count)} values`;
}

function drawDetail(d: SiteDetailReply): void {
  const box = resultBox.querySelector('[data-testid="site-detail"]');
  if (!box) return;
  charts.activation?.destroy();
  charts.weight?.destroy();
  charts.channels?.destroy();
  const logBox = box.querySelector('vscode-checkbox') ?? h('span');
  const site = state.result?.sites.find((s) => s.id === d.id);
  const actCanvas = h('canvas', { 'data-testid': 'activation-histogram', 'aria-label': 'Activation histogram' });
  const weightCanvas = d.weight ? h('canvas', { 'data-testid': 'weight-histogram', 'aria-label': 'Weight histogram' }) : null;
  let weightHead: Node = h('h3', null, 'Weight');
  if (d.weight && site && site.weights.length > 1) {
    const pick = h('vscode-single-select', { 'data-testid': 'weight-select' }) as Field;
    for (const w of site.weights) pick.append(h('vscode-option', { value: w, selected: w === d.weight.name }, w));
    pick.addEventListener('change', () => selectSite(selected, pick.value));
    weightHead = h('h3', null, 'Weight ', pick);
  } else if (d.weight) weightHead = h('h3', null, `Weight ${d.weight.name}`);
  const pair = h(
    'div',
    { class: 'pair' },
    h('div', { class: 'chart-card' }, h('h3', null, `Activation ${d.activation.label}`), h('div', { class: 'chart-box' }, actCanvas), h('p', { class: 'muted small' }, statsLine(d.activation.stats))),
    h(
      'div',
      { class: 'chart-card' },
      weightHead,
      weightCanvas ? h('div', { class: 'chart-box' }, weightCanvas) : h('p', { class: 'muted' }, d.weightNote ?? 'No weight.'),
      d.weight ? h('p', { class: 'muted small' }, `${d.weight.dtype} [${d.weight.shape.join(', ')}] · ${statsLine(d.weight.stats)}`) : null,
    ),
  );
  let channelSection: HTMLElement | null = null;
  if (d.channels) {
    const c = d.channels;
    const canvas = h('canvas', { 'data-testid': 'channel-chart', 'aria-label': 'Per-channel absmax of the input' });
    const list = c.outliers.slice(0, 12).map((ch) => `${ch} (${formatStat(c.median > 0 ? c.absMax[ch]! / c.median : 0)}×)`).join(', ');
    channelSection = h(
      'div',
      { class: 'chart-card wide' },
      h('h3', null, `Outlier channels of ${c.input}`),
      h(
        'p',
        { class: 'small', 'data-testid': 'outlier-summary' },
        c.outliers.length
          ? `${c.outliers.length} of ${c.absMax.length} channels exceed ${c.ratio}× the median channel absmax (${formatStat(c.median)}), in red: ${list}${c.outliers.length > 12 ? ' …' : ''}`
          : `No channel exceeds ${c.ratio}× the median channel absmax (${formatStat(c.median)}) among ${c.absMax.length}.`,
      ),
      h('div', { class: 'chart-box channels' }, canvas),
    );
  }
  box.replaceChildren(h('div', { class: 'detail-head' }, h('strong', null, site?.label ?? d.id), logBox), pair, ...(channelSection ? [channelSection] : []));
  // a log axis only helps where counts span decades
  const spansDecades = (s: TensorStats): boolean => Math.max(0, ...s.histogram.counts) >= 100;
  charts.activation = histogramChart(actCanvas, d.activation.stats, '--vscode-charts-orange', logCounts && spansDecades(d.activation.stats));
  if (weightCanvas && d.weight) charts.weight = histogramChart(weightCanvas, d.weight.stats, '--vscode-charts-blue', logCounts && spansDecades(d.weight.stats));
  const channelCanvas = box.querySelector<HTMLCanvasElement>('canvas[data-testid="channel-chart"]');
  if (channelCanvas && d.channels) charts.channels = channelChart(channelCanvas, d.channels);
}

// ---------------------------------------------------------------------------------------------
// ONNX actions

function onnxActions(): HTMLElement {
  const message = h('p', { class: 'small', 'data-testid': 'action-message' });
  const evaluation = h('div', { 'data-testid': 'evaluation' });
  const buttons: Array<[ActivationsActionRequest['action'], string, boolean]> = [
    ['quantize', 'Quantize (int8 QDQ)…', false],
    ['evaluate', 'Evaluate against Original', true],
    ['compare', 'Compare Weights', true],
    ['outputSensitivity', 'Rank Layers by Output Sensitivity', true],
  ];
  const row_ = h('div', { class: 'actions' });
  for (const [action, label, secondary] of buttons) {
    const b = h('vscode-button', { secondary, 'data-testid': `action-${action}` }, label);
    b.addEventListener('click', () => void act(action, message, evaluation));
    row_.append(b);
  }
  const box = h('div', { class: 'onnx-actions' }, row_, message, evaluation);
  refreshActions(row_, evaluation);
  return box;
}

function refreshActions(row_: Element | null, evaluation: Element | null): void {
  const needsModel = ['evaluate', 'compare'];
  for (const b of row_?.querySelectorAll<HTMLElement>('vscode-button') ?? []) {
    const action = b.dataset.testid?.replace('action-', '') ?? '';
    b.toggleAttribute('disabled', needsModel.includes(action) && !state.quantized);
    if (needsModel.includes(action) && state.quantized) b.title = state.quantized.fileName;
  }
  if (evaluation) evaluation.replaceChildren(...(state.evaluation ? [evaluationTable(state.evaluation)] : []));
}

function evaluationTable(e: OnnxEvaluationView): HTMLElement {
  return h(
    'div',
    null,
    h('h3', null, `${e.candidate} against the original on ${e.samples} ${e.synthetic ? 'synthetic ' : ''}calibration samples`),
    h(
      'table',
      { class: 'eval', 'data-testid': 'evaluation-table' },
      h('thead', null, h('tr', null, h('th', null, 'Output'), h('th', { class: 'num' }, 'SQNR dB'), h('th', { class: 'num' }, 'relative MSE'), h('th', { class: 'num' }, 'top-1 agreement'))),
      h(
        'tbody',
        null,
        ...e.outputs.map((o) =>
          h(
            'tr',
            null,
            h('td', null, o.name),
            h('td', { class: 'num' }, o.sqnrDb === null ? 'exact' : o.sqnrDb.toFixed(1)),
            h('td', { class: 'num' }, formatStat(o.relMse)),
            h('td', { class: 'num' }, o.top1Agreement === null ? '–' : `${(o.top1Agreement * 100).toFixed(1)}% of ${o.rows}`),
          ),
        ),
      ),
    ),
  );
}

async function act(action: ActivationsActionRequest['action'], message?: HTMLElement, evaluation?: HTMLElement): Promise<void> {
  setRunning(true);
  try {
    const reply = await rpc.request('action', { action });
    state.quantized = reply.quantized;
    state.evaluation = reply.evaluation;
    if (message && reply.message) message.textContent = reply.message;
  } catch (err) {
    const e = err as Error & { code?: string };
    if (message) message.textContent = e.code === 'CANCELLED' ? 'Cancelled.' : e.message;
  } finally {
    setRunning(false);
    refreshActions(resultBox.querySelector('.actions'), evaluation ?? null);
  }
}
