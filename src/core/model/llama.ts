/**
 * A Llama-family decoder (Llama, Mistral, Qwen2-style without biases: RMSNorm, rotary embedding,
 * grouped-query attention, SiLU-gated MLP, tied or separate output head) run from a Hugging Face
 * folder, a GGUF or a llama2.c/Meta `.pt`. Tensors are found through the name map; Hugging Face q/k
 * rows are put back into the Meta/GGUF rotary pair order, so every format gives the same logits.
 * Weights of any dtype or ggml type are read per layer and dequantized when a layer runs (or kept,
 * for small models).
 *
 * Two numeric modes: `exact` (f32 activations, f64 dot products) and `llama.cpp` (activations rounded
 * to each weight type's dot-product type as ggml's CPU backend does; keys and values stored as F16 as
 * in llama.cpp's default KV cache, attention as its CPU flash attention computes it).
 */
import { dirname, join } from 'node:path';
import { readExact } from '../bytesource';
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import { MODEL_MAX_DIMENSION, TOKENIZER_MODEL_MAX_BYTES } from '../limits';
import { metadataNumber, type ModelInfo, type TensorInfo } from '../model';
import { describeTensor, detectScheme, hfRowToMetaRow, invertRowMap, permuteRows, type NameScheme } from '../names';
import { dequantizeBlocks, isDequantizable } from '../quant/dequant';
import { openModel } from '../readers';
import { nodeFileAccess } from '../readers/node-files';
import type { FileAccess } from '../readers/types';
import { decodeToF32, isPlainDType } from '../stats/decode';
import { matrixShape, tensorRowsF32 } from '../tensor-rows';
import { readTensorBytes } from '../tensordata';
import { addInPlace, applyRope, causalAttention, causalAttentionF16, matmulF32, rmsNorm, ropeTables, swiglu } from './ops';
import { BpeTokenizer, bpeVocabularyFromGguf, hasGgufBpeVocabulary, vocabularyFromTokenizerJson } from './bpe';
import { hasGgufVocabulary, SpmTokenizer, vocabularyFromGguf, vocabularyFromSentencePiece } from './tokenizer';
import { intMatmul, isIntWeightType, roundRowFloat, roundRowQ8K, roundToF16, unpackIntWeight, vecDotType, type IntWeight } from './vec-dot';

/** SentencePiece (tokenizer.model, GGUF `llama`) or byte-level BPE (tokenizer.json, GGUF `gpt2`). */
export type ModelTokenizer = SpmTokenizer | BpeTokenizer;

export interface LlamaConfig {
  vocabSize: number;
  dim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffnDim: number;
  normEps: number;
  ropeTheta: number;
  /** Leading dimensions of each head that rotate (all of them for Llama). */
  ropeDims: number;
  contextLength: number;
}

export type NumericMode = 'exact' | 'llama.cpp';

/** The matrices of a block, by their llama.cpp names' role part. */
export const LINEAR_ROLES = ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up', 'ffn_down'] as const;
export type LinearRole = (typeof LINEAR_ROLES)[number];

/** A place in the network whose activations an observer sees. */
export type ActivationSite =
  /** The input of one or more linear layers (q/k/v share one input, gate/up another). */
  | { kind: 'linear-input'; layer: number | null; weights: string[] }
  /** A block's attention output (after the o projection), its MLP output (after down), the residual stream after the block. */
  | { kind: 'attn-out' | 'ffn-out' | 'residual'; layer: number };

export interface ActivationObserver {
  /** `values` is [rows, cols] f32, as the matrix product receives it (before rounding to a dot-product type). Do not keep it. */
  (site: ActivationSite, values: Float32Array, rows: number, cols: number): void;
}

export interface ForwardOptions {
  mode?: NumericMode;
  /** Logits are computed for rows from this one on (default 0); earlier rows only feed attention. */
  logitsFrom?: number;
  observer?: ActivationObserver;
  /** Runs the exact mode's products (e.g. in the kernel pool); plain TypeScript when absent. */
  backend?: MatmulBackend;
  /**
   * f32 values [rows, cols] (rows in Meta/GGUF order) used instead of a weight's own, by llama.cpp name
   * (`blk.3.attn_q.weight`, `token_embd.weight`, `output.weight`): e.g. a quantized-and-dequantized copy.
   */
  weightOverrides?: ReadonlyMap<string, Float32Array>;
  /**
   * Start at block `layer` from the residual stream [n, dim] entering it (what the `residual` site of
   * block layer − 1 saw; `layer` = the block count runs only the head): reuses an earlier run's prefix.
   */
  resumeAt?: { layer: number; residual: Float32Array };
  signal?: AbortSignal;
}

/** Where a weight's stored rows lie in a file, so a kernel worker can read them itself. */
export interface WeightSource {
  file: string;
  offset: number;
  length: number;
  /** When the file stores the rows in another order (Hugging Face q/k): used row r is stored row rowOrder[r]. */
  rowOrder?: Int32Array;
}

/** A linear layer's weight [rows = outputs, cols = inputs], rows in Meta/GGUF order, read on first use. */
export class LinearWeight {
  private bytes: Uint8Array | null = null;
  private f32Cache: Float32Array | null = null;
  private intCache: IntWeight | null = null;

  constructor(
    readonly name: string,
    readonly dtype: DType,
    readonly rows: number,
    readonly cols: number,
    /** Reads the stored bytes (plain or ggml blocks), rows already in Meta order; null when only f32 values exist. */
    private readonly loadBytes: (() => Promise<Uint8Array>) | null,
    f32?: Float32Array,
    /** Set when the file holds the rows raw. */
    readonly source?: WeightSource,
  ) {
    if (f32) this.f32Cache = f32;
  }

  private async stored(): Promise<Uint8Array> {
    this.bytes ??= await this.loadBytes!();
    return this.bytes;
  }

  async values(): Promise<Float32Array> {
    this.f32Cache ??= decodeBytes(this.dtype, await this.stored(), this.rows * this.cols, this.name);
    return this.f32Cache;
  }

  /** The integer form of a legacy block type, for the llama.cpp-compatible product. */
  async integers(): Promise<IntWeight | null> {
    if (!this.loadBytes || !isIntWeightType(this.dtype)) return null;
    this.intCache ??= unpackIntWeight(this.dtype, await this.stored(), this.rows, this.cols);
    return this.intCache;
  }
}

/** Computes y = x · wᵀ somewhere else (the kernel pool) in the exact mode. */
export interface MatmulBackend {
  linear(x: Float32Array, n: number, w: LinearWeight, signal?: AbortSignal): Promise<Float32Array>;
}

/** A weight with replacement f32 values, keeping its name and shape. */
function overrideWeight(w: LinearWeight, values: Float32Array): LinearWeight {
  if (values.length !== w.rows * w.cols) throw new QuantLensError('USAGE', `${values.length} override values for ${w.name} [${w.rows}, ${w.cols}]`, { tensor: w.name });
  return new LinearWeight(w.name, 'F32', w.rows, w.cols, null, values);
}

function decodeBytes(dtype: DType, bytes: Uint8Array, count: number, name: string): Float32Array {
  if (dtype === 'F32') {
    const copy = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
    return new Float32Array(copy.buffer, copy.byteOffset, count);
  }
  if (isPlainDType(dtype)) return decodeToF32(dtype, bytes);
  if (isDequantizable(dtype)) {
    const out = new Float32Array(count);
    dequantizeBlocks(dtype, bytes, out);
    return out;
  }
  throw new QuantLensError('UNSUPPORTED', `${dtype} weights cannot be decoded`, { tensor: name });
}

/** y = x · wᵀ for x [n, w.cols], in the given numeric mode, in plain TypeScript. */
export async function linear(x: Float32Array, n: number, w: LinearWeight, mode: NumericMode): Promise<Float32Array> {
  const out = new Float32Array(n * w.rows);
  if (mode === 'exact') {
    matmulF32(x, n, await w.values(), w.rows, w.cols, out);
    return out;
  }
  const ints = await w.integers();
  if (ints && w.cols % 32 === 0) {
    intMatmul(x, n, ints, out);
    return out;
  }
  const type = vecDotType(w.dtype);
  let xr = x;
  if (type === 'F16' || type === 'BF16') {
    xr = x.slice();
    roundRowFloat(xr, 0, xr.length, type);
  } else if (type === 'Q8_K' && w.cols % 256 === 0) {
    xr = new Float32Array(x.length);
    for (let t = 0; t < n; t++) roundRowQ8K(x, t * w.cols, w.cols, xr, t * w.cols);
  }
  matmulF32(xr, n, await w.values(), w.rows, w.cols, out);
  return out;
}

interface BlockWeights {
  attnNorm: Float32Array;
  ffnNorm: Float32Array;
  linear: Record<LinearRole, LinearWeight>;
}

export interface LoadOptions {
  files?: FileAccess;
  signal?: AbortSignal;
  /** Hyper-parameters that override (or, for a bare .pt, supply) what the files say. */
  config?: Partial<LlamaConfig>;
  /** Keep every layer's weights after first use (default: when the model is under 2 GiB). */
  cacheWeights?: boolean;
}

export class LlamaModel {
  private readonly blockCache = new Map<number, BlockWeights>();
  private embedCache: LinearWeight | null = null;
  private headCache: { norm: Float32Array; output: LinearWeight } | null = null;
  private rope: { cos: Float32Array; sin: Float32Array } | null = null;

  private constructor(
    readonly info: ModelInfo,
    readonly config: LlamaConfig,
    readonly tokenizer: ModelTokenizer | null,
    private readonly tensors: Map<string, TensorInfo>,
    private readonly scheme: NameScheme,
    private readonly files: FileAccess,
    private readonly cacheWeights: boolean,
  ) {}

  /** Opens a Hugging Face folder, a GGUF or a .pt and reads its hyper-parameters and tokenizer. */
  static async load(path: string, options: LoadOptions = {}): Promise<LlamaModel> {
    const files = options.files ?? nodeFileAccess;
    const info = await openModel(path, { files, signal: options.signal });
    const tensors = new Map<string, TensorInfo>();
    for (const t of info.tensors) {
      const canonical = describeTensor(t.name).canonical;
      if (canonical && !tensors.has(canonical)) tensors.set(canonical, t);
    }
    const scheme = detectScheme(info.tensors.map((t) => t.name)) ?? 'gguf';
    const folder = dirname(info.files[0]);
    const hfConfig = await readJsonIfPresent(files, join(folder, 'config.json'));
    const metaParams = info.format === 'pytorch' ? await readJsonIfPresent(files, join(folder, 'params.json')) : null;
    const config = resolveConfig(info, tensors, hfConfig, metaParams, options.config ?? {});
    let tokenizer: ModelTokenizer | null = null;
    if (info.format === 'gguf' && hasGgufVocabulary(info.metadata)) {
      tokenizer = new SpmTokenizer(vocabularyFromGguf(info.metadata, info.files[0]));
    } else if (info.format === 'gguf' && hasGgufBpeVocabulary(info.metadata)) {
      tokenizer = new BpeTokenizer(bpeVocabularyFromGguf(info.metadata, info.files[0]));
    } else if (info.format !== 'gguf' && !(await files.exists(join(folder, 'tokenizer.model'))) && (await files.exists(join(folder, 'tokenizer.json')))) {
      const json = await readJsonIfPresent(files, join(folder, 'tokenizer.json'));
      const tc = await readJsonIfPresent(files, join(folder, 'tokenizer_config.json'));
      tokenizer = new BpeTokenizer(vocabularyFromTokenizerJson(json, tc, { file: join(folder, 'tokenizer.json'), vocabSize: config.vocabSize }));
    } else if (await files.exists(join(folder, 'tokenizer.model'))) {
      const file = join(folder, 'tokenizer.model');
      const src = await files.open(file);
      try {
        if (src.size > TOKENIZER_MODEL_MAX_BYTES) throw new QuantLensError('LIMIT_EXCEEDED', `tokenizer.model of ${src.size} bytes`, { file });
        tokenizer = new SpmTokenizer(vocabularyFromSentencePiece(await readExact(src, 0, src.size), file));
      } finally {
        await src.close();
      }
      const tc = await readJsonIfPresent(files, join(folder, 'tokenizer_config.json'));
      if (tc && typeof tc.add_bos_token === 'boolean') tokenizer.vocab.addBos = tc.add_bos_token;
    }
    const totalBytes = info.tensors.reduce((s, t) => s + t.byteLength, 0);
    return new LlamaModel(info, config, tokenizer, tensors, scheme, files, options.cacheWeights ?? totalBytes < 2 ** 31);
  }

  /** The file's tensor behind a llama.cpp name (`blk.0.attn_q.weight`), if the model has it. */
  tensorInfo(canonical: string): TensorInfo | undefined {
    return this.tensors.get(canonical);
  }

  /**
   * A matrix weight by llama.cpp name (`blk.N.<role>.weight`, `token_embd.weight`, `output.weight`; the
   * embedding when the output is tied), rows in Meta/GGUF order: the values `weightOverrides` replace.
   */
  async matrix(canonical: string): Promise<LinearWeight> {
    const c = this.config;
    if (canonical === 'token_embd.weight') return (this.embedCache ??= await this.loadLinear(canonical, c.vocabSize, c.dim));
    if (canonical === 'output.weight') return (await this.head()).output;
    const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(canonical);
    const layer = m ? Number(m[1]) : -1;
    if (!m || layer >= c.layers || !(LINEAR_ROLES as readonly string[]).includes(m[2])) {
      throw new QuantLensError('TENSOR_NOT_FOUND', `${canonical} is not a matrix of this model`, { tensor: canonical });
    }
    return (await this.block(layer)).linear[m[2] as LinearRole];
  }

  /** The llama.cpp names of the linear weights of block `layer`. */
  linearNames(layer: number): Record<LinearRole, string> {
    return Object.fromEntries(LINEAR_ROLES.map((r) => [r, `blk.${layer}.${r}.weight`])) as Record<LinearRole, string>;
  }

  /** Logits [n - logitsFrom, vocab] of one sequence of tokens starting at position 0. */
  async forward(tokens: Int32Array, options: ForwardOptions = {}): Promise<Float32Array> {
    const mode = options.mode ?? 'exact';
    const c = this.config;
    const n = tokens.length;
    const from = options.logitsFrom ?? 0;
    const observe = options.observer;
    const backend = mode === 'exact' ? options.backend : undefined;
    const overrides = options.weightOverrides;
    const lin = (input: Float32Array, rows: number, stored: LinearWeight): Promise<Float32Array> => {
      const values = overrides?.get(stored.name);
      const w = values ? overrideWeight(stored, values) : stored;
      return backend ? backend.linear(input, rows, w, options.signal) : linear(input, rows, w, mode);
    };
    if (!this.rope || this.rope.cos.length < n * (c.ropeDims / 2)) this.rope = ropeTables(Math.max(n, 64), c.ropeDims, c.ropeTheta);
    const resume = options.resumeAt;
    if (resume && (!(resume.layer >= 0 && resume.layer <= c.layers) || resume.residual.length !== n * c.dim)) {
      throw new QuantLensError('USAGE', `cannot resume at block ${resume.layer} from ${resume.residual.length} values (${n} tokens of ${c.dim})`);
    }
    const x = resume ? resume.residual.slice() : await this.embed(tokens, overrides?.get('token_embd.weight'));
    const h = new Float32Array(n * c.dim);
    const attn = new Float32Array(n * c.heads * c.headDim);
    for (let l = resume?.layer ?? 0; l < c.layers; l++) {
      throwIfAborted(options.signal);
      const b = await this.block(l);
      const names = this.linearNames(l);
      rmsNorm(x, n, c.dim, b.attnNorm, c.normEps, h);
      observe?.({ kind: 'linear-input', layer: l, weights: [names.attn_q, names.attn_k, names.attn_v] }, h, n, c.dim);
      const q = await lin(h, n, b.linear.attn_q);
      const k = await lin(h, n, b.linear.attn_k);
      const v = await lin(h, n, b.linear.attn_v);
      applyRope(q, n, c.heads, c.headDim, c.ropeDims, this.rope);
      applyRope(k, n, c.kvHeads, c.headDim, c.ropeDims, this.rope);
      if (mode === 'llama.cpp') {
        // llama.cpp's KV cache holds F16 keys and values.
        for (let i = 0; i < k.length; i++) k[i] = roundToF16(k[i]);
        for (let i = 0; i < v.length; i++) v[i] = roundToF16(v[i]);
        causalAttentionF16(q, k, v, n, c.heads, c.kvHeads, c.headDim, attn);
      } else {
        causalAttention(q, k, v, n, c.heads, c.kvHeads, c.headDim, attn);
      }
      observe?.({ kind: 'linear-input', layer: l, weights: [names.attn_output] }, attn, n, c.heads * c.headDim);
      const o = await lin(attn, n, b.linear.attn_output);
      observe?.({ kind: 'attn-out', layer: l }, o, n, c.dim);
      addInPlace(x, o);
      rmsNorm(x, n, c.dim, b.ffnNorm, c.normEps, h);
      observe?.({ kind: 'linear-input', layer: l, weights: [names.ffn_gate, names.ffn_up] }, h, n, c.dim);
      const gate = await lin(h, n, b.linear.ffn_gate);
      const up = await lin(h, n, b.linear.ffn_up);
      swiglu(gate, up, gate);
      observe?.({ kind: 'linear-input', layer: l, weights: [names.ffn_down] }, gate, n, c.ffnDim);
      const down = await lin(gate, n, b.linear.ffn_down);
      observe?.({ kind: 'ffn-out', layer: l }, down, n, c.dim);
      addInPlace(x, down);
      observe?.({ kind: 'residual', layer: l }, x, n, c.dim);
      if (!this.cacheWeights) this.blockCache.delete(l);
    }
    const head = await this.head();
    const rows = n - from;
    const last = x.subarray(from * c.dim);
    const normed = new Float32Array(rows * c.dim);
    rmsNorm(last, rows, c.dim, head.norm, c.normEps, normed);
    observe?.({ kind: 'linear-input', layer: null, weights: [head.output.name] }, normed, rows, c.dim);
    return lin(normed, rows, head.output);
  }

  private async embed(tokens: Int32Array, override?: Float32Array): Promise<Float32Array> {
    const c = this.config;
    const x = new Float32Array(tokens.length * c.dim);
    for (const id of tokens) if (!(id >= 0 && id < c.vocabSize)) throw new QuantLensError('USAGE', `token id ${id} is outside the vocabulary of ${c.vocabSize}`);
    if (override) {
      for (let i = 0; i < tokens.length; i++) x.set(override.subarray(tokens[i] * c.dim, (tokens[i] + 1) * c.dim), i * c.dim);
      return x;
    }
    const t = this.tensor('token_embd.weight');
    if (!this.cacheWeights && t.encoding === 'raw' && (isPlainDType(t.dtype) || isDequantizable(t.dtype))) {
      // Streaming: read only the rows of the tokens at hand.
      const { blockSize, bytesPerBlock } = DTYPES[t.dtype];
      const rowBytes = (c.dim / blockSize) * bytesPerBlock;
      const src = await this.files.open(t.file);
      try {
        for (let i = 0; i < tokens.length; i++) {
          const row = await readExact(src, t.byteOffset + tokens[i] * rowBytes, rowBytes, t.name);
          x.set(decodeBytes(t.dtype, row, c.dim, t.name), i * c.dim);
        }
      } finally {
        await src.close();
      }
      return x;
    }
    this.embedCache ??= await this.loadLinear('token_embd.weight', c.vocabSize, c.dim);
    const table = await this.embedCache.values();
    for (let i = 0; i < tokens.length; i++) x.set(table.subarray(tokens[i] * c.dim, (tokens[i] + 1) * c.dim), i * c.dim);
    return x;
  }

  private async head(): Promise<{ norm: Float32Array; output: LinearWeight }> {
    if (this.headCache) return this.headCache;
    const c = this.config;
    const output = this.tensors.has('output.weight')
      ? await this.loadLinear('output.weight', c.vocabSize, c.dim)
      : (this.embedCache ?? (await this.loadLinear('token_embd.weight', c.vocabSize, c.dim)));
    const head = { norm: await this.loadVector('output_norm.weight', c.dim), output };
    if (this.cacheWeights) this.headCache = head;
    return head;
  }

  private async block(l: number): Promise<BlockWeights> {
    const hit = this.blockCache.get(l);
    if (hit) return hit;
    const c = this.config;
    const names = this.linearNames(l);
    const shapes: Record<LinearRole, [number, number]> = {
      attn_q: [c.heads * c.headDim, c.dim],
      attn_k: [c.kvHeads * c.headDim, c.dim],
      attn_v: [c.kvHeads * c.headDim, c.dim],
      attn_output: [c.dim, c.heads * c.headDim],
      ffn_gate: [c.ffnDim, c.dim],
      ffn_up: [c.ffnDim, c.dim],
      ffn_down: [c.dim, c.ffnDim],
    };
    const lin = {} as Record<LinearRole, LinearWeight>;
    for (const role of LINEAR_ROLES) lin[role] = await this.loadLinear(names[role], shapes[role][0], shapes[role][1]);
    const b: BlockWeights = {
      attnNorm: await this.loadVector(`blk.${l}.attn_norm.weight`, c.dim),
      ffnNorm: await this.loadVector(`blk.${l}.ffn_norm.weight`, c.dim),
      linear: lin,
    };
    this.blockCache.set(l, b);
    return b;
  }

  private tensor(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new QuantLensError('TENSOR_NOT_FOUND', `the model has no tensor for ${name}`, { tensor: name });
    return t;
  }

  private async loadVector(name: string, length: number): Promise<Float32Array> {
    const t = this.tensor(name);
    const values = await this.readF32(t);
    if (values.length !== length) throw new QuantLensError('INVALID_SHAPE', `${t.name} has ${values.length} values, expected ${length}`, { tensor: t.name });
    return values;
  }

  private async readF32(t: TensorInfo): Promise<Float32Array> {
    if (t.encoding !== 'quantized' && (isPlainDType(t.dtype) || isDequantizable(t.dtype))) {
      const { rows, cols } = matrixShape(t.shape);
      return decodeBytes(t.dtype, await readTensorBytes(this.info, t, this.files), rows * cols, t.name);
    }
    const { rows, cols } = matrixShape(t.shape);
    const out = new Float32Array(rows * cols);
    for await (const chunk of tensorRowsF32(this.info, t, this.files)) out.set(chunk.values, chunk.row * cols);
    return out;
  }

  private async loadLinear(name: string, rows: number, cols: number): Promise<LinearWeight> {
    const t = this.tensor(name);
    const shape = matrixShape(t.shape);
    if (shape.rows !== rows || shape.cols !== cols) {
      throw new QuantLensError('INVALID_SHAPE', `${t.name} is [${t.shape.join(', ')}], expected [${rows}, ${cols}]`, { tensor: t.name });
    }
    // Hugging Face stores q/k rows with the halves of each rotary pair grouped; put them back in pair order.
    const role = describeTensor(t.name).role;
    const heads = role === 'attn_q' ? this.config.heads : role === 'attn_k' ? this.config.kvHeads : 0;
    const toMeta = this.scheme === 'hf' && heads > 0 ? invertRowMap(hfRowToMetaRow(rows, heads)) : null;
    const plain = t.encoding !== 'quantized' && (isPlainDType(t.dtype) || isDequantizable(t.dtype));
    if (plain) {
      const traits = DTYPES[t.dtype];
      const load = async (): Promise<Uint8Array> => {
        const bytes = await readTensorBytes(this.info, t, this.files);
        return toMeta ? permuteRows(bytes, rows, (cols / traits.blockSize) * traits.bytesPerBlock, toMeta) : bytes;
      };
      const source = t.encoding === 'raw' ? { file: t.file, offset: t.byteOffset, length: t.byteLength, rowOrder: toMeta ?? undefined } : undefined;
      return new LinearWeight(name, t.dtype, rows, cols, load, undefined, source);
    }
    let values = await this.readF32(t);
    if (toMeta) values = permuteRows(values, rows, cols, toMeta);
    return new LinearWeight(name, 'F32', rows, cols, null, values);
  }
}

async function readJsonIfPresent(files: FileAccess, path: string): Promise<Record<string, unknown> | null> {
  if (!(await files.exists(path))) return null;
  const src = await files.open(path);
  try {
    if (src.size > TOKENIZER_MODEL_MAX_BYTES) throw new QuantLensError('LIMIT_EXCEEDED', `${path} has ${src.size} bytes`, { file: path });
    const text = new TextDecoder().decode(await readExact(src, 0, src.size));
    try {
      const v = JSON.parse(text) as unknown;
      return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
    } catch (err) {
      throw new QuantLensError('INVALID_JSON', `${path}: ${(err as Error).message}`, { file: path });
    }
  } finally {
    await src.close();
  }
}

function jsonNumber(obj: Record<string, unknown> | null, key: string): number | undefined {
  const v = obj?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Hyper-parameters from the GGUF keys, config.json, the .pt's model_args or params.json, then the tensor shapes. */
function resolveConfig(
  info: ModelInfo,
  tensors: Map<string, TensorInfo>,
  hf: Record<string, unknown> | null,
  meta: Record<string, unknown> | null,
  override: Partial<LlamaConfig>,
): LlamaConfig {
  const md = info.metadata;
  const archValue = md['general.architecture'];
  const arch = archValue?.type === 'string' ? archValue.value : 'llama';
  const g = (k: string): number | undefined => (info.format === 'gguf' ? metadataNumber(md, `${arch}.${k}`) : undefined);
  const pt = (k: string): number | undefined => metadataNumber(md, `model_args.${k}`) ?? jsonNumber(meta, k);
  const embed = tensors.get('token_embd.weight');
  if (!embed) throw new QuantLensError('TENSOR_NOT_FOUND', 'the model has no token embedding: not a Llama-family checkpoint', { file: info.files[0] });
  const [vocabFromShape, dimFromShape] = [embed.shape[0], embed.shape[embed.shape.length - 1]];
  let layersFromTensors = 0;
  while (tensors.has(`blk.${layersFromTensors}.attn_q.weight`)) layersFromTensors++;
  const gate = tensors.get('blk.0.ffn_gate.weight');
  const q = tensors.get('blk.0.attn_q.weight');
  const k = tensors.get('blk.0.attn_k.weight');
  const dim = override.dim ?? g('embedding_length') ?? jsonNumber(hf, 'hidden_size') ?? pt('dim') ?? dimFromShape;
  const heads = override.heads ?? g('attention.head_count') ?? jsonNumber(hf, 'num_attention_heads') ?? pt('n_heads');
  if (heads === undefined) {
    throw new QuantLensError('USAGE', `${info.files[0]} does not say how many attention heads the model has (no config.json, params.json or model_args): pass them`, { file: info.files[0] });
  }
  const headDim = override.headDim ?? g('attention.key_length') ?? jsonNumber(hf, 'head_dim') ?? (q ? q.shape[0] / heads : dim / heads);
  const kvHeads =
    override.kvHeads ?? g('attention.head_count_kv') ?? jsonNumber(hf, 'num_key_value_heads') ?? pt('n_kv_heads') ?? (k ? k.shape[0] / headDim : heads);
  const config: LlamaConfig = {
    vocabSize: override.vocabSize ?? vocabFromShape,
    dim,
    layers: override.layers ?? g('block_count') ?? jsonNumber(hf, 'num_hidden_layers') ?? pt('n_layers') ?? layersFromTensors,
    heads,
    kvHeads,
    headDim,
    ffnDim: override.ffnDim ?? g('feed_forward_length') ?? jsonNumber(hf, 'intermediate_size') ?? pt('hidden_dim') ?? gate?.shape[0] ?? 0,
    // ggml keeps eps as a float.
    normEps: Math.fround(override.normEps ?? g('attention.layer_norm_rms_epsilon') ?? jsonNumber(hf, 'rms_norm_eps') ?? pt('norm_eps') ?? 1e-5),
    ropeTheta: override.ropeTheta ?? g('rope.freq_base') ?? jsonNumber(hf, 'rope_theta') ?? pt('rope_theta') ?? 10000,
    ropeDims: override.ropeDims ?? g('rope.dimension_count') ?? headDim,
    contextLength: override.contextLength ?? g('context_length') ?? jsonNumber(hf, 'max_position_embeddings') ?? pt('max_seq_len') ?? 2048,
  };
  checkConfig(config, info.files[0]);
  return config;
}

function checkConfig(c: LlamaConfig, file: string): void {
  for (const [key, v] of Object.entries(c)) {
    if (key === 'normEps' || key === 'ropeTheta') {
      if (!(v > 0 && Number.isFinite(v))) throw new QuantLensError('INVALID_HEADER', `${key} = ${v} is not a positive number`, { file });
      continue;
    }
    if (!Number.isInteger(v) || v <= 0 || v > MODEL_MAX_DIMENSION) throw new QuantLensError('INVALID_HEADER', `${key} = ${v} is not a dimension QuantLens runs`, { file });
  }
  if (c.heads % c.kvHeads !== 0) throw new QuantLensError('INVALID_HEADER', `${c.heads} heads do not share ${c.kvHeads} key/value heads evenly`, { file });
  if (c.ropeDims > c.headDim || c.ropeDims % 2 !== 0) throw new QuantLensError('INVALID_HEADER', `rotary dimensions ${c.ropeDims} do not fit heads of ${c.headDim}`, { file });
}
