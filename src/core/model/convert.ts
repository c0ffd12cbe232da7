/**
 * Hugging Face (or .pt) Llama-family checkpoint → a GGUF llama.cpp runs, as llama.cpp's
 * convert_hf_to_gguf.py writes it: llama.cpp tensor names (the name map), q/k rows put back into the
 * rotary pair order, `llama.*` hyper-parameters, the SentencePiece vocabulary as `tokenizer.ggml.*`,
 * the chat template when tokenizer_config.json has one. Vectors stay F32; matrices become the chosen
 * type (F16 where its blocks do not fit a row, as the converter falls back).
 */
import { basename, dirname, join } from 'node:path';
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import { writeGgufOutput, type GgufOutputTensor } from '../gguf/output';
import type { MetadataValue } from '../model';
import { describeTensor, detectScheme, hfRowToMetaRow, invertRowMap, permuteRows } from '../names';
import { f32ToBf16, f32ToF16 } from '../quant/fp16';
import { isGgufQuantType, quantizeRows } from '../quant/ggml-quantize';
import { readExact } from '../bytesource';
import { nodeFileAccess } from '../readers/node-files';
import type { FileAccess } from '../readers/types';
import { matrixShape, tensorRowsF32 } from '../tensor-rows';
import { BpeTokenizer, bpeGgufMetadata } from './bpe';
import { LlamaModel } from './llama';

/** ggml's GGML_QNT_VERSION. */
const GGML_QNT_VERSION = 2;
/** llama_ftype of the all-one-type outputs (llama.h). */
const FILE_TYPE: Partial<Record<DType, number>> = { F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9, BF16: 32 };

export interface ConvertOptions {
  type: DType;
  files?: FileAccess;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

export interface ConvertResult {
  outputs: string[];
  tensors: Array<{ name: string; source: string; type: DType }>;
}

export function isConvertType(type: string): type is DType {
  return type === 'F32' || type === 'F16' || type === 'BF16' || (isGgufQuantType(type) && type in FILE_TYPE);
}

export async function convertToGguf(input: string, output: string, options: ConvertOptions): Promise<ConvertResult> {
  const files = options.files ?? nodeFileAccess;
  if (!isConvertType(options.type)) throw new QuantLensError('USAGE', `conversion writes F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1, not ${options.type}`);
  const model = await LlamaModel.load(input, { files, signal: options.signal, cacheWeights: false });
  if (!model.tokenizer) throw new QuantLensError('USAGE', `${input} has no tokenizer.model or tokenizer.json: llama.cpp needs the vocabulary in the GGUF`);
  const c = model.config;
  const info = model.info;
  const scheme = detectScheme(info.tensors.map((t) => t.name));
  const chatTemplate = await readChatTemplate(files, join(dirname(info.files[0]), 'tokenizer_config.json'));
  const tokenizer = model.tokenizer;
  const folderName = basename(dirname(info.files[0]));
  const md: Record<string, MetadataValue> = {
    'general.architecture': { type: 'string', value: 'llama' },
    'general.type': { type: 'string', value: 'model' },
    'general.name': { type: 'string', value: folderName.charAt(0).toUpperCase() + folderName.slice(1) },
    'llama.block_count': { type: 'u32', value: c.layers },
    'llama.context_length': { type: 'u32', value: c.contextLength },
    'llama.embedding_length': { type: 'u32', value: c.dim },
    'llama.feed_forward_length': { type: 'u32', value: c.ffnDim },
    'llama.attention.head_count': { type: 'u32', value: c.heads },
    'llama.attention.head_count_kv': { type: 'u32', value: c.kvHeads },
    'llama.rope.freq_base': { type: 'f32', value: c.ropeTheta },
    'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: c.normEps },
    'llama.attention.key_length': { type: 'u32', value: c.headDim },
    'llama.attention.value_length': { type: 'u32', value: c.headDim },
    'general.file_type': { type: 'u32', value: FILE_TYPE[options.type]! },
    'llama.vocab_size': { type: 'u32', value: c.vocabSize },
    'llama.rope.dimension_count': { type: 'u32', value: c.ropeDims },
    'general.quantization_version': { type: 'u32', value: GGML_QNT_VERSION },
  };
  if (tokenizer instanceof BpeTokenizer) {
    Object.assign(md, bpeGgufMetadata(tokenizer.vocab));
  } else {
    const v = tokenizer.vocab;
    Object.assign(md, {
      'tokenizer.ggml.model': { type: 'string', value: 'llama' },
      'tokenizer.ggml.pre': { type: 'string', value: 'default' },
      'tokenizer.ggml.tokens': { type: 'array', itemType: 'string', value: v.pieces },
      'tokenizer.ggml.scores': { type: 'array', itemType: 'f32', value: Array.from(v.scores) },
      'tokenizer.ggml.token_type': { type: 'array', itemType: 'i32', value: Array.from(v.types) },
      'tokenizer.ggml.bos_token_id': { type: 'u32', value: v.bosId },
      'tokenizer.ggml.eos_token_id': { type: 'u32', value: v.eosId },
      'tokenizer.ggml.add_bos_token': { type: 'bool', value: v.addBos },
      'tokenizer.ggml.add_eos_token': { type: 'bool', value: false },
    } satisfies Record<string, MetadataValue>);
    if (!v.addSpacePrefix) md['tokenizer.ggml.add_space_prefix'] = { type: 'bool', value: false };
  }
  if (chatTemplate !== null) md['tokenizer.chat_template'] = { type: 'string', value: chatTemplate };

  const chosen = info.tensors.filter((t) => {
    const d = describeTensor(t.name);
    return d.canonical !== null && /\.weight$/.test(d.canonical);
  });
  const result: ConvertResult = { outputs: [], tensors: [] };
  const tensors: GgufOutputTensor[] = chosen.map((t, i) => {
    const d = describeTensor(t.name);
    const { rows, cols } = matrixShape(t.shape);
    const isMatrix = t.shape.length === 2;
    const fits = cols % DTYPES[options.type].blockSize === 0;
    const type: DType = !isMatrix ? 'F32' : fits ? options.type : 'F16';
    const heads = d.role === 'attn_q' ? c.heads : d.role === 'attn_k' ? c.kvHeads : 0;
    const toMeta = scheme === 'hf' && heads > 0 ? invertRowMap(hfRowToMetaRow(rows, heads)) : null;
    result.tensors.push({ name: d.canonical!, source: t.name, type });
    return {
      name: d.canonical!,
      dtype: type,
      shape: t.shape,
      write: async (sink) => {
        throwIfAborted(options.signal);
        let values = new Float32Array(rows * cols);
        for await (const chunk of tensorRowsF32(info, t, files, { signal: options.signal })) values.set(chunk.values, chunk.row * cols);
        if (toMeta) values = permuteRows(values, rows, cols, toMeta);
        await sink(encode(type, values, rows, cols));
        options.onProgress?.(i + 1, chosen.length);
      },
    };
  });
  result.outputs = await writeGgufOutput({ output, metadata: md, alignment: 32, tensors, signal: options.signal });
  return result;
}

function encode(type: DType, values: Float32Array, rows: number, cols: number): Uint8Array {
  if (type === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (type === 'F16' || type === 'BF16') {
    const convert = type === 'F16' ? f32ToF16 : f32ToBf16;
    const out = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = convert(values[i]);
    return new Uint8Array(out.buffer);
  }
  if (!isGgufQuantType(type)) throw new QuantLensError('UNSUPPORTED', `${type} is not written by the converter`);
  return quantizeRows(type, values, rows, cols);
}

async function readChatTemplate(files: FileAccess, path: string): Promise<string | null> {
  if (!(await files.exists(path))) return null;
  const src = await files.open(path);
  try {
    const text = new TextDecoder().decode(await readExact(src, 0, Math.min(src.size, 16 << 20)));
    try {
      const json = JSON.parse(text) as { chat_template?: unknown };
      return typeof json.chat_template === 'string' ? json.chat_template : null;
    } catch {
      return null;
    }
  } finally {
    await src.close();
  }
}

/** Is `input` a Hugging Face folder of a Llama-family model without biases (config.json model_type llama or mistral) with a tokenizer.model or tokenizer.json? */
export async function isLlamaHfFolder(input: string, files: FileAccess = nodeFileAccess): Promise<boolean> {
  if (!(await files.isDirectory(input))) return false;
  const vocabulary = (await files.exists(join(input, 'tokenizer.model'))) || (await files.exists(join(input, 'tokenizer.json')));
  if (!vocabulary || !(await files.exists(join(input, 'config.json')))) return false;
  const src = await files.open(join(input, 'config.json'));
  try {
    const json = JSON.parse(new TextDecoder().decode(await readExact(src, 0, Math.min(src.size, 1 << 20)))) as { model_type?: unknown };
    return json.model_type === 'llama' || json.model_type === 'mistral';
  } catch {
    return false;
  } finally {
    await src.close();
  }
}

/**
 * For `quantize`: converts a Hugging Face Llama folder to an F32 GGUF beside `output` (a hidden temporary
 * the caller removes), so llama-quantize's rules then apply to llama.cpp names; null for other inputs.
 */
export async function convertForQuantize(input: string, output: string, signal?: AbortSignal): Promise<string | null> {
  if (!(await isLlamaHfFolder(input))) return null;
  const temp = join(dirname(output), `.${basename(output)}.f32-${process.pid}.gguf`);
  await convertToGguf(input, temp, { type: 'F32', signal });
  return temp;
}
