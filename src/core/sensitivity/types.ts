import type { DType } from '../dtypes';
import type { Role } from '../names';
import type { QuantTarget } from './formats';

/**
 * What a sweep measures. `weights`: the weights' own error. `imatrix`: each column's squared error
 * weighted by its mean squared activation, and the formats quantize with those importance weights.
 * `kld` and `outputs` are measured from activations of the model on calibration text (per tensor: the
 * output distribution's KL divergence with only that tensor quantized, or the relative error of the
 * layer's outputs); they fill `FormatError.kld` / `outputRelMse`.
 */
export type SensitivityMode = 'weights' | 'imatrix' | 'kld' | 'outputs';

export interface FormatError {
  /** ‖W − Q(W)‖² / ‖W‖², importance-weighted per column in `imatrix` mode. */
  relMse: number;
  /** −10·log10(relMse); null when lossless. */
  sqnrDb: number | null;
  /** Largest |W − Q(W)| over the rows measured. */
  maxAbsErr: number;
  /** Half-width of the 95% interval of `relMse` when it was estimated from sampled rows; 0 when every row was measured. */
  relMseBound: number;
  /** `kld` mode: mean KL divergence of the model's next-token distribution with only this tensor quantized. */
  kld?: number;
  /** `outputs` mode: relative MSE of this tensor's matmul outputs on calibration activations. */
  outputRelMse?: number;
}

/** A format's errors per name; null = the format does not apply to this tensor (or is not a candidate for it). */
export type FormatErrors = Record<string, FormatError | null>;

export interface TensorSensitivity {
  name: string;
  params: number;
  layer: number | null;
  role: Role;
  shape: number[];
  dtype: DType;
  /** Bytes the tensor takes when left as it is. */
  keptBytes: number;
  /** Whether any candidate applies (≥ 2 dims and a row length some format fits). */
  quantizable: boolean;
  /** Rows measured (all of them in a full sweep). */
  sampledRows: number;
  rows: number;
  errors: FormatErrors;
}

/** Errors of a group of tensors (one layer and role, a whole layer, or one role), weighted by parameters. */
export interface GroupSensitivity {
  layer: number | null;
  role: Role | 'all';
  params: number;
  errors: FormatErrors;
}

export interface SensitivitySettings {
  target: QuantTarget;
  types: string[];
  mode: SensitivityMode;
  /** Values measured per tensor (whole rows, at least 16 of them); null = every row. */
  sampleElements: number | null;
  /** Seed of the row sample (the sample is a function of the tensor name, the seed and the shape only). */
  seed: number;
  /** Identity of the importance matrix (path, size, mtime), part of the cache key. */
  imatrix: { path: string; size: number; mtimeMs: number } | null;
  /** `kld` mode: how the KL divergences were measured. */
  kld?: KldSettings;
}

/** What quantizing together means in a `kld` sweep: each tensor alone, each layer's tensors, or one role across every layer. */
export type KldUnit = 'tensor' | 'layer' | 'role';

export interface KldSettings {
  by: KldUnit;
  ctx: number;
  /** Chunks of the calibration text evaluated (llama-perplexity chunking). */
  chunks: number;
  numericMode: 'exact' | 'llama.cpp';
  /** sha256 of the calibration text. */
  textHash: string;
}

/** One unit of a `kld` sweep quantized to one format at a time, as measured. */
export interface KldGroup {
  /** The layer for units by layer, else null; the role for units by role or tensor, else 'all'. */
  layer: number | null;
  role: Role | 'all';
  tensors: string[];
  /** Mean KL divergence against the original model per format; null where the format applies to none of the tensors. */
  kld: Record<string, number | null>;
  /** Perplexity with the unit quantized, per format. */
  ppl: Record<string, number | null>;
}

/** How well an estimate's ranking of the units agrees with the measured KL divergence. */
export interface RankAgreement {
  estimate: 'weights' | 'imatrix';
  /** A format, or 'all': every (unit, format) pair pooled (inflated by the formats' own spread). */
  format: string;
  /** Units compared. */
  units: number;
  /** Spearman's rank correlation (average ranks for ties); null with fewer than 3 units or a constant side. */
  spearman: number | null;
}

export interface SensitivityResult {
  mode: SensitivityMode;
  target: QuantTarget;
  types: string[];
  settings: SensitivitySettings;
  tensors: TensorSensitivity[];
  /** One entry per (layer, role). */
  layers: GroupSensitivity[];
  /** One entry per layer (role 'all'), and one for the tensors outside layers (layer null). */
  byLayer: GroupSensitivity[];
  /** One entry per role across layers (layer null). */
  byRole: GroupSensitivity[];
  /** Tensors the importance matrix had no entry for (measured unweighted). */
  imatrixMissing: string[];
  seconds: number;
  /** `kld` mode: each unit's measurements (per tensor they are also in `tensors[].errors[].kld`). */
  kldGroups?: KldGroup[];
  /** `kld` mode: perplexity of the unquantized model on the calibration text. */
  basePpl?: number;
  /** `kld` mode, when compared: the `weights`/`imatrix` estimates' rank agreement with the measured KLD. */
  rankCorrelation?: RankAgreement[];
}
