import * as vscode from 'vscode';
import { basename, dirname, join } from 'node:path';
import { readExact } from '../../core/bytesource';
import { QuantLensError, toQuantLensError } from '../../core/errors';
import { MAX_JSON_SIDE_FILE_BYTES } from '../../core/limits';
import type { Diagnostic, ModelInfo } from '../../core/model';
import { openModel } from '../../core/readers';
import type { ErrorPayload } from '../../shared/rpc';
import { errorPayloadOf } from '../../shared/rpc';
import type { AnalyzeAllReply, AnalyzeProgressEvent, ModelFile, ModelState, RoleStripPoint, RoleStripReply, StatsSummary, TensorStats } from '../../shared/protocol';
import { Disposable } from '../dispose';
import { documentFiles, type DocumentFiles } from '../files';
import { inspectorSettings, statsCacheEnabled } from '../settings';
import { StatsCache, stampFiles, type FileStamp } from './stats-cache';
import { summaryOf, type TensorStatsService } from './stats-service';
import { modelState, TensorIndex } from './tensor-index';

export type OpenResult =
  | { kind: 'model'; model: ModelInfo; index: TensorIndex; state: ModelState }
  | { kind: 'error'; error: ErrorPayload };

/**
 * One opened checkpoint, shared by every inspector panel showing it. Reading never throws out of
 * here: a file that cannot be read becomes an error result the webview shows.
 */
export class InspectorDocument extends Disposable implements vscode.CustomDocument {
  /** Full statistics (with histograms) computed in this session, by tensor index, for `statsBins` bins. */
  private readonly stats = new Map<number, TensorStats>();
  private statsBins = 0;
  private analysis: { controller: AbortController; done: Promise<AnalyzeAllReply> } | undefined;

  private readonly statsEmitter = this._register(new vscode.EventEmitter<Array<{ index: number; stats: StatsSummary }>>());
  /** Statistics arrived for some tensors (every panel of this document fills its table). */
  readonly onDidChangeStats = this.statsEmitter.event;
  private readonly progressEmitter = this._register(new vscode.EventEmitter<AnalyzeProgressEvent>());
  readonly onAnalyzeProgress = this.progressEmitter.event;
  private readonly finishedEmitter = this._register(new vscode.EventEmitter<AnalyzeAllReply>());
  readonly onAnalyzeFinished = this.finishedEmitter.event;

  private constructor(
    readonly uri: vscode.Uri,
    readonly access: DocumentFiles,
    readonly result: OpenResult,
    private readonly cache: { store: StatsCache; files: FileStamp[] } | undefined,
  ) {
    super();
    this._register({ dispose: () => this.analysis?.controller.abort() });
  }

  get analyzing(): boolean {
    return this.analysis !== undefined;
  }

  /** One tensor's statistics with histogram: from this session's results, else computed in the pool. */
  async tensorStats(service: TensorStatsService, index: number, bins: number, signal?: AbortSignal): Promise<TensorStats> {
    const { model, index: table } = this.modelResult();
    if (this.uri.scheme !== 'file') throw new QuantLensError('UNSUPPORTED', 'statistics need a file on the extension host (file: URI)');
    const tensor = model.tensors[index];
    if (!tensor) throw new QuantLensError('TENSOR_NOT_FOUND', `no tensor #${index}`);
    if (bins !== this.statsBins) {
      this.stats.clear();
      this.statsBins = bins;
    }
    let stats = this.stats.get(index);
    if (!stats) {
      stats = await service.stats(model, tensor, bins, signal);
      this.stats.set(index, stats);
      table.setStats(index, summaryOf(stats));
      this.statsEmitter.fire([{ index, stats: summaryOf(stats) }]);
    }
    return stats;
  }

  /**
   * The strip across layers of a tensor's role: statistics from the cache or this session, the
   * missing ones computed in the pool first (they fill the table too, and the cache).
   */
  async roleStrip(
    service: TensorStatsService,
    index: number,
    bins: number,
    signal: AbortSignal | undefined,
    onProgress: (done: number, total: number) => void,
  ): Promise<RoleStripReply> {
    const { model, index: table } = this.modelResult();
    await table.buildAll();
    const row = table.row(index);
    if (!row) throw new QuantLensError('TENSOR_NOT_FOUND', `no tensor #${index}`);
    const { pattern, indices } = table.sameRoleAcrossLayers(index);
    const missing = indices.filter((i) => !table.row(i)?.stats);
    if (missing.length > 0) {
      if (this.uri.scheme !== 'file') throw new QuantLensError('UNSUPPORTED', 'statistics need a file on the extension host (file: URI)');
      const results: Array<{ index: number; stats: StatsSummary }> = [];
      let reported = -1;
      try {
        await service.analyze(model, missing, bins, {
          signal: signal ?? new AbortController().signal,
          onResult: (i, stats) => {
            const summary = summaryOf(stats);
            table.setStats(i, summary);
            results.push({ index: i, stats: summary });
          },
          onError: () => {},
          onProgress: (done, total) => {
            if (done !== reported) onProgress((reported = done), total);
          },
        });
      } finally {
        if (results.length) this.statsEmitter.fire(results);
      }
      await this.saveCache(bins);
    }
    const points = indices.map((i): RoleStripPoint => {
      const r = table.row(i)!;
      return { index: i, layer: r.layer!, name: r.name, stats: r.stats ?? null };
    });
    return { pattern, role: row.role, points };
  }

  /**
   * Analyze All Tensors: statistics of every tensor without any yet, in the worker pool. One run per
   * document; a second call joins the running one. Results are cached per file when enabled.
   */
  analyzeAll(service: TensorStatsService, bins: number, signal?: AbortSignal): Promise<AnalyzeAllReply> {
    const { model, index: table } = this.modelResult();
    if (this.uri.scheme !== 'file') throw new QuantLensError('UNSUPPORTED', 'statistics need a file on the extension host (file: URI)');
    if (!this.analysis) {
      const controller = new AbortController();
      const done = this.runAnalysis(service, model, table, bins, controller.signal).finally(() => (this.analysis = undefined));
      this.analysis = { controller, done };
    }
    const run = this.analysis;
    signal?.addEventListener('abort', () => run.controller.abort(), { once: true });
    return run.done;
  }

  cancelAnalysis(): void {
    this.analysis?.controller.abort();
  }

  private async runAnalysis(service: TensorStatsService, model: ModelInfo, table: TensorIndex, bins: number, signal: AbortSignal): Promise<AnalyzeAllReply> {
    const started = performance.now();
    const todo = table.rows.filter((r) => !r.stats).map((r) => r.index);
    let batch: Array<{ index: number; stats: StatsSummary }> = [];
    let lastFlush = performance.now();
    const flush = (): void => {
      if (batch.length) this.statsEmitter.fire(batch);
      batch = [];
      lastFlush = performance.now();
    };
    let lastProgress = 0;
    let cancelled = false;
    let analyzed = 0;
    let failed = 0;
    try {
      await service.analyze(model, todo, bins, {
        signal,
        onResult: (index, stats) => {
          analyzed++;
          const summary = summaryOf(stats);
          table.setStats(index, summary);
          batch.push({ index, stats: summary });
          // batched so that 100,000 small tensors do not mean 100,000 messages
          if (performance.now() - lastFlush > 100) flush();
        },
        onError: () => void failed++,
        onProgress: (done, total, bytesDone, bytesTotal) => {
          // at most ten a second: each one is a message to the webview and to the notification
          const now = performance.now();
          if (now - lastProgress < 100 && done < total) return;
          lastProgress = now;
          this.progressEmitter.fire({ done, total, bytesDone, bytesTotal });
        },
      });
    } catch (err) {
      if (toQuantLensError(err).code !== 'CANCELLED') throw err;
      cancelled = true;
    } finally {
      flush();
    }
    await this.saveCache(bins);
    const reply = { analyzed, failed, cancelled, elapsedMs: performance.now() - started };
    this.finishedEmitter.fire(reply);
    return reply;
  }

  /** Writes every summary known so far to the per-file cache (when enabled; a failed write only costs the next open). */
  private async saveCache(bins: number): Promise<void> {
    if (!this.cache || !statsCacheEnabled() || this.result.kind !== 'model') return;
    const summaries = new Map<string, StatsSummary>();
    for (const row of this.result.index.rows) if (row.stats) summaries.set(row.name, row.stats);
    await this.cache.store.save(this.cache.files, bins, summaries).catch(() => {});
  }

  private modelResult(): Extract<OpenResult, { kind: 'model' }> {
    if (this.result.kind !== 'model') throw new QuantLensError('UNSUPPORTED', 'the model did not open');
    return this.result;
  }

  static async open(uri: vscode.Uri, token: vscode.CancellationToken, log: vscode.LogOutputChannel, cacheDir?: string): Promise<InspectorDocument> {
    const access = documentFiles(uri);
    const controller = new AbortController();
    const cancel = token.onCancellationRequested(() => controller.abort());
    const started = performance.now();
    const openStartedAt = Date.now();
    try {
      const model = await openModel(access.path, { files: access.files, signal: controller.signal });
      model.diagnostics.push(...access.diagnostics);
      const config = await readConfigJson(access, model);
      const files = await Promise.all(
        model.files.map(async (path): Promise<ModelFile> => ({ path, name: basename(path), sizeBytes: await access.sizeOf(path).catch(() => 0) })),
      );
      const settings = inspectorSettings();
      const cache = uri.scheme === 'file' && cacheDir ? { store: new StatsCache(cacheDir), files: await stampFiles(model.files) } : undefined;
      const cached = cache && statsCacheEnabled() ? await cache.store.load(cache.files, settings.histogramBins) : undefined;
      const index = new TensorIndex(model, cached);
      // reading and the cached statistics: everything before the webview can start. The table's
      // rows and groups are built after this, in slices, while the webview loads.
      const openMs = performance.now() - started;
      const state = modelState(index, { fileName: basename(access.path), files, config, settings, openMs, openStartedAt });
      log.info(`opened ${access.path}: ${model.format}, ${model.tensors.length} tensors in ${openMs.toFixed(1)} ms`);
      const built = performance.now();
      void index.buildAll().then(() => log.info(`tensor table of ${basename(access.path)}: ${index.groups.length} groups in ${(performance.now() - built).toFixed(1)} ms`));
      return new InspectorDocument(uri, access, { kind: 'model', model, index, state }, cache);
    } catch (err) {
      const error = toQuantLensError(err);
      if (error.code === 'CANCELLED' && token.isCancellationRequested) throw new vscode.CancellationError();
      log.warn(`cannot open ${access.path}: ${error.describe()}`);
      return new InspectorDocument(uri, access, { kind: 'error', error: errorPayloadOf(error) }, undefined);
    } finally {
      cancel.dispose();
    }
  }
}

/**
 * `config.json` beside a Hugging Face checkpoint (safetensors, pytorch_model.bin): what the model
 * is. A broken one is a warning, never a reason not to open the weights.
 */
async function readConfigJson(access: DocumentFiles, model: ModelInfo): Promise<Record<string, unknown> | undefined> {
  if (model.format !== 'safetensors' && model.format !== 'pytorch') return undefined;
  const path = join(dirname(model.files[0] ?? access.path), 'config.json');
  if (!(await access.files.exists(path))) return undefined;
  const warn = (message: string): undefined => {
    const d: Diagnostic = { severity: 'warning', code: 'CONFIG_JSON', message, file: path };
    model.diagnostics.push(d);
    return undefined;
  };
  try {
    const src = await access.files.open(path);
    try {
      if (src.size > MAX_JSON_SIDE_FILE_BYTES) return warn(`config.json has ${src.size} bytes, more than ${MAX_JSON_SIDE_FILE_BYTES}: not read`);
      const text = new TextDecoder('utf-8', { fatal: true }).decode(await readExact(src, 0, src.size));
      const value: unknown = JSON.parse(text);
      if (!value || typeof value !== 'object' || Array.isArray(value)) return warn('config.json is not a JSON object');
      return value as Record<string, unknown>;
    } finally {
      await src.close();
    }
  } catch (err) {
    return warn(`config.json could not be read: ${err instanceof QuantLensError ? err.message : (err as Error).message}`);
  }
}
