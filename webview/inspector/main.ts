import type { InspectorState, LayerGroup, ModelState, TensorRow } from '../../src/shared/protocol';
import { connect, type InspectorRpc } from './api';
import { h } from './dom';
import { errorPanel } from './error-panel';
import { formatCount } from './format';
import { layersView } from './layers';
import { overview } from './overview';
import { TensorTable } from './tensor-table';
import './inspector.css';

/** Bumped when the messages this bundle speaks change. */
const WEBVIEW_VERSION = 1;

const app = document.getElementById('app')!;
const rpc = connect();

window.addEventListener('error', (e) => rpc.notify('webviewError', { message: String(e.message) }));
window.addEventListener('unhandledrejection', (e) => rpc.notify('webviewError', { message: String((e.reason as Error)?.message ?? e.reason) }));

void start();

async function start(): Promise<void> {
  let state: InspectorState;
  try {
    state = await rpc.request('ready', { version: WEBVIEW_VERSION });
  } catch (err) {
    const e = err as Error & { code?: string };
    state = { kind: 'error', fileName: document.title, error: { code: e.code ?? 'INTERNAL', message: e.message }, hexEditorAvailable: false };
  }
  app.removeAttribute('aria-busy');
  app.replaceChildren(state.kind === 'error' ? errorPanel(state, rpc) : modelView(state, rpc));
}

function modelView(state: ModelState, rpc: InspectorRpc): HTMLElement {
  const filter = h('vscode-textfield', { placeholder: 'Filter by name', 'data-testid': 'filter', class: 'filter' }) as HTMLElement & { value: string };
  const regex = h('vscode-checkbox', { label: 'Regex', 'data-testid': 'filter-regex' }) as HTMLElement & { checked: boolean };
  const groupChip = h('span', { class: 'group-chip', hidden: true });
  const table = new TensorTable(rpc, (row) => showDetail(row));
  const detail = h('div', { class: 'tensor-detail', 'data-testid': 'tensor-detail', hidden: true });

  const applyFilter = (group = table.currentQuery.group): void => {
    table.setQuery({ ...table.currentQuery, filter: filter.value ?? '', regex: !!regex.checked, group });
  };
  let debounce = 0;
  filter.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = window.setTimeout(() => applyFilter(), 120);
  });
  regex.addEventListener('change', () => applyFilter());

  const tabs = h('vscode-tabs', { 'selected-index': 0, class: 'tabs' }) as HTMLElement & { selectedIndex: number };
  const tensorsPanel = h(
    'vscode-tab-panel',
    { class: 'tensors-panel' },
    h('div', { class: 'toolbar' }, filter, regex, groupChip),
    h('div', { class: 'tensors-body' }, table.element, detail),
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
    h('vscode-tab-header', { slot: 'header', 'data-testid': 'tab-layers' }, `Layers (${formatCount(state.groups.length)})`),
    h(
      'vscode-tab-panel',
      null,
      layersView(state.groups, (g) => {
        showGroup(g);
        tabs.selectedIndex = 2;
      }),
    ),
    h('vscode-tab-header', { slot: 'header', 'data-testid': 'tab-tensors' }, `Tensors (${formatCount(state.totals.tensors)})`),
    tensorsPanel,
  );
  table.setQuery({ filter: '', regex: false });

  function showDetail(row: TensorRow): void {
    rpc.notify('selectionChanged', { index: row.index });
    detail.hidden = false;
    detail.replaceChildren(
      h('h2', null, row.name),
      h('p', { class: 'muted' }, `${row.dtype} [${row.shape.join(', ')}] · ${formatCount(row.params)} parameters · ${row.role}${row.layer !== null ? ` · layer ${row.layer}` : ''} · ${row.file}`),
    );
  }

  rpc.on('revealTensor', ({ index }) => {
    showGroup(undefined);
    tabs.selectedIndex = 2;
    void table.reveal(index);
  });
  rpc.on('statsUpdate', ({ results }) => table.updateStats(results));

  const header = h(
    'header',
    { class: 'title' },
    h('h1', null, state.fileName),
    h('vscode-badge', { variant: 'counter' }, state.format),
    h('span', { class: 'muted', 'data-testid': 'header-summary' }, `${formatCount(state.totals.tensors)} tensors · opened in ${state.openMs.toFixed(0)} ms`),
  );
  return h('div', { class: 'model' }, header, tabs);
}
