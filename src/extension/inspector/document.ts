import * as vscode from 'vscode';
import { basename, dirname, join } from 'node:path';
import { readExact } from '../../core/bytesource';
import { QuantLensError, toQuantLensError } from '../../core/errors';
import { MAX_JSON_SIDE_FILE_BYTES } from '../../core/limits';
import type { Diagnostic, ModelInfo } from '../../core/model';
import { openModel } from '../../core/readers';
import type { ErrorPayload } from '../../shared/rpc';
import { errorPayloadOf } from '../../shared/rpc';
import type { ModelFile, ModelState, TensorStats } from '../../shared/protocol';
import { Disposable } from '../dispose';
import { documentFiles, type DocumentFiles } from '../files';
import { inspectorSettings } from '../settings';
import { modelState, TensorIndex } from './tensor-index';

export type OpenResult =
  | { kind: 'model'; model: ModelInfo; index: TensorIndex; state: ModelState }
  | { kind: 'error'; error: ErrorPayload };

/**
 * One opened checkpoint, shared by every inspector panel showing it. Reading never throws out of
 * here: a file that cannot be read becomes an error result the webview shows.
 */
export class InspectorDocument extends Disposable implements vscode.CustomDocument {
  /** Statistics computed so far, by tensor index (Analyze All and the tensor view fill it). */
  readonly stats = new Map<number, TensorStats>();

  private constructor(
    readonly uri: vscode.Uri,
    readonly access: DocumentFiles,
    readonly result: OpenResult,
  ) {
    super();
  }

  static async open(uri: vscode.Uri, token: vscode.CancellationToken, log: vscode.LogOutputChannel): Promise<InspectorDocument> {
    const access = documentFiles(uri);
    const controller = new AbortController();
    const cancel = token.onCancellationRequested(() => controller.abort());
    const started = performance.now();
    try {
      const model = await openModel(access.path, { files: access.files, signal: controller.signal });
      model.diagnostics.push(...access.diagnostics);
      const config = await readConfigJson(access, model);
      const files = await Promise.all(
        model.files.map(async (path): Promise<ModelFile> => ({ path, name: basename(path), sizeBytes: await access.sizeOf(path).catch(() => 0) })),
      );
      const openMs = performance.now() - started;
      const index = new TensorIndex(model);
      const state = modelState(index, { fileName: basename(access.path), files, config, settings: inspectorSettings(), openMs });
      log.info(`opened ${access.path}: ${model.format}, ${model.tensors.length} tensors in ${openMs.toFixed(1)} ms`);
      return new InspectorDocument(uri, access, { kind: 'model', model, index, state });
    } catch (err) {
      const error = toQuantLensError(err);
      if (error.code === 'CANCELLED' && token.isCancellationRequested) throw new vscode.CancellationError();
      log.warn(`cannot open ${access.path}: ${error.describe()}`);
      return new InspectorDocument(uri, access, { kind: 'error', error: errorPayloadOf(error) });
    } finally {
      cancel.dispose();
    }
  }
}

/**
 * `config.json` beside the checkpoint (Hugging Face layout): what the model is. A broken one is a
 * warning, never a reason not to open the weights.
 */
async function readConfigJson(access: DocumentFiles, model: ModelInfo): Promise<Record<string, unknown> | undefined> {
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
