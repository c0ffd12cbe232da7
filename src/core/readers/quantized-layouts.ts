/**
 * Quantized safetensors layouts read back as one logical tensor per weight: the packed values,
 * scales, zero points and quant state of a weight become one TensorInfo named `<module>.weight`
 * with the original [out, in] shape, a layout dtype (CT_INT, CT_FP8, GPTQ, AWQ, BNB_NF4, BNB_FP4,
 * BNB_INT8), encoding `quantized` and its parts in `quantized.parts`. Its byteLength is the sum of
 * the parts, so totals count out × in parameters and every stored byte.
 *
 * Layouts (each as its reference code writes and loads it):
 * - compressed-tensors (neuralmagic/compressed-tensors, compressors/quantized_compressors):
 *   `pack-quantized`: `weight_packed` int32 [out, ⌈in / (32 div b)⌉], value + 2^(b−1) of column c at
 *   bits b · (c mod (32 div b)) of word c div (32 div b); `weight_scale` [out, groups] ([1] per tensor);
 *   asymmetric `weight_zero_point` packed the same way along the output dimension (int32
 *   [⌈out / (32 div b)⌉, groups]), or int8 [1] per tensor; `weight_shape` int64 [2]; optional
 *   `weight_g_idx`. x = (q − z) · s. `int-quantized`/`naive-quantized`: `weight` int8 and the same
 *   scales; `float-quantized`: `weight` FP8 with `weight_scale`.
 * - GPTQ (AutoGPTQ qlinear pack / GPTQModel): `qweight` int32 [in · b / 32, out], the values of one
 *   output column a little-endian bit stream along the input dimension (3-bit values straddle words);
 *   `qzeros` int32 [groups, out · b / 32] likewise along the output dimension, stored minus one
 *   (`checkpoint_format` gptq_v2: as is); `scales` [groups, out]; `g_idx` int32 [in].
 *   x = (q − (z + 1)) · s.
 * - AWQ GEMM (AutoAWQ): `qweight` int32 [in, out / 8], eight outputs per word with output 8k + o at
 *   nibble AWQ_ORDER.indexOf(o), AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]; `qzeros` [groups, out / 8]
 *   alike; `scales` [groups, out]. x = (q − z) · s.
 * - bitsandbytes 4-bit (QuantState.as_dict(packed=True)): `weight` uint8, two codes per byte, the first
 *   in the high nibble, over the flattened tensor; `weight.absmax` f32 per block (uint8 when double
 *   quantized, with `weight.nested_absmax`, `weight.nested_quant_map` and the JSON's nested_offset);
 *   `weight.quant_map` the 16 levels; `weight.quant_state.bitsandbytes__nf4|fp4` the JSON of the rest.
 *   LLM.int8: `weight` int8 with `SCB` f32 per row, x = q · SCB / 127.
 *
 * A layout whose parts do not fit together stays as separate tensors, with a warning.
 *
 * ONNX's quantized weights (DequantizeLinear of a constant, MatMulNBits) are recognised by the ONNX
 * reader from the graph (readers/onnx/quantized.ts) and dequantized here with the rest.
 */
import { dirname, join } from 'node:path';
import { readExact } from '../bytesource';
import type { DType } from '../dtypes';
import { QuantLensError, throwIfAborted } from '../errors';
import { MAX_JSON_SIDE_FILE_BYTES, MAX_QUANT_STATE_BYTES } from '../limits';
import { elementCount, type Diagnostic, type ModelInfo, type QuantizedFormat, type QuantizedLayout, type QuantizedPart, type TensorInfo } from '../model';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../quant/fp16';
import { decodeFp8 } from '../quant/rtn';
import { decodeToF32, isPlainDType } from '../stats/decode';
import type { RowChunk } from '../tensor-rows';
import { readTensorBytes } from '../tensordata';
import type { FileAccess, ReadOptions } from './types';

/** AutoAWQ's pack order: nibble i of a word holds output column 8k + AWQ_ORDER[i]. */
export const AWQ_ORDER: readonly number[] = [0, 2, 4, 6, 1, 3, 5, 7];

const LAYOUT_DTYPE: Record<QuantizedFormat, DType> = {
  'compressed-tensors-pack': 'CT_INT',
  'compressed-tensors-int': 'CT_INT',
  'compressed-tensors-fp8': 'CT_FP8',
  gptq: 'GPTQ',
  awq: 'AWQ',
  'bnb-nf4': 'BNB_NF4',
  'bnb-fp4': 'BNB_FP4',
  'bnb-int8': 'BNB_INT8',
  'onnx-qdq': 'ONNX_QDQ',
  'onnx-matmulnbits': 'MATMUL_NBITS',
};

/** `quantization_config` of the config.json beside the checkpoint (GPTQ: or quantize_config.json). */
type QuantConfig = Record<string, unknown>;

class LayoutError extends Error {}

function fail(message: string): never {
  throw new LayoutError(message);
}

function isFloat(dtype: DType): boolean {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64';
}

function dims(t: TensorInfo | undefined, what: string): number[] {
  if (!t) fail(`${what} is missing`);
  return t.shape;
}

function wordsFor(count: number, bits: number): number {
  return Math.ceil(count / Math.floor(32 / bits));
}

/**
 * Replaces the parts of every recognised quantized weight by one logical tensor. Only safetensors
 * models carry these layouts; other formats come back unchanged.
 */
export async function recogniseQuantizedLayouts(model: ModelInfo, files: FileAccess, options: ReadOptions = {}): Promise<ModelInfo> {
  if (model.format !== 'safetensors') return model;
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  const candidates = model.tensors.filter(
    (t) => t.name.endsWith('.weight_packed') || t.name.endsWith('.qweight') || /\.weight\.quant_state\.bitsandbytes__(nf4|fp4)$/.test(t.name) || t.name.endsWith('.SCB') || (t.name.endsWith('.weight_scale') && byName.has(`${t.name.slice(0, -'_scale'.length)}`)),
  );
  if (candidates.length === 0) return model;
  const config = await readQuantConfig(model, files, model.diagnostics);
  const small = new SmallReads(files);
  const logical = new Map<string, TensorInfo>();
  /** part name → the logical tensor it belongs to */
  const consumed = new Map<string, TensorInfo>();
  try {
    for (const c of candidates) {
      throwIfAborted(options.signal);
      const module = moduleOf(c.name);
      if (logical.has(`${module}.weight`)) continue;
      try {
        const layout = await recognise(c, module, byName, config, small);
        if (!layout) continue;
        const parts = Object.values(layout.layout.parts) as TensorInfo[];
        const main = layout.layout.parts.packed!;
        const owner: TensorInfo = {
          name: `${module}.weight`,
          dtype: LAYOUT_DTYPE[layout.layout.format],
          shape: layout.shape,
          file: main.file,
          byteOffset: main.byteOffset,
          byteLength: parts.reduce((s, p) => s + p.byteLength, 0),
          encoding: 'quantized',
          quantized: layout.layout,
        };
        logical.set(owner.name, owner);
        for (const p of parts) consumed.set(p.name, owner);
      } catch (err) {
        if (!(err instanceof LayoutError)) throw err;
        model.diagnostics.push({ severity: 'warning', code: 'QUANT_LAYOUT', tensor: c.name, message: `not read as a quantized weight: ${err.message}; its tensors are listed as stored` });
      }
    }
  } finally {
    await small.close();
  }
  if (logical.size === 0) return model;
  const tensors: TensorInfo[] = [];
  const placed = new Set<string>();
  for (const t of model.tensors) {
    const owner = consumed.get(t.name);
    if (!owner) {
      tensors.push(t);
      continue;
    }
    // the logical tensor takes the place of its first part
    if (!placed.has(owner.name)) {
      placed.add(owner.name);
      tensors.push(owner);
    }
  }
  return { ...model, tensors };
}

function moduleOf(name: string): string {
  for (const suffix of ['.weight_packed', '.qweight', '.SCB', '.weight_scale']) if (name.endsWith(suffix)) return name.slice(0, -suffix.length);
  return name.replace(/\.weight\.quant_state\.bitsandbytes__(nf4|fp4)$/, '');
}

interface Recognised {
  shape: number[];
  layout: QuantizedLayout;
}

async function recognise(c: TensorInfo, module: string, byName: Map<string, TensorInfo>, config: QuantConfig | undefined, small: SmallReads): Promise<Recognised | undefined> {
  const part = (suffix: string) => byName.get(`${module}.${suffix}`);
  if (c.name.endsWith('.weight_packed')) return compressedPacked(part, config, small);
  if (c.name.endsWith('.qweight')) return gptqOrAwq(part, config);
  if (c.name.endsWith('.SCB')) return bnbInt8(part);
  if (c.name.endsWith('.weight_scale')) {
    // int-quantized / float-quantized: the weight itself holds one code per value
    const w = part('weight');
    if (!w || !(w.dtype === 'I8' || w.dtype === 'F8_E4M3' || w.dtype === 'F8_E5M2')) return undefined;
    return compressedUnpacked(part);
  }
  return bnb4bit(c, part, small);
}

// ---------------------------------------------------------------- compressed-tensors

/** Scales of [rows, groups] (or one per tensor); returns the columns per group. */
function scaleGroups(scale: TensorInfo | undefined, rows: number, cols: number): { groupSize: number; groups: number } {
  const s = dims(scale, 'weight_scale');
  if (!isFloat(scale!.dtype)) fail(`weight_scale is ${scale!.dtype}, not a float type`);
  const n = elementCount(s);
  if (n === 1 && (s.length <= 1 || rows !== 1)) return { groupSize: rows * cols, groups: 1 };
  if (s.length !== 2 || s[0] !== rows || s[1] < 1) fail(`weight_scale ${JSON.stringify(s)} does not match ${rows} rows`);
  const groups = s[1];
  const groupSize = Math.ceil(cols / groups);
  if (Math.ceil(cols / groupSize) !== groups) fail(`${groups} scale groups do not divide ${cols} columns`);
  return { groupSize, groups };
}

async function compressedPacked(part: (s: string) => TensorInfo | undefined, config: QuantConfig | undefined, small: SmallReads): Promise<Recognised> {
  const packed = part('weight_packed')!;
  const shapePart = part('weight_shape');
  if (packed.dtype !== 'I32' || packed.shape.length !== 2) fail(`weight_packed is ${packed.dtype} ${JSON.stringify(packed.shape)}, expected int32 [out, words]`);
  if (!shapePart || !(shapePart.dtype === 'I64' || shapePart.dtype === 'I32') || elementCount(shapePart.shape) !== 2) fail('weight_shape (the unpacked [out, in]) is missing or not two integers');
  const raw = await small.read(shapePart, 16);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const shape = shapePart.dtype === 'I64' ? [view.getBigInt64(0, true), view.getBigInt64(8, true)] : [BigInt(view.getInt32(0, true)), BigInt(view.getInt32(4, true))];
  if (shape.some((d) => d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER))) fail(`weight_shape ${shape.join(' × ')} is not a shape`);
  const [rows, cols] = shape.map(Number) as [number, number];
  if (packed.shape[0] !== rows) fail(`weight_packed has ${packed.shape[0]} rows, weight_shape says ${rows}`);
  const bits = packedBits(packed.shape[1]!, cols, config);
  const { groupSize, groups } = scaleGroups(part('weight_scale'), rows, cols);
  const zp = part('weight_zero_point');
  const gIdx = part('weight_g_idx');
  if (zp) {
    const perTensor = groups === 1 && groupSize === rows * cols && rows !== 1;
    const ok = perTensor
      ? elementCount(zp.shape) === 1 && zp.dtype === 'I8'
      : zp.dtype === 'I32' && zp.shape.length === 2 && zp.shape[0] === wordsFor(rows, bits) && zp.shape[1] === groups;
    if (!ok) fail(`weight_zero_point ${zp.dtype} ${JSON.stringify(zp.shape)} is not the packed [⌈${rows} / ${Math.floor(32 / bits)}⌉, ${groups}]`);
  }
  checkGIdx(gIdx, cols);
  const parts: Partial<Record<QuantizedPart, TensorInfo>> = { packed, scale: part('weight_scale')!, shape: shapePart };
  if (zp) parts.zeroPoint = zp;
  if (gIdx) parts.gIdx = gIdx;
  return { shape: [rows, cols], layout: { format: 'compressed-tensors-pack', bits, groupSize, symmetric: !zp, parts } };
}

function checkGIdx(gIdx: TensorInfo | undefined, cols: number): void {
  if (gIdx && (gIdx.dtype !== 'I32' || elementCount(gIdx.shape) !== cols)) fail(`g_idx ${gIdx.dtype} ${JSON.stringify(gIdx.shape)} is not int32 [${cols}]`);
}

/**
 * The width of packed values: the config's num_bits whose words per row match, else the one width
 * the shapes allow (7 and 8 bits both pack 4 per word: 8 unless the config says 7).
 */
function packedBits(words: number, cols: number, config: QuantConfig | undefined): number {
  const fits = (b: number) => wordsFor(cols, b) === words;
  const declared = new Set<number>();
  const groups = config?.config_groups;
  if (groups && typeof groups === 'object') {
    for (const g of Object.values(groups as Record<string, unknown>)) {
      const b = (g as { weights?: { num_bits?: unknown } } | null)?.weights?.num_bits;
      if (typeof b === 'number' && Number.isInteger(b) && b >= 1 && b <= 8) declared.add(b);
    }
  }
  for (const b of [...declared].sort((x, y) => y - x)) if (fits(b)) return b;
  for (const b of [4, 8, 2, 3, 5, 6]) if (fits(b)) return b;
  return fail(`${words} int32 words per row do not hold ${cols} values of 2 to 8 bits`);
}

function compressedUnpacked(part: (s: string) => TensorInfo | undefined): Recognised {
  const w = part('weight')!;
  if (w.shape.length !== 2) fail(`weight ${JSON.stringify(w.shape)} is not a matrix`);
  const [rows, cols] = w.shape as [number, number];
  const { groupSize, groups } = scaleGroups(part('weight_scale'), rows, cols);
  const zp = part('weight_zero_point');
  if (zp && (zp.dtype !== 'I8' || elementCount(zp.shape) !== (groups === 1 && groupSize === rows * cols ? 1 : rows * groups))) {
    fail(`weight_zero_point ${zp.dtype} ${JSON.stringify(zp.shape)} does not match the scales`);
  }
  const gIdx = part('weight_g_idx');
  checkGIdx(gIdx, cols);
  const parts: Partial<Record<QuantizedPart, TensorInfo>> = { packed: w, scale: part('weight_scale')! };
  if (zp) parts.zeroPoint = zp;
  if (gIdx) parts.gIdx = gIdx;
  const fp8 = w.dtype !== 'I8';
  return { shape: [rows, cols], layout: { format: fp8 ? 'compressed-tensors-fp8' : 'compressed-tensors-int', bits: 8, groupSize, symmetric: !zp, parts } };
}

// ---------------------------------------------------------------- GPTQ and AWQ

function configNumber(config: QuantConfig | undefined, key: string): number | undefined {
  const v = config?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function gptqOrAwq(part: (s: string) => TensorInfo | undefined, config: QuantConfig | undefined): Recognised {
  const qweight = part('qweight')!;
  const qzeros = part('qzeros');
  const scales = part('scales');
  const gIdx = part('g_idx');
  const s = dims(scales, 'scales');
  if (qweight.dtype !== 'I32' || qweight.shape.length !== 2) fail(`qweight is ${qweight.dtype} ${JSON.stringify(qweight.shape)}, expected int32 [·, ·]`);
  if (!isFloat(scales!.dtype) || s.length !== 2) fail(`scales ${scales!.dtype} ${JSON.stringify(s)} is not a float matrix`);
  const method = typeof config?.quant_method === 'string' ? config.quant_method.toLowerCase() : undefined;
  const [qr, qc] = qweight.shape as [number, number];
  const [groups, outs] = s as [number, number];
  const awq = method === 'awq' || (method !== 'gptq' && !gIdx && qc * 8 === outs && qc !== outs);
  if (awq) {
    const version = typeof config?.version === 'string' ? config.version.toLowerCase() : 'gemm';
    if (version !== 'gemm') fail(`AWQ version ${version}: only the GEMM layout is read`);
    const bits = configNumber(config, 'w_bit') ?? configNumber(config, 'bits') ?? 4;
    if (bits !== 4) fail(`AWQ with ${bits}-bit values: only 4-bit is read`);
    const rows = qc * 8;
    const cols = qr;
    if (outs !== rows) fail(`scales have ${outs} outputs, qweight packs ${rows}`);
    if (groups < 1 || cols % groups !== 0) fail(`${groups} groups do not divide ${cols} inputs`);
    if (!qzeros || qzeros.dtype !== 'I32' || qzeros.shape[0] !== groups || qzeros.shape[1] !== qc) fail(`qzeros is not int32 [${groups}, ${qc}]`);
    return { shape: [rows, cols], layout: { format: 'awq', bits, groupSize: cols / groups, symmetric: false, parts: { packed: qweight, zeroPoint: qzeros, scale: scales! } } };
  }
  const rows = qc;
  if (outs !== rows) fail(`scales have ${outs} outputs, qweight has ${rows} columns`);
  let bits = configNumber(config, 'bits') ?? configNumber(config, 'w_bit');
  let cols: number;
  if (gIdx) {
    cols = elementCount(gIdx.shape);
    const fromShapes = (qr * 32) / cols;
    if (bits === undefined) bits = fromShapes;
    if (bits !== fromShapes) fail(`qweight's ${qr} words per column hold ${cols} values of ${fromShapes} bits, the config says ${bits}`);
  } else {
    bits ??= 4;
    cols = (qr * 32) / bits;
  }
  if (![2, 3, 4, 8].includes(bits) || !Number.isInteger(cols)) fail(`${bits}-bit GPTQ values are not 2, 3, 4 or 8 bits in whole words`);
  checkGIdx(gIdx, cols);
  if (groups < 1 || Math.ceil(cols / Math.ceil(cols / groups)) !== groups) fail(`${groups} groups do not split ${cols} inputs`);
  const zeroWords = Math.ceil((rows * bits) / 32);
  if (qzeros && (qzeros.dtype !== 'I32' || qzeros.shape[0] !== groups || qzeros.shape[1] !== zeroWords)) fail(`qzeros is not int32 [${groups}, ${zeroWords}]`);
  const format = typeof config?.checkpoint_format === 'string' ? config.checkpoint_format.toLowerCase() : 'gptq';
  if (format !== 'gptq' && format !== 'gptq_v2') fail(`GPTQ checkpoint_format ${format}: only gptq and gptq_v2 are read`);
  const sym = config?.sym;
  const parts: Partial<Record<QuantizedPart, TensorInfo>> = { packed: qweight, scale: scales! };
  if (qzeros) parts.zeroPoint = qzeros;
  if (gIdx) parts.gIdx = gIdx;
  return {
    shape: [rows, cols],
    layout: { format: 'gptq', bits, groupSize: Math.ceil(cols / groups), symmetric: sym === undefined ? !qzeros : sym === true, parts, zeroPointOffset: format === 'gptq_v2' ? 0 : 1 },
  };
}

// ---------------------------------------------------------------- bitsandbytes

function bnbInt8(part: (s: string) => TensorInfo | undefined): Recognised {
  const w = part('weight');
  const scb = part('SCB')!;
  if (!w || w.dtype !== 'I8' || w.shape.length !== 2) fail('LLM.int8 weight is missing or not an int8 matrix');
  if (!isFloat(scb.dtype) || elementCount(scb.shape) !== w.shape[0]) fail(`SCB ${scb.dtype} ${JSON.stringify(scb.shape)} is not one float per row`);
  const parts: Partial<Record<QuantizedPart, TensorInfo>> = { packed: w, scale: scb };
  const format = part('weight_format');
  if (format) parts.format = format;
  return { shape: [...w.shape], layout: { format: 'bnb-int8', bits: 8, groupSize: w.shape[1]!, symmetric: true, parts } };
}

async function bnb4bit(stateTensor: TensorInfo, part: (s: string) => TensorInfo | undefined, small: SmallReads): Promise<Recognised> {
  if (stateTensor.dtype !== 'U8' || stateTensor.byteLength > MAX_QUANT_STATE_BYTES) fail(`quant state is not a uint8 JSON of at most ${MAX_QUANT_STATE_BYTES} bytes`);
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await small.read(stateTensor, MAX_QUANT_STATE_BYTES))) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof QuantLensError) throw err;
    return fail('quant state is not UTF-8 JSON');
  }
  if (typeof state !== 'object' || state === null) fail('quant state is not a JSON object');
  const quantType = state.quant_type;
  if (quantType !== 'nf4' && quantType !== 'fp4') fail(`quant_type ${JSON.stringify(quantType)} is not nf4 or fp4`);
  const blockSize = state.blocksize;
  const shape = state.shape;
  if (typeof blockSize !== 'number' || !Number.isInteger(blockSize) || blockSize < 1 || blockSize > 1 << 20) fail(`blocksize ${JSON.stringify(blockSize)} is not a block size`);
  if (!Array.isArray(shape) || shape.length < 1 || shape.length > 8 || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) fail(`shape ${JSON.stringify(shape)} is not a shape`);
  let n = 1;
  for (const d of shape as number[]) n *= d;
  if (!Number.isSafeInteger(n)) fail(`shape ${JSON.stringify(shape)} overflows`);
  const packed = part('weight');
  const absmax = part('weight.absmax');
  const quantMap = part('weight.quant_map');
  if (!packed || packed.dtype !== 'U8' || packed.byteLength !== Math.ceil(n / 2)) fail(`weight is not ${Math.ceil(n / 2)} bytes of packed codes`);
  if (!quantMap || !isFloat(quantMap.dtype) || elementCount(quantMap.shape) !== 16) fail('weight.quant_map is not 16 float levels');
  const blocks = Math.ceil(n / blockSize);
  const nestedAbsmax = part('weight.nested_absmax');
  const parts: Partial<Record<QuantizedPart, TensorInfo>> = { packed, absmax: absmax!, quantMap, quantState: stateTensor };
  const layout: QuantizedLayout = { format: quantType === 'nf4' ? 'bnb-nf4' : 'bnb-fp4', bits: 4, groupSize: blockSize, symmetric: true, parts };
  if (nestedAbsmax) {
    const nestedMap = part('weight.nested_quant_map');
    const nbs = state.nested_blocksize;
    const offset = state.nested_offset;
    if (typeof nbs !== 'number' || !Number.isInteger(nbs) || nbs < 1 || nbs > 1 << 20) fail(`nested_blocksize ${JSON.stringify(nbs)} is not a block size`);
    if (typeof offset !== 'number' || !Number.isFinite(offset)) fail('nested_offset is missing');
    if (!absmax || absmax.dtype !== 'U8' || elementCount(absmax.shape) !== blocks) fail(`weight.absmax is not ${blocks} uint8 codes`);
    if (!isFloat(nestedAbsmax.dtype) || elementCount(nestedAbsmax.shape) !== Math.ceil(blocks / nbs)) fail(`weight.nested_absmax is not ${Math.ceil(blocks / nbs)} floats`);
    if (!nestedMap || !isFloat(nestedMap.dtype) || elementCount(nestedMap.shape) !== 256) fail('weight.nested_quant_map is not 256 float levels');
    parts.nestedAbsmax = nestedAbsmax;
    parts.nestedQuantMap = nestedMap;
    layout.nestedOffset = offset;
    layout.nestedBlockSize = nbs;
  } else if (!absmax || !isFloat(absmax.dtype) || elementCount(absmax.shape) !== blocks) {
    fail(`weight.absmax is not ${blocks} floats`);
  }
  return { shape: [...(shape as number[])], layout };
}

// ---------------------------------------------------------------- side reads

async function readQuantConfig(model: ModelInfo, files: FileAccess, diagnostics: Diagnostic[]): Promise<QuantConfig | undefined> {
  const dir = dirname(model.files[0]!);
  for (const [name, key] of [['config.json', 'quantization_config'], ['quantize_config.json', undefined]] as const) {
    const path = join(dir, name);
    if (!(await files.exists(path))) continue;
    try {
      const src = await files.open(path);
      let text: string;
      try {
        if (src.size > MAX_JSON_SIDE_FILE_BYTES) throw new LayoutError(`${src.size} bytes exceed the ${MAX_JSON_SIDE_FILE_BYTES}-byte limit`);
        text = new TextDecoder('utf-8', { fatal: true }).decode(await readExact(src, 0, src.size));
      } finally {
        await src.close();
      }
      const json = JSON.parse(text) as Record<string, unknown>;
      const q = key ? json?.[key] : json;
      if (q && typeof q === 'object' && !Array.isArray(q)) return q as QuantConfig;
    } catch (err) {
      if (err instanceof QuantLensError && err.code === 'CANCELLED') throw err;
      diagnostics.push({ severity: 'warning', code: 'QUANT_CONFIG', file: path, message: `${name} was not read (${(err as Error).message}); quantized layouts are recognised from tensor shapes alone` });
    }
  }
  return undefined;
}

/** Positioned reads of small tensors (weight_shape, quant states), one open file at a time. */
class SmallReads {
  private file: string | undefined;
  private src: Awaited<ReturnType<FileAccess['open']>> | undefined;
  constructor(private readonly files: FileAccess) {}

  async read(t: TensorInfo, max: number): Promise<Uint8Array> {
    if (t.encoding !== 'raw' || t.byteLength > max) fail(`${t.name} is not a small stored tensor`);
    if (this.file !== t.file) {
      await this.close();
      this.src = await this.files.open(t.file);
      this.file = t.file;
    }
    return readExact(this.src!, t.byteOffset, t.byteLength, t.name);
  }

  async close(): Promise<void> {
    const s = this.src;
    this.src = undefined;
    this.file = undefined;
    await s?.close();
  }
}

// ---------------------------------------------------------------- dequantization

async function partBytes(model: ModelInfo, t: TensorInfo, files: FileAccess): Promise<Uint8Array> {
  return readTensorBytes(model, t, files);
}

async function partF32(model: ModelInfo, t: TensorInfo, files: FileAccess): Promise<Float32Array> {
  if (!isPlainDType(t.dtype)) throw new QuantLensError('UNSUPPORTED', `${t.dtype} is not a float type`, { tensor: t.name });
  return decodeToF32(t.dtype, await partBytes(model, t, files));
}

async function partI32(model: ModelInfo, t: TensorInfo, files: FileAccess): Promise<Int32Array> {
  const b = await partBytes(model, t, files);
  return new Int32Array(b.buffer, b.byteOffset, b.byteLength >> 2);
}

const INTEGER_WIDTH: Partial<Record<DType, number>> = { I8: 1, U8: 1, I16: 2, U16: 2, I32: 4 };

/** Integer values of up to 32 bits (ONNX QDQ values and zero points). */
async function partIntegers(model: ModelInfo, t: TensorInfo, files: FileAccess): Promise<Int32Array> {
  const width = INTEGER_WIDTH[t.dtype];
  if (width === undefined) throw new QuantLensError('UNSUPPORTED', `${t.dtype} is not an integer type of up to 32 bits`, { tensor: t.name });
  const b = await partBytes(model, t, files);
  const n = elementCount(t.shape);
  if (b.byteLength !== n * width) throw new QuantLensError('SIZE_MISMATCH', `${b.byteLength} bytes for ${n} ${t.dtype} values`, { tensor: t.name });
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] =
      t.dtype === 'I8' ? view.getInt8(i)
      : t.dtype === 'U8' ? view.getUint8(i)
      : t.dtype === 'I16' ? view.getInt16(2 * i, true)
      : t.dtype === 'U16' ? view.getUint16(2 * i, true)
      : view.getInt32(4 * i, true);
  }
  return out;
}

/** Dequantized values take the scale's type in ONNX Runtime: f16/bf16 scales round the f32 product to theirs. */
function roundToScaleType(dtype: DType): (x: number) => number {
  if (dtype === 'F16') return (x) => f16ToF32(f32ToF16(x));
  if (dtype === 'BF16') return (x) => bf16ToF32(f32ToBf16(x));
  return (x) => x;
}

async function partI8(model: ModelInfo, t: TensorInfo, files: FileAccess): Promise<Int8Array> {
  const b = await partBytes(model, t, files);
  return new Int8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Group of each column: g_idx (checked against the group count) or column div groupSize. */
async function columnGroups(model: ModelInfo, l: QuantizedLayout, cols: number, groups: number, files: FileAccess, tensor: string): Promise<Int32Array> {
  if (l.parts.gIdx) {
    const g = await partI32(model, l.parts.gIdx, files);
    for (let c = 0; c < cols; c++) {
      if (g[c]! < 0 || g[c]! >= groups) throw new QuantLensError('INVALID_OFFSETS', `g_idx[${c}] = ${g[c]} is not one of ${groups} groups`, { tensor });
    }
    return g;
  }
  const out = new Int32Array(cols);
  for (let c = 0; c < cols; c++) out[c] = Math.floor(c / l.groupSize);
  return out;
}

/** The value of `bits` bits at bit position `p` of a little-endian stream of 32-bit words spaced `stride` apart. */
function streamValue(words: Int32Array, first: number, stride: number, p: number, bits: number): number {
  const w = p >>> 5;
  const shift = p & 31;
  let v = words[first + w * stride]! >>> shift;
  if (shift + bits > 32) v |= words[first + (w + 1) * stride]! << (32 - shift);
  return v & ((1 << bits) - 1);
}

/**
 * Rows of a logical tensor as f32, `maxElements` values at a time. The parts are read whole (the
 * packed values of one tensor at most), the f32 rows produced chunk by chunk.
 */
export async function* dequantizeLogicalRows(
  model: ModelInfo,
  tensor: TensorInfo,
  files: FileAccess,
  options: { maxElements: number; signal?: AbortSignal },
): AsyncGenerator<RowChunk> {
  const l = tensor.quantized;
  if (!l) throw new QuantLensError('INTERNAL', `${tensor.name} has no quantized layout`, { tensor: tensor.name });
  // bitsandbytes keeps any shape; every other layout is [out, in]
  const cols = tensor.shape[tensor.shape.length - 1] ?? 1;
  const rows = cols === 0 ? 0 : elementCount(tensor.shape) / cols;
  const rowValue = await rowDequantizer(model, tensor, l, rows, cols, files);
  const per = Math.max(1, Math.floor(options.maxElements / Math.max(1, cols)));
  for (let row = 0; row < rows; row += per) {
    throwIfAborted(options.signal);
    const n = Math.min(per, rows - row);
    const values = new Float32Array(n * cols);
    for (let r = 0; r < n; r++) rowValue(row + r, values.subarray(r * cols, (r + 1) * cols));
    yield { row, rows: n, values };
  }
}

type RowWriter = (row: number, out: Float32Array) => void;

async function rowDequantizer(model: ModelInfo, tensor: TensorInfo, l: QuantizedLayout, rows: number, cols: number, files: FileAccess): Promise<RowWriter> {
  const p = l.parts;
  const name = tensor.name;
  switch (l.format) {
    case 'compressed-tensors-pack':
    case 'compressed-tensors-int':
    case 'compressed-tensors-fp8': {
      const scale = await partF32(model, p.scale!, files);
      const perTensor = scale.length === 1 && !(rows === 1 && l.groupSize < cols);
      const groups = perTensor ? 1 : scale.length / rows;
      const group = await columnGroups(model, l, cols, groups, files, name);
      const pf = Math.floor(32 / l.bits);
      const half = 1 << (l.bits - 1);
      const mask = (1 << l.bits) - 1;
      let zero: (r: number, g: number) => number = () => 0;
      if (p.zeroPoint && p.zeroPoint.dtype === 'I32') {
        const zw = await partI32(model, p.zeroPoint, files);
        zero = (r, g) => ((zw[Math.floor(r / pf) * groups + g]! >>> ((r % pf) * l.bits)) & mask) - half;
      } else if (p.zeroPoint) {
        const z = await partI8(model, p.zeroPoint, files);
        zero = perTensor ? () => z[0]! : (r, g) => z[r * groups + g]!;
      }
      const s = perTensor ? () => scale[0]! : (r: number, g: number) => scale[r * groups + g]!;
      if (l.format === 'compressed-tensors-pack') {
        const words = await partI32(model, p.packed!, files);
        const wpr = p.packed!.shape[1]!;
        return (r, out) => {
          for (let c = 0; c < cols; c++) {
            const q = ((words[r * wpr + Math.floor(c / pf)]! >>> ((c % pf) * l.bits)) & mask) - half;
            const g = group[c]!;
            out[c] = (q - zero(r, g)) * s(r, g);
          }
        };
      }
      if (l.format === 'compressed-tensors-int') {
        const q = await partI8(model, p.packed!, files);
        return (r, out) => {
          for (let c = 0; c < cols; c++) {
            const g = group[c]!;
            out[c] = (q[r * cols + c]! - zero(r, g)) * s(r, g);
          }
        };
      }
      const codes = await partBytes(model, p.packed!, files);
      const format = p.packed!.dtype === 'F8_E5M2' ? 'e5m2' : 'e4m3';
      const table = new Float32Array(256).map((_, i) => decodeFp8(i, format));
      return (r, out) => {
        for (let c = 0; c < cols; c++) out[c] = table[codes[r * cols + c]!]! * s(r, group[c]!);
      };
    }
    case 'gptq': {
      const words = await partI32(model, p.packed!, files);
      const scale = await partF32(model, p.scale!, files);
      const groups = p.scale!.shape[0]!;
      const group = await columnGroups(model, l, cols, groups, files, name);
      const zeros = p.zeroPoint ? await partI32(model, p.zeroPoint, files) : undefined;
      const zWords = p.zeroPoint?.shape[1] ?? 0;
      const offset = l.zeroPointOffset ?? 1;
      const half = 1 << (l.bits - 1);
      return (j, out) => {
        for (let i = 0; i < cols; i++) {
          const g = group[i]!;
          const q = streamValue(words, j, rows, i * l.bits, l.bits);
          const z = zeros ? streamValue(zeros, g * zWords, 1, j * l.bits, l.bits) + offset : half;
          out[i] = (q - z) * scale[g * rows + j]!;
        }
      };
    }
    case 'awq': {
      const words = await partI32(model, p.packed!, files);
      const zeros = await partI32(model, p.zeroPoint!, files);
      const scale = await partF32(model, p.scale!, files);
      const wpr = rows / 8;
      return (j, out) => {
        const word = Math.floor(j / 8);
        const nib = 4 * AWQ_ORDER.indexOf(j % 8);
        for (let i = 0; i < cols; i++) {
          const g = Math.floor(i / l.groupSize);
          const q = (words[i * wpr + word]! >>> nib) & 15;
          const z = (zeros[g * wpr + word]! >>> nib) & 15;
          out[i] = (q - z) * scale[g * rows + j]!;
        }
      };
    }
    case 'bnb-nf4':
    case 'bnb-fp4': {
      const packed = await partBytes(model, p.packed!, files);
      const levels = await partF32(model, p.quantMap!, files);
      const absmax = await bnbAbsmax(model, l, files);
      const block = l.groupSize;
      return (r, out) => {
        for (let c = 0; c < cols; c++) {
          const k = r * cols + c;
          const byte = packed[k >>> 1]!;
          const code = k & 1 ? byte & 15 : byte >>> 4;
          out[c] = levels[code]! * absmax[Math.floor(k / block)]!;
        }
      };
    }
    case 'bnb-int8': {
      const q = await partI8(model, p.packed!, files);
      const scb = await partF32(model, p.scale!, files);
      return (r, out) => {
        for (let c = 0; c < cols; c++) out[c] = (q[r * cols + c]! * scb[r]!) / 127;
      };
    }
    case 'onnx-qdq': {
      // DequantizeLinear: y = float(x − zero_point) · scale, in f32 (onnx/reference/ops/op_dequantize_linear.py)
      const q = await partIntegers(model, p.packed!, files);
      const scale = await partF32(model, p.scale!, files);
      const zero = p.zeroPoint ? await partIntegers(model, p.zeroPoint, files) : undefined;
      const round = roundToScaleType(p.scale!.dtype);
      const shape = tensor.shape;
      const inner = l.axis === undefined ? 1 : elementCount(shape.slice(l.axis + 1));
      const channels = l.axis === undefined ? 1 : shape[l.axis]!;
      return (r, out) => {
        for (let c = 0; c < cols; c++) {
          const i = r * cols + c;
          const ch = channels === 1 ? 0 : Math.floor(i / inner) % channels;
          out[c] = round(Math.fround(q[i]! - (zero ? zero[ch]! : 0)) * scale[ch]!);
        }
      };
    }
    case 'onnx-matmulnbits': {
      // the logical tensor is the MatMul weight [K, N]; B holds it transposed, block by block along K
      const [k, n] = [rows, cols];
      const bits = l.bits;
      const block = l.groupSize;
      const blocks = Math.ceil(k / block);
      const blob = (block * bits) / 8;
      const mask = (1 << bits) - 1;
      const packed = await partBytes(model, p.packed!, files);
      const scale = await partF32(model, p.scale!, files);
      const round = roundToScaleType(p.scale!.dtype);
      const bitsAt = (bytes: Uint8Array, base: number, bit: number): number => {
        const at = base + (bit >>> 3);
        const shift = bit & 7;
        let v = bytes[at]! >>> shift;
        if (shift + bits > 8) v |= bytes[at + 1]! << (8 - shift);
        return v & mask;
      };
      let zero: (j: number, b: number) => number = () => 1 << (bits - 1);
      if (p.zeroPoint && p.zeroPoint.dtype === 'U8') {
        const z = await partBytes(model, p.zeroPoint, files);
        const perRow = Math.ceil((blocks * bits) / 8);
        zero = (j, b) => bitsAt(z, j * perRow, b * bits);
      } else if (p.zeroPoint) {
        const z = await partF32(model, p.zeroPoint, files);
        zero = (j, b) => z[j * blocks + b]!;
      }
      return (i, out) => {
        const b = Math.floor(i / block);
        const bit = (i % block) * bits;
        for (let j = 0; j < n; j++) {
          const q = bitsAt(packed, (j * blocks + b) * blob, bit);
          out[j] = round(Math.fround(q - zero(j, b)) * scale[j * blocks + b]!);
        }
      };
    }
  }
}

/** Block absmax values as bitsandbytes reconstructs them (double quantization undone in f32). */
async function bnbAbsmax(model: ModelInfo, l: QuantizedLayout, files: FileAccess): Promise<Float32Array> {
  const p = l.parts;
  if (!p.nestedAbsmax) return partF32(model, p.absmax!, files);
  const codes = await partBytes(model, p.absmax!, files);
  const nested = await partF32(model, p.nestedAbsmax, files);
  const map = await partF32(model, p.nestedQuantMap!, files);
  const out = new Float32Array(codes.length);
  const nbs = l.nestedBlockSize!;
  const offset = Math.fround(l.nestedOffset!);
  for (let i = 0; i < codes.length; i++) {
    const v = Math.fround(map[codes[i]!]! * nested[Math.floor(i / nbs)]!);
    out[i] = v + offset;
  }
  return out;
}
