/**
 * What the inspector webview is shown of a model, built on the host: the overview, the layer groups
 * and pages of the tensor table. No `vscode` import, so it is unit-tested on plain Node.
 */
import { basename } from 'node:path';
import { QuantLensError } from '../../core/errors';
import { elementCount, type MetadataValue, type ModelInfo } from '../../core/model';
import { describeTensor } from '../../core/names';
import { summarizeModel } from '../../core/summary';
import type {
  LayerGroup,
  MetadataEntry,
  ModelState,
  StatsSummary,
  TensorColumn,
  TensorPageReply,
  TensorPageRequest,
  TensorRow,
  DiagnosticView,
  ModelFile,
  InspectorSettings,
  LayerGroupsReply,
  LayerGroupsRequest,
} from '../../shared/protocol';

/** Arrays longer than this are folded to their first METADATA_ARRAY_HEAD items. */
export const METADATA_ARRAY_FOLD = 16;
export const METADATA_ARRAY_HEAD = 8;
/** Long strings (chat templates, licences) are cut to this many characters in the overview. */
export const METADATA_TEXT_MAX = 400;
/** Largest page the webview may ask for. */
export const MAX_PAGE_ROWS = 1000;
/** Longest filter pattern accepted (a user-typed regex over every name). */
export const MAX_FILTER_LENGTH = 500;

const NON_LAYER_ROLES = new Set(['embed', 'output', 'norm']);

/** Rows built per slice when the table is built in the background (the host answers messages in between). */
const BUILD_SLICE_ROWS = 5000;

/**
 * The tensor table of one model. Rows are built in model order, only as far as needed: the first
 * page of a 100,000-tensor model needs 200 rows, not 100,000 names described. Everything else
 * (filters, sorts, groups) builds the rest, synchronously or slice by slice with `buildAll()`.
 * The last query's order is kept.
 */
export class TensorIndex {
  private readonly builtRows: TensorRow[] = [];
  /** Group key of each built row, by row index. */
  private readonly groupOf: string[] = [];
  private builtGroups: LayerGroup[] | undefined;
  private building: Promise<void> | undefined;
  /** Row indices by layer pattern (`sameRoleAcrossLayers`), built on first use. */
  private byPattern: Map<string, number[]> | undefined;
  private lastQuery?: { key: string; byStats: boolean; order: number[] };

  /** `cached`: statistics by tensor name (the per-file cache), attached to rows as they are built. */
  constructor(
    readonly model: ModelInfo,
    private readonly cached?: ReadonlyMap<string, StatsSummary>,
  ) {}

  /** Every row (builds what is missing). */
  get rows(): readonly TensorRow[] {
    this.buildRows(this.model.tensors.length);
    return this.builtRows;
  }

  /** The layer groups (builds every row first). */
  get groups(): readonly LayerGroup[] {
    this.builtGroups ??= buildGroups(this.rows, this.groupOf);
    return this.builtGroups;
  }

  /** One row, built on demand. */
  row(index: number): TensorRow | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.model.tensors.length) return undefined;
    this.buildRows(index + 1);
    return this.builtRows[index];
  }

  /** Builds every row and the groups in slices, yielding to the event loop between them. */
  buildAll(): Promise<void> {
    this.building ??= (async () => {
      const n = this.model.tensors.length;
      while (this.builtRows.length < n) {
        this.buildRows(Math.min(n, this.builtRows.length + BUILD_SLICE_ROWS));
        await new Promise((resolve) => setImmediate(resolve));
      }
      void this.groups;
    })();
    return this.building;
  }

  private buildRows(upTo: number): void {
    const { tensors } = this.model;
    for (let index = this.builtRows.length; index < upTo; index++) {
      const t = tensors[index];
      const d = describeTensor(t.name);
      const row: TensorRow = {
        index,
        name: t.name,
        dtype: t.dtype,
        shape: t.shape,
        params: elementCount(t.shape),
        bytes: t.byteLength,
        layer: d.layer,
        role: d.role,
        file: basename(t.file),
      };
      const stats = this.cached?.get(t.name);
      if (stats) row.stats = stats;
      this.builtRows.push(row);
      this.groupOf.push(groupKeyOf(row));
    }
  }

  /**
   * The tensors with this tensor's name but for the layer number (every layer's `ffn_down.weight`),
   * by layer; empty for a tensor outside numbered layers. Builds every row.
   */
  sameRoleAcrossLayers(index: number): { pattern: string; indices: number[] } {
    const row = this.row(index);
    const pattern = row ? layerPattern(row) : null;
    if (!row || pattern === null) return { pattern: '', indices: [] };
    if (!this.byPattern) {
      this.byPattern = new Map();
      for (const r of this.rows) {
        const p = layerPattern(r);
        if (p === null) continue;
        const list = this.byPattern.get(p);
        if (list) list.push(r.index);
        else this.byPattern.set(p, [r.index]);
      }
    }
    const rows = this.builtRows;
    const indices = [...(this.byPattern.get(pattern) ?? [])].sort((a, b) => rows[a].layer! - rows[b].layer! || a - b);
    return { pattern, indices };
  }

  /** Records statistics for a row (they fill the table's statistics columns and sort by them). */
  setStats(index: number, stats: StatsSummary): void {
    const row = this.row(index);
    if (!row) return;
    row.stats = stats;
    if (this.lastQuery?.byStats) this.lastQuery = undefined;
  }

  /** One page of the filtered, sorted table. The unfiltered table in model order builds only the rows it shows. */
  page(request: TensorPageRequest): TensorPageReply {
    const offset = clampInt(request.offset, 0, Number.MAX_SAFE_INTEGER);
    const limit = clampInt(request.limit, 0, MAX_PAGE_ROWS);
    const modelOrder = !request.filter && !request.group && (!request.sort || (request.sort.column === 'index' && !request.sort.descending));
    if (modelOrder) {
      const total = this.model.tensors.length;
      this.buildRows(Math.min(total, offset + limit));
      return { total, offset, rows: this.builtRows.slice(offset, offset + limit) };
    }
    const order = this.order(request);
    const rows = order.slice(offset, offset + limit).map((i) => this.builtRows[i]);
    return { total: order.length, offset, rows };
  }

  /** A window of the layer groups. */
  groupPage(request: LayerGroupsRequest): LayerGroupsReply {
    const offset = clampInt(request.offset, 0, Number.MAX_SAFE_INTEGER);
    const limit = clampInt(request.limit, 0, MAX_PAGE_ROWS);
    return { total: this.groups.length, offset, groups: this.groups.slice(offset, offset + limit) };
  }

  /** Row indices matching the request's filter and group, in its sort order. */
  order(request: Pick<TensorPageRequest, 'filter' | 'regex' | 'group' | 'sort'>): number[] {
    const key = JSON.stringify({ f: request.filter ?? '', r: !!request.regex, g: request.group ?? '', s: request.sort ?? null });
    if (this.lastQuery?.key === key) return this.lastQuery.order;
    const match = nameMatcher(request.filter ?? '', !!request.regex);
    const rows = this.rows;
    const order: number[] = [];
    for (let i = 0; i < rows.length; i++) {
      if (request.group && this.groupOf[i] !== request.group) continue;
      if (match && !match(rows[i].name)) continue;
      order.push(i);
    }
    if (request.sort && request.sort.column !== 'index') {
      const value = columnValue(request.sort.column);
      const sign = request.sort.descending ? -1 : 1;
      const values = new Map(order.map((i) => [i, value(rows[i])]));
      order.sort((a, b) => {
        const va = values.get(a)!;
        const vb = values.get(b)!;
        // unknown values (no layer, no statistics yet) stay at the end in both directions
        if (va === null || vb === null) return va === vb ? a - b : va === null ? 1 : -1;
        const c = compareValues(va, vb);
        return c !== 0 ? sign * c : a - b;
      });
    } else if (request.sort?.descending) {
      order.reverse();
    }
    const byStats = request.sort?.column === 'absMax' || request.sort?.column === 'std' || request.sort?.column === 'kurtosis';
    this.lastQuery = { key, byStats, order };
    return order;
  }
}

/** The initial state of an inspector for a model that opened (needs no row of the table: the groups come later, in pages). */
export function modelState(
  index: TensorIndex,
  options: { fileName: string; files: ModelFile[]; config?: Record<string, unknown>; settings: InspectorSettings; openMs: number; openStartedAt: number },
): ModelState {
  const { model } = index;
  const totals = summarizeModel(model);
  const byDtype: ModelState['totals']['byDtype'] = {};
  for (const [dtype, t] of Object.entries(totals.byDtype)) if (t) byDtype[dtype] = { ...t };
  const metadata = metadataEntries(model.metadata);
  if (options.config) metadata.push(...configEntries(options.config));
  return {
    kind: 'model',
    fileName: options.fileName,
    format: model.format,
    files: options.files,
    metadata,
    totals: { tensors: totals.tensors, params: totals.params, bytes: totals.bytes, bitsPerWeight: totals.bitsPerWeight, byDtype },
    diagnostics: model.diagnostics.map((d): DiagnosticView => ({ ...d })),
    settings: options.settings,
    openMs: options.openMs,
    openStartedAt: options.openStartedAt,
  };
}

/** Metadata as text rows; arrays longer than METADATA_ARRAY_FOLD show their head and length. */
export function metadataEntries(metadata: Record<string, MetadataValue>): MetadataEntry[] {
  return Object.entries(metadata).map(([key, v]): MetadataEntry => {
    if (v.type !== 'array') return { key, type: v.type, text: scalarText(v.value), source: 'file' };
    const items = v.value as Array<number | bigint | boolean | string | MetadataValue>;
    const shown = items.length > METADATA_ARRAY_FOLD ? items.slice(0, METADATA_ARRAY_HEAD) : items;
    const parts = shown.map((x) => (typeof x === 'object' ? `[${(x.value as unknown[]).length} items]` : scalarText(x, 60)));
    const more = shown.length < items.length ? `, … ${items.length - shown.length} more` : '';
    return { key, type: `array<${v.itemType}>`, text: `[${parts.join(', ')}${more}]`, length: items.length, source: 'file' };
  });
}

/** The keys of a Hugging Face config.json that say what the model is. */
const CONFIG_KEYS = [
  'architectures',
  'model_type',
  'hidden_size',
  'intermediate_size',
  'num_hidden_layers',
  'num_attention_heads',
  'num_key_value_heads',
  'vocab_size',
  'max_position_embeddings',
  'torch_dtype',
  'tie_word_embeddings',
  'quantization_config',
];

export function configEntries(config: Record<string, unknown>): MetadataEntry[] {
  const out: MetadataEntry[] = [];
  for (const key of CONFIG_KEYS) {
    if (!(key in config)) continue;
    const value = config[key];
    const type = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value === 'object' ? 'object' : typeof value;
    out.push({ key, type, text: truncate(typeof value === 'string' ? value : JSON.stringify(value)), source: 'config.json' });
  }
  return out;
}

function scalarText(x: number | bigint | boolean | string, max = METADATA_TEXT_MAX): string {
  if (typeof x === 'string') return truncate(JSON.stringify(x), max);
  return String(x);
}

function truncate(s: string, max = METADATA_TEXT_MAX): string {
  return s.length > max ? `${s.slice(0, max)}… (${s.length} characters)` : s;
}

/** The name with its layer number's segment as `{N}` (`model.layers.{N}.mlp.down_proj.weight`), null outside layers. */
export function layerPattern(row: Pick<TensorRow, 'name' | 'layer'>): string | null {
  if (row.layer === null) return null;
  const parts = row.name.split('.');
  const at = parts.indexOf(String(row.layer));
  if (at < 0) return null;
  parts[at] = '{N}';
  return parts.join('.');
}

/**
 * Layer groups: `layer:N` for numbered layers, `model` for embeddings/final norm/output, else the
 * name's first dotted part; names without one (ONNX's `onnx::Conv_123`, constants) share `other`.
 */
export function groupKeyOf(row: Pick<TensorRow, 'name' | 'layer' | 'role'>): string {
  if (row.layer !== null) return `layer:${row.layer}`;
  if (NON_LAYER_ROLES.has(row.role)) return 'model';
  const dot = row.name.indexOf('.');
  return dot > 0 ? `prefix:${row.name.slice(0, dot)}` : 'other';
}

function buildGroups(rows: readonly TensorRow[], groupOf: readonly string[]): LayerGroup[] {
  const groups = new Map<string, LayerGroup>();
  rows.forEach((row, i) => {
    const key = groupOf[i];
    let g = groups.get(key);
    if (!g) {
      const label =
        row.layer !== null ? `Layer ${row.layer}` : key === 'model' ? 'Model (embeddings, final norm, output)' : key === 'other' ? 'Other tensors' : key.slice('prefix:'.length);
      g = { key, label, layer: row.layer, tensors: 0, params: 0, bytes: 0, bitsPerWeight: null, roles: [] };
      groups.set(key, g);
    }
    g.tensors++;
    g.params += row.params;
    g.bytes += row.bytes;
    let r = g.roles.find((x) => x.role === row.role);
    if (!r) g.roles.push((r = { role: row.role, tensors: 0, params: 0, bytes: 0 }));
    r.tensors++;
    r.params += row.params;
    r.bytes += row.bytes;
  });
  for (const g of groups.values()) g.bitsPerWeight = g.params > 0 ? (g.bytes * 8) / g.params : null;
  // model-level tensors first, then layers in order, then the rest by name, `other` last
  const rank = (g: LayerGroup): number => (g.key === 'model' ? 0 : g.layer !== null ? 1 : g.key === 'other' ? 3 : 2);
  return [...groups.values()].sort((a, b) => rank(a) - rank(b) || (a.layer ?? 0) - (b.layer ?? 0) || a.label.localeCompare(b.label));
}

function nameMatcher(filter: string, regex: boolean): ((name: string) => boolean) | undefined {
  if (filter === '') return undefined;
  if (filter.length > MAX_FILTER_LENGTH) throw new QuantLensError('USAGE', `filter longer than ${MAX_FILTER_LENGTH} characters`);
  if (regex) {
    let re: RegExp;
    try {
      re = new RegExp(filter, 'i');
    } catch (err) {
      throw new QuantLensError('USAGE', `invalid regular expression: ${(err as Error).message}`);
    }
    return (name) => re.test(name);
  }
  const needle = filter.toLowerCase();
  return (name) => name.toLowerCase().includes(needle);
}

type SortValue = string | number | null;

function columnValue(column: TensorColumn): (row: TensorRow) => SortValue {
  switch (column) {
    case 'index':
      return (r) => r.index;
    case 'name':
      return (r) => r.name;
    case 'dtype':
      return (r) => r.dtype;
    case 'params':
      return (r) => r.params;
    case 'bytes':
      return (r) => r.bytes;
    case 'layer':
      return (r) => r.layer;
    case 'role':
      return (r) => r.role;
    case 'absMax':
    case 'std':
    case 'kurtosis':
      return (r) => r.stats?.[column] ?? null;
  }
}

function compareValues(a: string | number, b: string | number): number {
  if (a === b) return 0;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b), 'en', { numeric: true });
}

function clampInt(x: unknown, lo: number, hi: number): number {
  const n = typeof x === 'number' && Number.isFinite(x) ? Math.floor(x) : lo;
  return Math.min(hi, Math.max(lo, n));
}
