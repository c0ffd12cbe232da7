import type { InspectorHostSide, InspectorState, InspectorWebviewSide, LayerGroup, ModelState, TensorRow } from '../../src/shared/protocol';
import './elements';
import { connectToHost } from '../host-connection';
import type { InspectorRpc } from './api';
import { h } from './dom';
import { errorPanel } from './error-panel';
import { formatCount } from './format';
import { layersView } from './layers';
import { overview } from './overview';
import { TensorDetail } from './tensor-detail';
import { PAGE_ROWS, TensorTable } from './tensor-table';
import './inspector.css';

/** Bumped when the messages this bundle speaks change. */
const WEBVIEW_VERSION = 1;

const app = document.getElementById('app')!;
// when the page started, got its state, and drew its first table rows (the e2e test reads these)
app.dataset.startedAt = String(Date.now());
const rpc: InspectorRpc = connectToHost<InspectorHostSide, InspectorWebviewSide>();

void start();

async function start(): Promise<void> {
  let state: InspectorState;
  try {
    state = await rpc.request('ready', { version: WEBVIEW_VERSION, firstPageRows: PAGE_ROWS });
  } catch (err) {
    const e = err as Error & { code?: string };
    state = { kind: 'error', fileName: document.title, error: { code: e.code ?? 'INTERNAL', message: e.message }, hexEditorAvailable: false };
  }
  app.removeAttribute('aria-busy');
  app.dataset.readyAt = String(Date.now());
  if (state.kind === 'model') app.dataset.hostOpenStartedAt = String(state.openStartedAt);
  app.replaceChildren(state.kind === 'error' ? errorPanel(state, rpc) : modelView(state, rpc));
}

function modelView(state: ModelState, rpc: InspectorRpc): HTMLElement {
  const filter = h('vscode-textfield', { placeholder: 'Filter by name', 'data-testid': 'filter', class: 'filter' }) as HTMLElement & { value: string };
  const regex = h('vscode-checkbox', { label: 'Regex', 'data-testid': 'filter-regex' }) as HTMLElement & { checked: boolean };
  const groupChip = h('span', { class: 'group-chip', hidden: true });
  // a point of the strip across layers opens that layer's tensor
  const detail = new TensorDetail(rpc, state.settings.histogramBins, (index) => void revealAnywhere(index));
  const table = new TensorTable(rpc, (row) => showDetail(row));
  const analyze = analyzeControls(rpc);

  const applyFilter = (group = table.currentQuery.group): void => {
    table.setQuery({ ...table.currentQuery, filter: filter.value ?? '', regex: !!regex.checked, group });
  };
  let debounce = 0;
  filter.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = window.setTimeout(() => applyFilter(), 120);
  });
  regex.addEventListener('change', () => applyFilter());

  const layersTab = h('vscode-tab-header', { slot: 'header', 'data-testid': 'tab-layers' }, 'Layers');
  const tabs = h('vscode-tabs', { 'selected-index': 0, class: 'tabs' }) as HTMLElement & { selectedIndex: number };
  const tensorsPanel = h(
    'vscode-tab-panel',
    { class: 'tensors-panel' },
    h('div', { class: 'toolbar' }, filter, regex, groupChip, h('span', { class: 'spacer' }), analyze.element),
    h('div', { class: 'tensors-body' }, table.element, detail.element),
  );
  const showGroup = (g: LayerGroup | undefined): void => {
    groupChip.hidden = !g;
    groupChip.replaceChildren();
    if (g) {
      const clear = h('a', { href: '#', class: 'link', title: 'Show all tensors' }, '✕');
      clear.addEventListener('click', (e) => {
        e.preventDefault();
        showGroup(undefined);
      });
      groupChip.append(`${g.label} `, clear);
    }
    applyFilter(g?.key);
  };
  tabs.append(
    h('vscode-tab-header', { slot: 'header', 'data-testid': 'tab-overview' }, 'Overview'),
    h('vscode-tab-panel', null, overview(state)),
    layersTab,
    h(
      'vscode-tab-panel',
      null,
      layersView(
        rpc,
        (total) => (layersTab.textContent = `Layers (${formatCount(total)})`),
        (g) => {
          showGroup(g);
          tabs.selectedIndex = 2;
        },
      ),
    ),
    h('vscode-tab-header', { slot: 'header', 'data-testid': 'tab-tensors' }, `Tensors (${formatCount(state.totals.tensors)})`),
    tensorsPanel,
  );
  table.setQuery({ filter: '', regex: false }, state.firstPage);

  function showDetail(row: TensorRow): void {
    rpc.notify('selectionChanged', { index: row.index });
    void detail.show(row);
  }
  // VS Code swaps the body's theme class: charts read their colours again
  new MutationObserver(() => detail.redraw()).observe(document.body, { attributes: true, attributeFilter: ['class'] });

  /** Selects a tensor in the table as filtered, or with the filter and group cleared when they hide it. */
  async function revealAnywhere(index: number): Promise<void> {
    tabs.selectedIndex = 2;
    if (await table.reveal(index)) return;
    filter.value = '';
    showGroup(undefined);
    await table.reveal(index);
  }
  rpc.on('revealTensor', ({ index }) => void revealAnywhere(index));
  rpc.on('statsUpdate', ({ results }) => table.updateStats(results));
  rpc.on('analyzeProgress', (p) => analyze.progress(p.done, p.total, p.bytesDone, p.bytesTotal));
  rpc.on('analyzeFinished', (r) => analyze.finished(r.analyzed, r.failed, r.cancelled, r.elapsedMs));

  const header = h(
    'header',
    { class: 'title' },
    h('h1', null, state.fileName),
    h('vscode-badge', { variant: 'counter' }, state.format),
    h('span', { class: 'muted', 'data-testid': 'header-summary' }, `${formatCount(state.totals.tensors)} tensors · opened in ${state.openMs.toFixed(0)} ms`),
  );
  return h('div', { class: 'model' }, header, tabs);
}

/** The Analyze All Tensors button, its progress bar and cancel button. */
function analyzeControls(rpc: InspectorRpc) {
  const button = h('vscode-button', { 'data-testid': 'analyze-all' }, 'Analyze All Tensors');
  const cancel = h('vscode-button', { secondary: true, hidden: true, 'data-testid': 'analyze-cancel' }, 'Cancel');
  const fill = h('div', { class: 'progress-fill' });
  const bar = h('div', { class: 'progress', hidden: true, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, fill);
  const status = h('span', { class: 'muted', 'data-testid': 'analyze-status' });
  let controller: AbortController | undefined;
  const running = (on: boolean): void => {
    button.toggleAttribute('disabled', on);
    cancel.hidden = !on;
    bar.hidden = !on;
  };
  button.addEventListener('click', () => {
    controller = new AbortController();
    running(true);
    status.textContent = 'Starting…';
    rpc.request('analyzeAll', {}, { signal: controller.signal }).then(
      (reply) => {
        if (!reply.declined) return; // analyzeFinished said how it went
        running(false);
        status.textContent = '';
      },
      (err: Error & { code?: string }) => {
        if (err.code !== 'CANCELLED') status.textContent = `${err.code ?? 'ERROR'}: ${err.message}`;
        running(false);
      },
    );
  });
  cancel.addEventListener('click', () => {
    controller?.abort();
    status.textContent = 'Cancelling…';
  });
  return {
    element: h('span', { class: 'analyze' }, status, bar, button, cancel),
    progress(done: number, total: number, bytesDone: number, bytesTotal: number): void {
      running(true);
      const pct = bytesTotal > 0 ? (bytesDone / bytesTotal) * 100 : 0;
      fill.style.width = `${pct.toFixed(1)}%`;
      bar.setAttribute('aria-valuenow', pct.toFixed(0));
      status.textContent = `${formatCount(done)} / ${formatCount(total)} tensors`;
    },
    finished(analyzed: number, failed: number, cancelled: boolean, elapsedMs: number): void {
      running(false);
      controller = undefined;
      const what = `${formatCount(analyzed)} tensors analyzed in ${(elapsedMs / 1000).toFixed(1)} s${failed ? `, ${failed} failed` : ''}`;
      status.textContent = cancelled ? `Cancelled: ${what}` : what;
      status.dataset.state = cancelled ? 'cancelled' : 'done';
      status.dataset.elapsedMs = String(Math.round(elapsedMs));
    },
  };
}
