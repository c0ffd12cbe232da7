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
  /** Inspector: rows of the tensor table wanted in the reply (`ModelState.firstPage`). */
  firstPageRows?: number;
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

/** Asks for a window of the layer groups (a 100,000-tensor model may have tens of thousands). */
export interface LayerGroupsRequest {
  offset: number;
  limit: number;
}

/** A window of the layer groups. */
export interface LayerGroupsReply {
  total: number;
  offset: number;
  groups: LayerGroup[];
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

/**
 * Asks for the strip across layers of the tensors that play this tensor's part in every layer (the
 * same name but for the layer number: every `blk.N.ffn_down.weight`). Statistics missing from the
 * cache and the session are computed in the worker pool first (`roleStripProgress`); cancel by
 * aborting the request.
 */
export interface RoleStripRequest {
  index: number;
}

/** One layer's point of a strip (stats null: that tensor could not be read). */
export interface RoleStripPoint {
  index: number;
  layer: number;
  name: string;
  stats: StatsSummary | null;
}

/** The strip: empty for a tensor outside numbered layers. */
export interface RoleStripReply {
  /** The shared name with `{N}` for the layer, e.g. `blk.{N}.ffn_down.weight`. */
  pattern: string;
  role: string;
  /** By layer. */
  points: RoleStripPoint[];
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
  /** The user said no to the large-model confirmation: nothing ran. */
  declined?: boolean;
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
  settings: InspectorSettings;
  /** Milliseconds from the open request to this state: reading the file(s) and the cached statistics. */
  openMs: number;
  /** When the open request reached the extension (epoch ms; the e2e timings split the wait with it). */
  openStartedAt: number;
  /**
   * The table's first page in model order, when `ready` asked for one: drawn without another round
   * trip. The layer groups are built after it and come in pages (`layerGroups`).
   */
  firstPage?: TensorPageReply;
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

/** Statistics of a strip's tensors being computed (for the strip of tensor `index`). */
export interface RoleStripProgressEvent {
  index: number;
  done: number;
  total: number;
}

/** Asks the webview to scroll to and select one tensor (command "Reveal Tensor"). */
export interface RevealTensorEvent {
  index: number;
}

/** What the inspector webview sends. */
export interface InspectorWebviewSide {
  requests: {
    ready: { request: ReadyRequest; reply: InspectorState };
    tensorPage: { request: TensorPageRequest; reply: TensorPageReply };
    layerGroups: { request: LayerGroupsRequest; reply: LayerGroupsReply };
    tensorDetail: { request: TensorDetailRequest; reply: TensorDetailReply };
    roleStrip: { request: RoleStripRequest; reply: RoleStripReply };
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
    roleStripProgress: RoleStripProgressEvent;
    revealTensor: RevealTensorEvent;
  };
}

// ---------------------------------------------------------------------------------------------
// Plan panel (webview/plan) ↔ extension (src/extension/plan)

/** A budget: bits per weight (Σ bytes × 8 ÷ Σ params) or the output's tensor bytes. */
export type BudgetView = { kind: 'bitsPerWeight'; value: number } | { kind: 'bytes'; value: number };

/** A pin: tensors whose name matches `pattern` take `format` (or at least its bits). */
export interface PinView {
  pattern: string;
  format: string;
  atLeast: boolean;
}

/** One point of the trade-off curve. */
export interface FrontierPointView {
  bitsPerWeight: number;
  bytes: number;
  error: number;
}

/** The cells of the bit map: rows are layers (null: tensors outside layers), columns roles. */
export interface BitMapView {
  layers: Array<number | null>;
  roles: string[];
  /** cells[layer][role]: the planned format (the most bits when tensors of a cell differ), 'kept', or null (no tensor). */
  cells: Array<Array<string | null>>;
}

/** A plan as the panel draws it. */
export interface PlanView {
  budget: BudgetView & { bytes: number };
  bitsPerWeight: number;
  bytes: number;
  params: number;
  estimatedError: number;
  gap: number;
  errorUnit: string;
  frontier: FrontierPointView[];
  uniform: Array<FrontierPointView & { format: string }>;
  bitmap: BitMapView;
  /** Tensors per format in the plan ('kept' for tensors left as they are). */
  counts: Record<string, number>;
  warnings: string[];
}

/** Everything the plan panel shows. */
export interface PlanPanelState {
  fileName: string;
  /** What the plan writes: GGUF types or safetensors schemes. */
  target: 'gguf' | 'safetensors';
  mode: string;
  status: 'noSweep' | 'sweeping' | 'ready' | 'error';
  /** Progress of a running sweep (0–1) or the error that stopped the plan. */
  progress?: number;
  message?: string;
  /** Candidate formats, most bits first, with their nominal bits per weight (colours, pin choices). */
  formats: Array<{ name: string; bitsPerWeight: number }>;
  pins: PinView[];
  exclude: string[];
  plan?: PlanView;
  /** Whether *Quantize with this Plan…* can run (the quantize command exists for this target). */
  quantizeAvailable: boolean;
}

/** Sets the budget; the host replans and sends `planState`. */
export interface SetBudgetRequest {
  budget: BudgetView;
}

/** Sets pins and exclusions; the host replans and sends `planState`. */
export interface SetPinsRequest {
  pins: PinView[];
  exclude: string[];
}

/** A plan panel button that runs a host command. */
export interface PlanActionEvent {
  action: 'exportRecipe' | 'quantizeWithPlan' | 'runSweep';
}

/** What the plan webview sends. */
export interface PlanWebviewSide {
  requests: {
    ready: { request: ReadyRequest; reply: PlanPanelState };
    setBudget: { request: SetBudgetRequest; reply: void };
    setPins: { request: SetPinsRequest; reply: void };
  };
  events: {
    planAction: PlanActionEvent;
    webviewError: WebviewErrorEvent;
  };
}

/** What the extension sends to the plan webview. */
export interface PlanHostSide {
  requests: Record<never, never>;
  events: {
    planState: PlanPanelState;
  };
}

// ---------------------------------------------------------------------------------------------
// Comparison view (webview/compare) ↔ extension (src/extension/compare)

/** One side of a comparison. */
export interface CompareSideSummary {
  fileName: string;
  path: string;
  format: string;
  bytes: number;
  params: number;
  tensors: number;
  bitsPerWeight: number | null;
  dtypes: Array<{ dtype: string; tensors: number; params: number }>;
}

/** One matched tensor pair and, once measured, its error figures (null: equal sides or no energy). */
export interface CompareRow {
  index: number;
  name: string;
  nameB: string;
  dtypeA: string;
  dtypeB: string;
  layer: number | null;
  role: string;
  params: number;
  measured: boolean;
  relMse: number | null;
  sqnrDb: number | null;
  maxAbsErr: number | null;
  cosine: number | null;
  /** Set when this pair could not be compared. */
  error?: string;
}

/** The comparison's initial state (rows measured so far included). */
export interface CompareState {
  a: CompareSideSummary;
  b: CompareSideSummary;
  rows: CompareRow[];
  onlyInA: string[];
  onlyInB: string[];
  shapeMismatch: string[];
  progress: CompareProgressEvent;
  /** Set when both sides are ONNX models: their outputs on calibration inputs can be compared too. */
  outputs: CompareOutputsSetup | null;
}

/** What the comparison's Outputs section needs: the first model's inputs, and the last run. */
export interface CompareOutputsSetup {
  inputs: OnnxInputView[];
  /** symbols (and `<input>:<axis>`) to ask for before running; none: synthetic inputs run by themselves */
  symbolicDims: string[];
  defaultImage: ImageNormalisationView;
  defaultSamples: number;
  result: CompareOutputsView | null;
  progress: CompareOutputsProgressEvent | null;
}

/** Both models' outputs on the same calibration samples: SQNR, relative MSE, top-1 agreement per graph output. */
export interface CompareOutputsView extends OnnxEvaluationView {
  /** one line: samples and where they came from */
  summary: string;
  seconds: number;
}

/** Progress of the Outputs section's run. */
export interface CompareOutputsProgressEvent {
  stage: string;
  done: number;
  total: number;
  state: 'running' | 'done' | 'cancelled' | 'error';
  message?: string;
}

/** Rows whose figures arrived. */
export interface CompareRowsEvent {
  rows: CompareRow[];
}

/** Progress of the comparison. */
export interface CompareProgressEvent {
  done: number;
  total: number;
  state: 'running' | 'done' | 'cancelled' | 'error';
  message?: string;
  elapsedMs: number;
}

/** Asks for one pair's histograms (computed in the worker pool). */
export interface PairDetailRequest {
  index: number;
  bins: number;
}

/** Counts over [lo, hi] in equal bins (null bounds: no finite values). */
export interface RangeHistogramView {
  lo: number | null;
  hi: number | null;
  counts: number[];
}

/** Both sides' histograms over one shared range, and the histogram of the error b − a. */
export interface PairDetailReply {
  index: number;
  a: RangeHistogramView;
  b: RangeHistogramView;
  error: RangeHistogramView;
}

/** Opens one side's tensor in the inspector. */
export interface CompareRevealEvent {
  side: 'a' | 'b';
  name: string;
}

/** Stops the comparison (rows measured so far stay). */
export interface CancelCompareEvent {}

/** What the compare webview sends. */
export interface CompareWebviewSide {
  requests: {
    ready: { request: ReadyRequest; reply: CompareState };
    pairDetail: { request: PairDetailRequest; reply: PairDetailReply };
    /** a file or folder dialog for the Outputs section's calibration inputs */
    pickPath: { request: PickPathRequest; reply: PickPathReply };
    /** runs both ONNX models on the calibration inputs asked for */
    compareOutputs: { request: Extract<CalibrationRequest, { kind: 'onnx' }>; reply: CompareOutputsView };
  };
  events: {
    cancelCompare: CancelCompareEvent;
    cancelOutputs: Record<string, never>;
    revealTensor: CompareRevealEvent;
    webviewError: WebviewErrorEvent;
  };
}

/** What the extension sends to the compare webview. */
export interface CompareHostSide {
  requests: Record<never, never>;
  events: {
    compareRows: CompareRowsEvent;
    compareProgress: CompareProgressEvent;
    outputsProgress: CompareOutputsProgressEvent;
    /** a run the host started by itself (synthetic inputs once the weights are compared) finished */
    outputsResult: CompareOutputsView;
  };
}

// ---------------------------------------------------------------------------------------------
// Activations view (webview/activations) ↔ extension (src/extension/activations)

/** An LLM checkpoint (forward pass in QuantLens) or an ONNX model (ONNX Runtime). */
export type ActivationsModelKind = 'llm' | 'onnx';

/** One graph input of an ONNX model: dims are sizes, symbol names, or null (unnamed unknown). */
export interface OnnxInputView {
  name: string;
  type: string;
  dims: Array<number | string | null>;
}

/** Where an ONNX calibration's samples come from. */
export type OnnxSourceKind = 'images' | 'arrays' | 'audio' | 'synthetic';

/** How image files become input values: (v · scale − mean) / std per channel. */
export interface ImageNormalisationView {
  scale: number;
  mean: number[];
  std: number[];
  channelOrder: 'rgb' | 'bgr';
  resize: 'stretch' | 'pad';
}

/** What the user picked in the panel's calibration form. */
export type CalibrationRequest =
  | { kind: 'llm'; /** null: the bundled default text */ textPath: string | null; ctx: number; /** null: every whole chunk */ chunks: number | null }
  | {
      kind: 'onnx';
      source: OnnxSourceKind;
      /** a folder or a file (not used for synthetic) */
      path: string;
      image: ImageNormalisationView;
      /** synthetic: how many samples */
      samples: number;
      /** values of symbolic dims by symbol name (or `<input>:<axis>`) */
      dims: Record<string, number>;
    };

/** One activation site (LLM) or node output (ONNX) in execution order, for the strip and the list. */
export interface ActivationSiteView {
  id: string;
  label: string;
  /** LLM: the site kind; ONNX: the op type */
  op: string;
  absMax: number | null;
  std: number | null;
  kurtosis: number | null;
  outlierShare: number | null;
  /** outlier channels of the input the site's weights read (0 where there is no channel view) */
  outlierChannels: number;
  /** weights shown beside the activation (llama.cpp names, or ONNX value names) */
  weights: string[];
  hasChannels: boolean;
}

/** A finished calibration as the panel draws it. */
export interface ActivationsResultView {
  /** one line: samples or chunks, tokens, sources */
  summary: string;
  synthetic: boolean;
  sites: ActivationSiteView[];
  seconds: number;
  /** LLM: perplexity over the second half of each chunk (llama-imatrix's figure) */
  ppl: number | null;
  /** LLM: the importance matrix was handed to the sensitivity sidebar */
  imatrixWeights: number | null;
  notes: string[];
}

/** The panel's state, sent in reply to `ready` (the result survives the webview being hidden). */
export interface ActivationsState {
  fileName: string;
  path: string;
  kind: ActivationsModelKind;
  /** LLM: the bundled calibration text's name and size */
  defaultText: { name: string; bytes: number } | null;
  onnxInputs: OnnxInputView[];
  /** symbols (and `<input>:<axis>` for unnamed unknowns) the user must give, excluding the leading batch */
  symbolicDims: string[];
  defaultImage: ImageNormalisationView;
  running: boolean;
  result: ActivationsResultView | null;
  /** the last int8 QDQ model written from this panel, and its evaluation */
  quantized: { path: string; fileName: string } | null;
  evaluation: OnnxEvaluationView | null;
}

/** Progress of a calibration or an ONNX action. */
export interface ActivationsProgressEvent {
  stage: string;
  done: number;
  total: number;
  state: 'running' | 'done' | 'cancelled' | 'error';
  message?: string;
}

/** Asks the host to show a file or folder dialog. */
export interface PickPathRequest {
  what: 'text' | 'images' | 'arrays' | 'audio';
}

/** The picked path, or null when the dialog was dismissed. */
export interface PickPathReply {
  path: string | null;
}

/** Asks for one site's histograms: the activation's, one weight's (computed in the pool), the channel profile. */
export interface SiteDetailRequest {
  id: string;
  /** which of the site's weights (default: the first) */
  weight?: string;
}

/** Per-channel absmax of the input a site's weights read, with the outlier channels. */
export interface ChannelProfileView {
  input: string;
  axis: number;
  absMax: number[];
  median: number;
  /** the ratio to the median above which a channel counts as an outlier */
  ratio: number;
  outliers: number[];
}

export interface SiteDetailReply {
  id: string;
  activation: { label: string; stats: TensorStats };
  weight: { name: string; dtype: string; shape: number[]; stats: TensorStats } | null;
  /** why there is no weight histogram (no weight, or it could not be read) */
  weightNote: string | null;
  channels: ChannelProfileView | null;
}

/** Output agreement of the quantized ONNX model with the original on the calibration samples. */
export interface OnnxEvaluationView {
  candidate: string;
  samples: number;
  synthetic: boolean;
  outputs: Array<{ name: string; sqnrDb: number | null; relMse: number | null; top1Agreement: number | null; rows: number }>;
}

/**
 * What an action button asks for: ONNX: quantize (int8 QDQ), evaluate against the original, compare
 * the two models' weights, rank layers by output sensitivity (into the sidebar); LLM: run the
 * sensitivity sweep with the importance matrix just computed.
 */
export interface ActivationsActionRequest {
  action: 'quantize' | 'evaluate' | 'compare' | 'outputSensitivity' | 'imatrixSweep';
}

/** The panel's state after the action (null where nothing changed, e.g. a dismissed dialog). */
export interface ActivationsActionReply {
  quantized: ActivationsState['quantized'];
  evaluation: OnnxEvaluationView | null;
  message: string | null;
}

/** What the activations webview sends. */
export interface ActivationsWebviewSide {
  requests: {
    ready: { request: ReadyRequest; reply: ActivationsState };
    pickPath: { request: PickPathRequest; reply: PickPathReply };
    runCalibration: { request: CalibrationRequest; reply: ActivationsResultView };
    siteDetail: { request: SiteDetailRequest; reply: SiteDetailReply };
    action: { request: ActivationsActionRequest; reply: ActivationsActionReply };
  };
  events: {
    cancelCalibration: Record<string, never>;
    webviewError: WebviewErrorEvent;
  };
}

/** What the extension sends to the activations webview. */
export interface ActivationsHostSide {
  requests: Record<never, never>;
  events: {
    activationsProgress: ActivationsProgressEvent;
  };
}
