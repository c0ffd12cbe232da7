import type { LayerGroup } from '../../src/shared/protocol';
import { h } from './dom';
import { formatBpw, formatBytesShort, formatCount } from './format';

/**
 * Tensors grouped by layer (the name map's `layer`), by model-level role, or by name prefix for
 * models outside the map. Each group expands to its roles; "Show tensors" filters the table.
 */
export function layersView(groups: LayerGroup[], onShowTensors: (group: LayerGroup) => void): HTMLElement {
  const body = h('tbody');
  for (const g of groups) {
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
    const roleRows = g.roles.map((r) =>
      h(
        'tr',
        { class: 'role-row', hidden: true },
        h('td', { class: 'indent' }, r.role),
        h('td', { class: 'num' }, formatCount(r.tensors)),
        h('td', { class: 'num' }, formatCount(r.params)),
        h('td', { class: 'num' }, formatBytesShort(r.bytes)),
        h('td', { class: 'num' }, formatBpw(r.params > 0 ? (r.bytes * 8) / r.params : null)),
        h('td'),
      ),
    );
    toggle.addEventListener('click', () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(open));
      toggle.textContent = open ? '▾' : '▸';
      for (const r of roleRows) r.hidden = !open;
    });
    body.append(row, ...roleRows);
  }
  return h(
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
}
