import type { StatsSummary, TensorColumn, TensorPageReply, TensorPageRequest, TensorRow } from '../../src/shared/protocol';
import type { InspectorRpc } from './api';
import { h } from './dom';
import { formatBytesShort, formatCount, formatShape, formatStat } from './format';

const ROW_HEIGHT = 24;
/** Rows per page asked of the host (the first one comes with the initial state). */
export const PAGE_ROWS = 200;
/** Rows drawn beyond the visible ones, above and below, so fast scrolling does not flash. */
const OVERSCAN = 20;

interface Column {
  id: TensorColumn | 'shape';
  label: string;
  width: string;
  numeric?: boolean;
  cell(row: TensorRow): string;
}

const statCell = (key: keyof StatsSummary) => (row: TensorRow) => formatStat(row.stats?.[key] as number | null | undefined);

const COLUMNS: Column[] = [
  { id: 'index', label: '#', width: '56px', numeric: true, cell: (r) => String(r.index) },
  { id: 'name', label: 'Name', width: 'minmax(160px, 3fr)', cell: (r) => r.name },
  { id: 'dtype', label: 'DType', width: '72px', cell: (r) => r.dtype },
  { id: 'shape', label: 'Shape', width: 'minmax(90px, 1fr)', cell: (r) => formatShape(r.shape) },
  { id: 'params', label: 'Params', width: '96px', numeric: true, cell: (r) => formatCount(r.params) },
  { id: 'bytes', label: 'Bytes', width: '84px', numeric: true, cell: (r) => formatBytesShort(r.bytes) },
  { id: 'layer', label: 'Layer', width: '56px', numeric: true, cell: (r) => (r.layer === null ? '' : String(r.layer)) },
  { id: 'role', label: 'Role', width: '76px', cell: (r) => r.role },
  { id: 'absMax', label: 'AbsMax', width: '80px', numeric: true, cell: statCell('absMax') },
  { id: 'std', label: 'Std', width: '80px', numeric: true, cell: statCell('std') },
  { id: 'kurtosis', label: 'Kurtosis', width: '80px', numeric: true, cell: statCell('kurtosis') },
];
const TEMPLATE = COLUMNS.map((c) => c.width).join(' ');

export interface TableQuery {
  filter: string;
  regex: boolean;
  group?: string;
  sort?: { column: TensorColumn; descending: boolean };
}

/**
 * The tensor table, virtualized: only the rows in view exist in the DOM, and rows come from the
 * host in pages of PAGE_ROWS on request, so 100,000 tensors scroll as smoothly as 10.
 */
export class TensorTable {
  readonly element: HTMLElement;
  private readonly scroller: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly header: HTMLElement;
  private readonly status: HTMLElement;
  private query: TableQuery = { filter: '', regex: false };
  private total = 0;
  private readonly pages = new Map<number, TensorRow[]>();
  private readonly requested = new Set<number>();
  /** Bumped on every query change, so replies to an older query are dropped. */
  private generation = 0;
  private selected: number | undefined;
  private frame = 0;

  constructor(
    private readonly rpc: InspectorRpc,
    private readonly onSelect: (row: TensorRow) => void,
  ) {
    this.header = h('div', { class: 'tt-row tt-header', role: 'row' });
    this.header.style.gridTemplateColumns = TEMPLATE;
    for (const c of COLUMNS) {
      const cell = h('div', { class: `tt-cell${c.numeric ? ' num' : ''}`, role: 'columnheader', 'data-column': c.id }, c.label);
      if (c.id !== 'shape') {
        cell.classList.add('sortable');
        cell.addEventListener('click', () => this.toggleSort(c.id as TensorColumn));
      }
      this.header.append(cell);
    }
    this.spacer = h('div', { class: 'tt-spacer' });
    this.scroller = h('div', { class: 'tt-scroll', role: 'rowgroup', tabindex: 0, 'data-testid': 'tensor-table' }, this.spacer);
    this.scroller.addEventListener('scroll', () => this.schedule());
    this.scroller.addEventListener('keydown', (e) => this.onKey(e));
    new ResizeObserver(() => this.schedule()).observe(this.scroller);
    this.status = h('div', { class: 'tt-status', 'data-testid': 'table-status' });
    this.element = h('div', { class: 'tensor-table', role: 'grid' }, this.header, this.scroller, this.status);
  }

  /** Shows the rows matching `query`; `firstPage`, when given, is its page 0 already fetched. */
  setQuery(query: TableQuery, firstPage?: TensorPageReply): void {
    this.query = query;
    this.generation++;
    this.pages.clear();
    this.requested.clear();
    this.scroller.scrollTop = 0;
    this.updateHeader();
    if (firstPage) {
      this.requested.add(0);
      this.showPage(0, firstPage);
    } else {
      void this.fetchPage(0);
    }
  }

  get currentQuery(): TableQuery {
    return this.query;
  }

  /** Statistics arrived: patch rows already loaded (later pages come with them from the host). */
  updateStats(results: Array<{ index: number; stats: StatsSummary }>): void {
    const byIndex = new Map(results.map((r) => [r.index, r.stats]));
    for (const rows of this.pages.values()) for (const row of rows) row.stats = byIndex.get(row.index) ?? row.stats;
    this.schedule();
  }

  /** Scrolls to a tensor by its index in the model (asks the host where it is in the current order); false when the query hides it. */
  async reveal(index: number): Promise<boolean> {
    const generation = this.generation;
    // The order is host-side; page through it to find the row (bounded by the table size).
    for (let offset = 0; offset < Math.max(this.total, 1); offset += 1000) {
      const page = await this.rpc.request('tensorPage', { ...this.request(offset), limit: 1000 });
      if (generation !== this.generation) return false;
      const at = page.rows.findIndex((r) => r.index === index);
      if (at >= 0) {
        const row = page.rows[at];
        this.selected = index;
        this.scroller.scrollTop = Math.max(0, (offset + at) * ROW_HEIGHT - this.scroller.clientHeight / 2);
        this.schedule();
        this.onSelect(row);
        return true;
      }
      if (page.rows.length < 1000) break;
    }
    return false;
  }

  private request(offset: number): TensorPageRequest {
    return { offset, limit: PAGE_ROWS, filter: this.query.filter, regex: this.query.regex, group: this.query.group, sort: this.query.sort };
  }

  private async fetchPage(page: number): Promise<void> {
    if (this.requested.has(page)) return;
    this.requested.add(page);
    const generation = this.generation;
    try {
      const reply = await this.rpc.request('tensorPage', this.request(page * PAGE_ROWS));
      if (generation !== this.generation) return;
      this.showPage(page, reply);
    } catch (err) {
      if (generation !== this.generation) return;
      this.requested.delete(page);
      this.status.textContent = (err as Error).message;
      this.status.classList.add('error');
      if (page === 0) {
        this.total = 0;
        this.spacer.style.height = '0px';
        this.schedule();
      }
    }
  }

  private showPage(page: number, reply: TensorPageReply): void {
    this.total = reply.total;
    this.pages.set(page, reply.rows);
    this.status.textContent = '';
    this.status.classList.remove('error');
    this.status.append(`${formatCount(reply.total)} tensor${reply.total === 1 ? '' : 's'}${this.query.filter || this.query.group ? ' match' : ''}`);
    this.spacer.style.height = `${this.total * ROW_HEIGHT}px`;
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  private render(): void {
    this.frame = 0;
    const top = this.scroller.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.total, Math.ceil((top + this.scroller.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    const rows: HTMLElement[] = [];
    for (let i = first; i < last; i++) {
      const page = Math.floor(i / PAGE_ROWS);
      const row = this.pages.get(page)?.[i - page * PAGE_ROWS];
      if (!row) {
        void this.fetchPage(page);
        continue;
      }
      rows.push(this.rowElement(row, i));
    }
    this.spacer.replaceChildren(...rows);
    if (rows.length && !this.element.dataset.firstRowsAt) this.element.dataset.firstRowsAt = String(Date.now());
  }

  private rowElement(row: TensorRow, position: number): HTMLElement {
    const el = h('div', {
      class: `tt-row${row.index === this.selected ? ' selected' : ''}`,
      role: 'row',
      'data-index': row.index,
      'aria-selected': row.index === this.selected ? 'true' : undefined,
    });
    el.style.gridTemplateColumns = TEMPLATE;
    el.style.transform = `translateY(${position * ROW_HEIGHT}px)`;
    for (const c of COLUMNS) {
      const text = c.cell(row);
      el.append(h('div', { class: `tt-cell${c.numeric ? ' num' : ''}`, role: 'gridcell', title: c.id === 'name' ? text : undefined }, text));
    }
    el.addEventListener('click', () => {
      this.selected = row.index;
      this.schedule();
      this.onSelect(row);
    });
    return el;
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    e.preventDefault();
    this.scroller.scrollTop += (e.key === 'ArrowDown' ? 1 : -1) * ROW_HEIGHT;
  }

  private toggleSort(column: TensorColumn): void {
    const current = this.query.sort;
    const sort = current?.column === column ? (current.descending ? undefined : { column, descending: true }) : { column, descending: false };
    this.setQuery({ ...this.query, sort });
  }

  private updateHeader(): void {
    for (const cell of this.header.children) {
      const id = (cell as HTMLElement).dataset.column;
      const sort = this.query.sort;
      cell.classList.toggle('sorted', sort?.column === id);
      cell.setAttribute('aria-sort', sort && sort.column === id ? (sort.descending ? 'descending' : 'ascending') : 'none');
    }
  }
}
