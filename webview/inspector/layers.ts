import type { LayerGroup } from '../../src/shared/protocol';
import type { InspectorRpc } from './api';
import { h } from './dom';
import { formatBpw, formatBytesShort, formatCount } from './format';

/** Groups fetched per "Show more" (models with tens of thousands of layers stay responsive). */
const GROUPS_PER_PAGE = 500;

/**
 * Tensors grouped by layer (the name map's `layer`), by model-level role, or by name prefix for
 * models outside the map. Groups come from the host in pages; each expands to its roles, and
 * "tensors" shows the group's rows in the table.
 */
export function layersView(rpc: InspectorRpc, onTotal: (groups: number) => void, onShowTensors: (group: LayerGroup) => void): HTMLElement {
  const body = h('tbody');
  const more = h('vscode-button', { secondary: true, hidden: true, 'data-testid': 'layers-more' }, 'Show more');
  const status = h('span', { class: 'muted' });
  let loaded = 0;
  const load = async (): Promise<void> => {
    more.toggleAttribute('disabled', true);
    try {
      const page = await rpc.request('layerGroups', { offset: loaded, limit: GROUPS_PER_PAGE });
      for (const g of page.groups) body.append(groupRow(g, onShowTensors));
      loaded += page.groups.length;
      onTotal(page.total);
      more.hidden = loaded >= page.total;
      status.textContent = loaded < page.total ? `${formatCount(loaded)} of ${formatCount(page.total)} groups shown` : '';
    } catch (err) {
      status.textContent = (err as Error).message;
    } finally {
      more.toggleAttribute('disabled', false);
    }
  };
  more.addEventListener('click', () => void load());
  // after the first paint: the host builds the groups after the table's first page
  requestAnimationFrame(() => setTimeout(() => void load()));
  const table = h(
    'table',
    { class: 'grid layers', 'data-testid': 'layers-table' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', null, 'Group'),
        h('th', { class: 'num' }, 'Tensors'),
        h('th', { class: 'num' }, 'Parameters'),
        h('th', { class: 'num' }, 'Bytes'),
        h('th', { class: 'num' }, 'Bits/weight'),
        h('th', null, ''),
      ),
    ),
    body,
  );
  return h('div', { class: 'layers-view' }, table, h('div', { class: 'toolbar' }, more, status));
}

function groupRow(g: LayerGroup, onShowTensors: (group: LayerGroup) => void): DocumentFragment {
  const toggle = h('button', { class: 'twisty', 'aria-expanded': 'false', 'aria-label': `Expand ${g.label}` }, '▸');
  const show = h('a', { href: '#', class: 'link', 'data-testid': 'show-group-tensors' }, 'tensors');
  show.addEventListener('click', (e) => {
    e.preventDefault();
    onShowTensors(g);
  });
  const row = h(
    'tr',
    { class: 'group-row', 'data-group': g.key, 'data-testid': `group-${g.key}` },
    h('td', null, toggle, ' ', g.label),
    h('td', { class: 'num' }, formatCount(g.tensors)),
    h('td', { class: 'num' }, formatCount(g.params)),
    h('td', { class: 'num' }, formatBytesShort(g.bytes)),
    h('td', { class: 'num' }, formatBpw(g.bitsPerWeight)),
    h('td', null, show),
  );
  // role rows are built on first expand, not for every group up front
  let roleRows: HTMLElement[] | undefined;
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    toggle.textContent = open ? '▾' : '▸';
    if (!roleRows) {
      roleRows = g.roles.map((r) =>
        h(
          'tr',
          { class: 'role-row', 'data-testid': `role-${g.key}-${r.role}` },
          h('td', { class: 'indent' }, r.role),
          h('td', { class: 'num' }, formatCount(r.tensors)),
          h('td', { class: 'num' }, formatCount(r.params)),
          h('td', { class: 'num' }, formatBytesShort(r.bytes)),
          h('td', { class: 'num' }, formatBpw(r.params > 0 ? (r.bytes * 8) / r.params : null)),
          h('td'),
        ),
      );
      row.after(...roleRows);
    }
    for (const r of roleRows) r.hidden = !open;
  });
  const fragment = document.createDocumentFragment();
  fragment.append(row);
  return fragment;
}
