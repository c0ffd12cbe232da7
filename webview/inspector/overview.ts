import type { ModelState } from '../../src/shared/protocol';
import { h } from './dom';
import { formatBpw, formatBytes, formatBytesShort, formatCount, formatParams } from './format';

/** Totals, dtype breakdown, files, diagnostics and metadata of a model. */
export function overview(state: ModelState): HTMLElement {
  const { totals } = state;
  const stat = (label: string, value: string, testid: string): HTMLElement =>
    h('div', { class: 'stat' }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value', 'data-testid': testid }, value));

  const cards = h(
    'div',
    { class: 'stats' },
    stat('Format', state.format, 'format'),
    stat('Tensors', formatCount(totals.tensors), 'tensor-count'),
    stat('Parameters', `${formatCount(totals.params)} (${formatParams(totals.params)})`, 'param-count'),
    stat('Tensor bytes', formatBytes(totals.bytes), 'total-bytes'),
    stat('Bits per weight', formatBpw(totals.bitsPerWeight), 'bits-per-weight'),
  );

  const dtypes = Object.entries(totals.byDtype).sort((a, b) => b[1].bytes - a[1].bytes);
  const dtypeTable = table(
    ['DType', 'Tensors', 'Parameters', 'Bytes', 'Share of bytes'],
    dtypes.map(([dtype, t]) => [
      dtype,
      formatCount(t.tensors),
      formatCount(t.params),
      formatBytesShort(t.bytes),
      totals.bytes > 0 ? `${((t.bytes / totals.bytes) * 100).toFixed(1)} %` : '–',
    ]),
    'dtype-table',
  );

  const sections: HTMLElement[] = [cards, section('By dtype', dtypeTable)];
  if (state.diagnostics.length) {
    sections.push(
      section(
        `Diagnostics (${state.diagnostics.length})`,
        h(
          'ul',
          { class: 'diagnostics', 'data-testid': 'diagnostics' },
          ...state.diagnostics.map((d) =>
            h(
              'li',
              { class: `diagnostic ${d.severity}` },
              h('span', { class: 'severity' }, d.severity),
              h('code', null, d.code),
              ` ${d.message}`,
              d.tensor ? h('span', { class: 'muted' }, ` (tensor ${d.tensor})`) : null,
              d.offset !== undefined ? h('span', { class: 'muted' }, ` (offset ${d.offset})`) : null,
            ),
          ),
        ),
      ),
    );
  }
  sections.push(
    section(
      state.files.length > 1 ? `Files (${state.files.length})` : 'File',
      table(
        ['Name', 'Size', 'Path'],
        state.files.map((f) => [f.name, formatBytes(f.sizeBytes), f.path]),
        'file-table',
      ),
    ),
  );
  if (state.metadata.length) {
    sections.push(
      section(
        `Metadata (${state.metadata.length})`,
        table(
          ['Key', 'Type', 'Value'],
          state.metadata.map((m) => [m.source === 'file' ? m.key : `${m.key} (${m.source})`, m.type, m.text]),
          'metadata-table',
        ),
      ),
    );
  }
  return h('div', { class: 'overview' }, ...sections);
}

function section(title: string, body: HTMLElement): HTMLElement {
  return h('section', { class: 'section' }, h('h2', null, title), body);
}

function table(headers: string[], rows: string[][], testid: string): HTMLElement {
  return h(
    'table',
    { class: 'grid', 'data-testid': testid },
    h('thead', null, h('tr', null, ...headers.map((x) => h('th', null, x)))),
    h('tbody', null, ...rows.map((r) => h('tr', null, ...r.map((c) => h('td', null, c))))),
  );
}
