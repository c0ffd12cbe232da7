/**
 * Quantize any checkpoint into a GGUF file. From a GGUF input this is llama-quantize's job, done
 * so closely that the bytes are the same: its per-tensor type choice, tensor order, metadata (kept
 * in order, `general.quantization_version` and `general.file_type` appended, split keys dropped),
 * alignment and padding. From safetensors, ONNX or PyTorch inputs the tensor names are kept and
 * `general.architecture` is `quantlens`, for inspection and comparison.
 */
import { basename } from 'node:path';
import { readInto } from '../bytesource';
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import { declaredAlignment, withoutSplitKeys, writeGgufOutput, type GgufOutputTensor, type SplitLimits } from '../gguf/output';
import { ggufTensorByteLength } from '../gguf/write';
import { elementCount, metadataNumber, type Diagnostic, type MetadataValue, type ModelInfo, type TensorInfo } from '../model';
import { describeTensor } from '../names';
import { f32ToBf16, f32ToF16 } from '../quant/fp16';
import { checkFiniteSource, isGgufQuantType, quantizeRows } from '../quant/ggml-quantize';
import { openModel } from '../readers';
import { nodeFileAccess } from '../readers/node-files';
import type { FileAccess } from '../readers/types';
import { matrixShape, tensorRowsF32 } from '../tensor-rows';
import { readTensorBytes } from '../tensordata';
import { LLAMA_FTYPES, chooseLlamaTypes, ftypeForType, llamaTensorOrder, requiresImatrix, type LlamaFtype, type TypeChoice } from './llama-presets';

/** ggml's GGML_QNT_VERSION, written to `general.quantization_version`. */
const GGML_QNT_VERSION = 2;

export interface EncodeJob {
  model: ModelInfo;
  tensor: TensorInfo;
  /** The output type: a GGUF block type, or F32/F16/BF16. */
  target: DType;
  /** One weight per column, when an importance matrix has this tensor. */
  importance?: Float32Array;
  files: FileAccess;
  signal?: AbortSignal;
}

/** Converts a tensor to an output type, handing its bytes to `sink` in row order. */
export interface TensorEncoder {
  encode(job: EncodeJob, sink: (bytes: Uint8Array) => Promise<void>): Promise<void>;
}

/**
 * The plain TypeScript path: the reference (byte-exact, slow). The worker pool's encoder
 * (src/kernel/pool-encoder.ts) writes the same bytes in the kernel.
 */
export const twinTensorEncoder: TensorEncoder = {
  async encode(job, sink) {
    const { cols } = matrixShape(job.tensor.shape);
    for await (const chunk of tensorRowsF32(job.model, job.tensor, job.files, { signal: job.signal })) {
      if (isGgufQuantType(job.target)) checkFiniteSource(chunk.values, job.tensor.name, job.target, chunk.row * cols);
      await sink(encodeRows(job.target, chunk.values, chunk.rows, cols, job.importance));
    }
  },
};

export interface GgufQuantizeProgress {
  tensorsDone: number;
  tensors: number;
  bytesDone: number;
  bytesTotal: number;
  tensor: string;
}

export interface GgufQuantizeOptions {
  /** A llama-quantize preset (Q4_K_M, Q8_0, …) or a GGUF type (Q4_K means Q4_K_M, as llama-quantize reads it). */
  type: string;
  pure?: boolean;
  /** Importance weights (one per column) by llama.cpp tensor name. */
  importance?: (ggufName: string) => Float32Array | undefined;
  tensorTypes?: Array<{ pattern: RegExp; type: DType }>;
  outputTensorType?: DType;
  tokenEmbeddingType?: DType;
  /**
   * Quantize tensors that are already quantized (GGUF block types, GPTQ/AWQ/… layouts). Off by
   * default, as in llama-quantize (`--allow-requantize`): the second rounding compounds the first.
   * Tensors already at their target type are copied either way.
   */
  allowRequantize?: boolean;
  /** Where conversion runs: the kernel pool's encoder, or the TypeScript twin (the default). */
  encoder?: TensorEncoder;
  /** Write split files like llama-gguf-split. */
  split?: SplitLimits;
  files?: FileAccess;
  signal?: AbortSignal;
  onProgress?: (p: GgufQuantizeProgress) => void;
}

export interface GgufQuantizeResult {
  /** The written file, or the split files in order. */
  outputs: string[];
  ftype: LlamaFtype;
  tensors: Array<{ name: string; from: DType; to: DType; fallback?: string }>;
  bytes: number;
  /** Σ tensor bytes × 8 ÷ Σ elements of the output. */
  bitsPerWeight: number;
  diagnostics: Diagnostic[];
}

/** The types `quantize --type` accepts for GGUF output. */
export function isGgufTarget(type: string): boolean {
  return ftypeForType(type) !== undefined;
}

export async function quantizeToGguf(input: string, output: string, options: GgufQuantizeOptions): Promise<GgufQuantizeResult> {
  const files = options.files ?? nodeFileAccess;
  const ftype = ftypeForType(options.type);
  if (!ftype) throw new QuantLensError('USAGE', `unknown GGUF type or llama.cpp preset ${options.type}`);
  const model = await openModel(input, { signal: options.signal, files });
  const fromGguf = model.format === 'gguf';
  const ordered = fromGguf ? llamaTensorOrder(model.tensors) : model.tensors;
  // llama-quantize's rules speak llama.cpp names; other formats are matched through the name map.
  const ggufName = (t: TensorInfo) => (fromGguf ? t.name : (describeTensor(t.name).canonical ?? t.name));
  const choices = chooseLlamaTypes(
    ordered.map((t) => ({ name: ggufName(t), dtype: t.dtype, shape: t.shape })),
    {
      ftype,
      pure: options.pure,
      tensorTypes: options.tensorTypes,
      outputTensorType: options.outputTensorType,
      tokenEmbeddingType: options.tokenEmbeddingType,
      hasImatrix: options.importance !== undefined,
      nLayer: layerCount(model),
      nGqa: gqaFactor(model),
      arch: architecture(model),
      foreignNames: !fromGguf && ordered.every((t) => describeTensor(t.name).canonical === null),
    },
  );
  const diagnostics: Diagnostic[] = [];
  choices.forEach((c, i) => validateChoice(c, ordered[i], ftype, options, diagnostics));

  const metadata = outputMetadata(model, input, ftype);
  const alignment = declaredAlignment(metadata);
  const encoder = options.encoder ?? twinTensorEncoder;
  const bytesTotal = ordered.reduce((s, t) => s + t.byteLength, 0);
  let bytesDone = 0;
  const outTensors: GgufOutputTensor[] = ordered.map((t, i) => {
    const c = choices[i];
    return {
      name: t.name,
      dtype: c.type,
      shape: t.shape,
      write: async (sink) => {
        if (!c.quantize && t.encoding === 'raw') await copyRaw(model, t, files, sink, options.signal);
        else if (!c.quantize) await sink(await readTensorBytes(model, t, files));
        else {
          const weights = options.importance?.(ggufName(t));
          const importance = weights && weights.length === matrixShape(t.shape).cols ? weights : undefined;
          await encoder.encode({ model, tensor: t, target: c.type, importance, files, signal: options.signal }, sink);
        }
        bytesDone += t.byteLength;
      },
    };
  });
  const outputs = await writeGgufOutput({
    output,
    metadata,
    alignment,
    tensors: outTensors,
    split: options.split,
    signal: options.signal,
    onTensor: (i) => options.onProgress?.({ tensorsDone: i, tensors: ordered.length, bytesDone, bytesTotal, tensor: ordered[i].name }),
  });
  options.onProgress?.({ tensorsDone: ordered.length, tensors: ordered.length, bytesDone, bytesTotal, tensor: '' });
  const params = ordered.reduce((s, t) => s + elementCount(t.shape), 0);
  const bytes = outTensors.reduce((s, t) => s + ggufTensorByteLength(t.dtype, t.shape), 0);
  return {
    outputs,
    ftype,
    tensors: ordered.map((t, i) => ({ name: t.name, from: t.dtype, to: choices[i].type, fallback: choices[i].fallback?.reason })),
    bytes,
    bitsPerWeight: params > 0 ? (bytes * 8) / params : 0,
    diagnostics,
  };
}

function validateChoice(c: TypeChoice, t: TensorInfo, ftype: LlamaFtype, options: GgufQuantizeOptions, diagnostics: Diagnostic[]): void {
  if (c.fallback) {
    diagnostics.push({ severity: 'warning', code: 'TYPE_FALLBACK', tensor: t.name, message: `${c.fallback.reason}: written as ${c.type}` });
  }
  if (!c.quantize) return;
  const from = DTYPES[t.dtype].kind;
  if ((from === 'block' || from === 'layout') && !options.allowRequantize) {
    throw new QuantLensError(
      'REQUANTIZE',
      `${t.name} is already quantized (${t.dtype}); requantizing to ${c.type} compounds the error, so it is off unless asked for, as in llama-quantize: allow requantization (--allow-requantize) or start from the F32/F16/BF16 checkpoint`,
      { tensor: t.name },
    );
  }
  const plain = c.type === 'F32' || c.type === 'F16' || c.type === 'BF16';
  if (!plain && !isGgufQuantType(c.type)) {
    throw new QuantLensError('UNSUPPORTED', `${c.type} quantization is not implemented (the IQ1/IQ2/IQ3 quantizers are not built yet); choose another type`, { tensor: t.name });
  }
  if (!options.importance && requiresImatrix(c.name, c.type, ftype)) {
    throw new QuantLensError('USAGE', `${c.type} needs an importance matrix (--imatrix), as in llama-quantize`, { tensor: t.name });
  }
}

function encodeRows(type: DType, values: Float32Array, rows: number, cols: number, importance?: Float32Array): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'F16':
    case 'BF16': {
      const convert = type === 'F16' ? f32ToF16 : f32ToBf16;
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = convert(values[i]);
      return new Uint8Array(out.buffer);
    }
    default:
      if (!isGgufQuantType(type)) throw new QuantLensError('UNSUPPORTED', `${type} quantization is not implemented`);
      return quantizeRows(type, values, rows, cols, importance);
  }
}

const COPY_CHUNK = 16 << 20;

async function copyRaw(model: ModelInfo, t: TensorInfo, files: FileAccess, sink: (bytes: Uint8Array) => Promise<void>, signal?: AbortSignal): Promise<void> {
  if (!model.files.includes(t.file)) throw new QuantLensError('INTERNAL', `${t.file} is not a file of this model`, { tensor: t.name });
  const src = await files.open(t.file);
  try {
    const buf = new Uint8Array(Math.min(COPY_CHUNK, t.byteLength));
    for (let done = 0; done < t.byteLength; ) {
      throwIfAborted(signal);
      const n = Math.min(buf.length, t.byteLength - done);
      const part = buf.subarray(0, n);
      await readInto(src, t.byteOffset + done, part, t.name);
      await sink(part);
      done += n;
    }
  } finally {
    await src.close();
  }
}

function outputMetadata(model: ModelInfo, input: string, ftype: LlamaFtype): Record<string, MetadataValue> {
  const meta: Record<string, MetadataValue> =
    model.format === 'gguf'
      ? withoutSplitKeys(model.metadata)
      : {
          'general.architecture': { type: 'string', value: 'quantlens' },
          'general.name': { type: 'string', value: basename(input).replace(/\.(safetensors|onnx|pt|pth|bin|jit)$/, '') },
          'general.source.format': { type: 'string', value: model.format },
        };
  // llama.cpp's gguf_set_val_* removes a key and appends it: these two always end the list.
  delete meta['general.quantization_version'];
  delete meta['general.file_type'];
  meta['general.quantization_version'] = { type: 'u32', value: GGML_QNT_VERSION };
  meta['general.file_type'] = { type: 'u32', value: LLAMA_FTYPES[ftype] };
  return meta;
}

function architecture(model: ModelInfo): string | undefined {
  const a = model.metadata['general.architecture'];
  return a?.type === 'string' ? a.value : undefined;
}

/** `{arch}.block_count`, else the number of distinct layers the name map finds. */
function layerCount(model: ModelInfo): number {
  const arch = architecture(model);
  const n = arch ? metadataNumber(model.metadata, `${arch}.block_count`) : undefined;
  if (n !== undefined) return n;
  const layers = new Set<number>();
  for (const t of model.tensors) {
    const l = describeTensor(t.name).layer;
    if (l !== null) layers.add(l);
  }
  return layers.size;
}

function gqaFactor(model: ModelInfo): number {
  const arch = architecture(model);
  if (!arch) return 1;
  const heads = metadataNumber(model.metadata, `${arch}.attention.head_count`);
  const kv = metadataNumber(model.metadata, `${arch}.attention.head_count_kv`) ?? heads;
  return heads && kv ? heads / kv : 1;
}
