/**
 * Sensitivity sweeps from a path: opens the model (and the importance matrix), answers from the
 * cache when the files and settings are unchanged, otherwise sweeps and stores the result.
 */
import { readImportanceMatrix } from '../imatrix';
import { openModel } from '../readers';
import { cacheKeyOf, fileIdentity, readCachedSensitivity, writeCachedSensitivity } from './cache';
import { sweepSensitivity, sweepSettings, type SweepOptions } from './sweep';
import type { SensitivityResult } from './types';

export interface SensitivityRunOptions extends Omit<SweepOptions, 'imatrix'> {
  /** A llama.cpp importance matrix (GGUF or legacy .dat): switches to `imatrix` mode. */
  imatrixPath?: string;
  /** Folder for cached results; no caching without it. */
  cacheDir?: string;
}

/** Sweeps the checkpoint at `path` (file, sharded index or folder). A cache hit replays its tensors through `onTensor`. */
export async function runSensitivity(path: string, options: SensitivityRunOptions = {}): Promise<SensitivityResult & { cached: boolean }> {
  const model = await openModel(path, { signal: options.signal, files: options.files });
  const imatrix = options.imatrixPath ? await readImportanceMatrix(options.imatrixPath, { signal: options.signal, files: options.files }) : null;
  const imatrixIdentity = options.imatrixPath ? await fileIdentity(options.imatrixPath) : null;
  const sweep: SweepOptions = { ...options, imatrix };
  const key = options.cacheDir ? await cacheKeyOf(model.files, sweepSettings(sweep, imatrixIdentity)) : null;
  if (options.cacheDir && key) {
    const hit = await readCachedSensitivity(options.cacheDir, key);
    if (hit) {
      for (const t of hit.tensors) if (t.quantizable) options.onTensor?.(t);
      return { ...hit, cached: true };
    }
  }
  const result = await sweepSensitivity(model, sweep, imatrixIdentity);
  if (options.cacheDir && key) await writeCachedSensitivity(options.cacheDir, key, result);
  return { ...result, cached: false };
}

export type { SensitivityResult, TensorSensitivity, FormatError, GroupSensitivity, SensitivityMode } from './types';
export { sweepSensitivity, DEFAULT_SAMPLE_ELEMENTS, type SweepOptions, type SweepProgress } from './sweep';
