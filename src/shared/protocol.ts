/**
 * The messages between the extension and its webviews. One interface per message; each protocol
 * side is a map `{ requests, events }` for RpcEndpoint (rpc.ts). Plain data only: webview messages
 * are JSON-serialised, so NaN/±∞ travel as null. The worker ↔ host jobs, which speak the same
 * RpcEndpoint, are in src/kernel/jobs.ts (next to the kernel types they carry).
 */
import type { ErrorPayload } from './rpc';

// ---------------------------------------------------------------------------------------------
// Values shared by several messages

/** Counts for one dtype in the model's totals. */
export interface DtypeTotals {
  tensors: number;
  params: number;
  bytes: number;
}

/** Totals as in `quantlens inspect --json` (bits per weight: Σ bytes × 8 ÷ Σ elements, null for no elements). */
export interface ModelTotals {
  tensors: number;
  params: number;
  bytes: number;
  bitsPerWeight: number | null;
  byDtype: Record<string, DtypeTotals>;
}

/** A reader diagnostic as the user sees it. */
export interface DiagnosticView {
  severity: 'error' | 'warning' | 'info';
  code: string;
  message: string;
  tensor?: string;
  offset?: number;
  file?: string;
}

/** One metadata key, rendered to text on the host; long arrays are folded to their head. */
export interface MetadataEntry {
  key: string;
  /** `u32`, `string`, `array<string>`, … */
  type: string;
  /** The value as text (for folded arrays: the first items). */
  text: string;
  /** For arrays: the full length (the text shows at most the head). */
  length?: number;
  /** Where the key comes from: the checkpoint itself or a side file such as config.json. */
  source: 'file' | 'config.json';
}

/** One file the model spans. */
export interface ModelFile {
  path: string;
  name: string;
  sizeBytes: number;
}

/** The summary half of statistics (what the table's columns show). */
export interface StatsSummary {
  count: number;
  finite: number;
  nonFinite: number;
  zeros: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
  absMax: number | null;
  kurtosis: number | null;
  outlierShare: number | null;
}

/** Statistics of one tensor with its histogram over [min, max] of the finite values. */
export interface TensorStats extends StatsSummary {
  histogram: { min: number | null; max: number | null; counts: number[] };
}

/** Columns of the tensor table, for sorting. */
export type TensorColumn = 'index' | 'name' | 'dtype' | 'params' | 'bytes' | 'layer' | 'role' | 'absMax' | 'std' | 'kurtosis';

/** One row of the tensor table. */
export interface TensorRow {
  /** Position in the model's tensor list: the stable key of a row. */
  index: number;
  name: string;
  dtype: string;
  shape: number[];
  params: number;
  bytes: number;
  layer: number | null;
  role: string;
  /** Base name of the file holding the bytes (shards). */
  file: string;
  stats?: StatsSummary;
}

/** A node of the layer tree: one layer, or one group of tensors outside numbered layers. */
export interface LayerGroup {
  /** Stable key, used to ask for the group's rows (`TensorPageRequest.group`). */
  key: string;
  label: string;
  layer: number | null;
  tensors: number;
  params: number;
  bytes: number;
  bitsPerWeight: number | null;
  /** Per role inside the group. */
  roles: Array<{ role: string; tensors: number; params: number; bytes: number }>;
}

/** Settings the webview needs. */
export interface InspectorSettings {
  histogramBins: number;
}

// ---------------------------------------------------------------------------------------------
// Inspector webview → extension

/** Sent first by the webview; the reply is everything it needs to draw. */
export interface ReadyRequest {
  /** Webview bundle version, to catch a stale webview after an update. */
  version: number;
}

/** Asks for one page of the (filtered, sorted) tensor table. */
export interface TensorPageRequest {
  offset: number;
  limit: number;
  /** Substring of the name, or a regular expression when `regex` is set. */
  filter?: string;
  regex?: boolean;
  /** Only the tensors of this layer group. */
  group?: string;
  sort?: { column: TensorColumn; descending: boolean };
}

/** One page of the tensor table. */
export interface TensorPageReply {
  /** Rows matching the filter (the page is a window of these). */
  total: number;
  offset: number;
  rows: TensorRow[];
}

/** Asks for one tensor's statistics and histogram (computed in the worker pool, cached). */
export interface TensorDetailRequest {
  index: number;
  bins?: number;
}

/** One tensor's details. */
export interface TensorDetailReply {
  row: TensorRow;
  stats: TensorStats;
  /** For 2-D tensors: absmax per row and per column, downsampled to at most a few hundred points. */
  profile?: { rows: number[]; columns: number[] };
}

/** Starts "Analyze All Tensors"; resolves when done. Cancel by aborting the request. */
export interface AnalyzeAllRequest {
  bins?: number;
}

/** Result of an analysis run. */
export interface AnalyzeAllReply {
  analyzed: number;
  failed: number;
  cancelled: boolean;
  elapsedMs: number;
}

/** The webview asks to reopen the file with another editor (error panel buttons). */
export interface ReopenWithEvent {
  editor: 'text' | 'hex';
}

/** The webview asks to copy one tensor's statistics as JSON to the clipboard. */
export interface CopyStatsEvent {
  index: number;
}

/** The selected tensor changed (null: none). */
export interface SelectionChangedEvent {
  index: number | null;
}

/** The webview reports a failure of its own (shown in the extension's output). */
export interface WebviewErrorEvent {
  message: string;
}

// ---------------------------------------------------------------------------------------------
// Extension → inspector webview

/** The initial state: the model's overview, or the typed error that stopped it from opening. */
export type InspectorState = ModelState | OpenErrorState;

/** A model that opened. */
export interface ModelState {
  kind: 'model';
  fileName: string;
  format: string;
  files: ModelFile[];
  metadata: MetadataEntry[];
  totals: ModelTotals;
  diagnostics: DiagnosticView[];
  groups: LayerGroup[];
  settings: InspectorSettings;
  /** Milliseconds the reader took. */
  openMs: number;
}

/** A file that could not be read. */
export interface OpenErrorState {
  kind: 'error';
  fileName: string;
  error: ErrorPayload;
  /** Whether ms-vscode.hexeditor is installed (only then the "Reopen with Hex Editor" button shows). */
  hexEditorAvailable: boolean;
}

/** Statistics that arrived (Analyze All fills the table's columns with these). */
export interface StatsUpdateEvent {
  results: Array<{ index: number; stats: StatsSummary }>;
}

/** Progress of Analyze All. */
export interface AnalyzeProgressEvent {
  done: number;
  total: number;
  bytesDone: number;
  bytesTotal: number;
}

/** Analyze All ended (done, failed or cancelled), whoever started it. */
export interface AnalyzeFinishedEvent extends AnalyzeAllReply {}

/** Asks the webview to scroll to and select one tensor (command "Reveal Tensor"). */
export interface RevealTensorEvent {
  index: number;
}

/** What the inspector webview sends. */
export interface InspectorWebviewSide {
  requests: {
    ready: { request: ReadyRequest; reply: InspectorState };
    tensorPage: { request: TensorPageRequest; reply: TensorPageReply };
    tensorDetail: { request: TensorDetailRequest; reply: TensorDetailReply };
    analyzeAll: { request: AnalyzeAllRequest; reply: AnalyzeAllReply };
  };
  events: {
    reopenWith: ReopenWithEvent;
    copyStats: CopyStatsEvent;
    selectionChanged: SelectionChangedEvent;
    webviewError: WebviewErrorEvent;
  };
}

/** What the extension sends to the inspector webview. */
export interface InspectorHostSide {
  requests: Record<never, never>;
  events: {
    statsUpdate: StatsUpdateEvent;
    analyzeProgress: AnalyzeProgressEvent;
    analyzeFinished: AnalyzeFinishedEvent;
    revealTensor: RevealTensorEvent;
  };
}
