/**
 * Quantize any checkpoint into a safetensors folder that a runtime loads as it is:
 * - compressed-tensors (vLLM, transformers): `pack-quantized` for the int schemes, `float-quantized`
 *   for FP8 e4m3, and config.json `quantization_config` with one config group per scheme (targets are
 *   module names), as neuralmagic/compressed-tensors writes it (compressors/quantized_compressors:
 *   pack_to_int32, PackedQuantizationCompressor, naive_quantized; quantization/quant_config.py);
 * - bitsandbytes NF4 (transformers' pre-quantized loading): packed uint8 codes, absmax (double
 *   quantized with -dq), quant_map and the quant state JSON, as bitsandbytes' QuantState.as_dict(packed=True)
 *   and the default backend's quantize_4bit write them;
 * - fake-quant: every planned weight quantized and dequantized, written as BF16 in the original
 *   layout, to evaluate a scheme in any framework.
 *
 * Streams tensor by tensor (rows in chunks wherever the scheme's groups allow; per-tensor scales
 * and fake-quant double quantization need one tensor at a time), into a temporary folder beside the
 * output that is renamed when complete: cancel or failure leaves nothing. The input is only read.
 */
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { checkFreeSpace } from '../atomic-output';
import { readInto } from '../bytesource';
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError, throwIfAborted, toQuantLensError } from '../errors';
import { MAX_JSON_SIDE_FILE_BYTES } from '../limits';
import type { Diagnostic, ModelInfo, TensorInfo } from '../model';
import { describeTensor } from '../names';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../quant/fp16';
import {
  DYNAMIC_MAP, NESTED_BLOCK_SIZE, NF4_LEVELS, doubleQuantizeAbsmax, dequantizeRtn, encodeFp8, groupLayout, quantizeRtn,
  type RtnTensor,
} from '../quant/rtn';
import { checkFiniteSource } from '../quant/ggml-quantize';
import { formatScheme, parseScheme, type QuantScheme } from '../quant/scheme';
import { openModel } from '../readers';
import { nodeFileAccess } from '../readers/node-files';
import type { FileAccess } from '../readers/types';
import { bytesOf, isSafetensorsDType, SafetensorsWriter, specByteLength, type SafetensorsDType, type SafetensorsTensorSpec } from '../safetensors-write';
import { ROW_CHUNK_ELEMENTS, matrixShape, tensorRowsF32 } from '../tensor-rows';
import { readTensorBytes } from '../tensordata';

/** transformers' default `max_shard_size` ("5GB", 10^9 bytes a GB). */
export const DEFAULT_SHARD_BYTES = 5e9;

export type SafetensorsLayout = 'compressed-tensors' | 'bitsandbytes' | 'fake-quant';

/** Quantizes a row-major [rows, cols] tensor with an RTN scheme: the kernel, or the TypeScript twin. */
export type RtnQuantizer = (x: Float32Array, rows: number, cols: number, scheme: QuantScheme) => RtnTensor | Promise<RtnTensor>;

export const twinRtnQuantizer: RtnQuantizer = quantizeRtn;

export interface SafetensorsQuantizeProgress {
  tensorsDone: number;
  tensors: number;
  bytesDone: number;
  bytesTotal: number;
  tensor: string;
}

export interface SafetensorsQuantizeOptions {
  /** One scheme (scheme.ts grammar) for every quantizable weight: 2-D `.weight` tensors but embeddings, norms and the output head. */
  scheme?: string;
  /** Or a plan's assignment: tensor name → scheme; tensors it does not name stay as they are. */
  plan?: Record<string, string>;
  /** Write dequantized BF16 weights in the original layout instead of a quantized layout. */
  fakeQuant?: boolean;
  /** Largest shard; larger outputs are split with a `model.safetensors.index.json`. */
  shardBytes?: number;
  quantizer?: RtnQuantizer;
  files?: FileAccess;
  signal?: AbortSignal;
  onProgress?: (p: SafetensorsQuantizeProgress) => void;
}

export interface SafetensorsQuantizeResult {
  output: string;
  layout: SafetensorsLayout;
  /** Written files, relative to the output folder. */
  files: string[];
  tensors: Array<{ name: string; from: DType; scheme: string | null }>;
  /** Bytes of tensor data written. */
  bytes: number;
  /** Σ written tensor bytes × 8 ÷ Σ parameters (companions count bytes, not parameters). */
  bitsPerWeight: number;
  /** The `quantization_config` written to config.json, as plain JSON. */
  quantizationConfig?: Record<string, unknown>;
  diagnostics: Diagnostic[];
}

/** Whether a tensor is a Linear weight a scheme quantizes by default. */
export function isQuantizableWeight(t: TensorInfo): boolean {
  if (t.shape.length !== 2 || !t.name.endsWith('.weight') || elementCount2(t.shape) === 0) return false;
  const kind = DTYPES[t.dtype].kind;
  if (kind !== 'float' && kind !== 'block' && kind !== 'layout') return false;
  const role = describeTensor(t.name).role;
  return role !== 'embed' && role !== 'norm' && role !== 'output';
}

function elementCount2(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The module a weight belongs to (compressed-tensors targets, bitsandbytes skip lists). */
export function moduleName(tensor: string): string {
  return tensor.endsWith('.weight') ? tensor.slice(0, -'.weight'.length) : tensor;
}

// ---------------------------------------------------------------- packing

/**
 * compressed-tensors `pack_to_int32(value, num_bits, packed_dim=1)`: each row's values + 2^(b−1),
 * 32 div b per int32 word, column c at bits b · (c mod (32 div b)) of word c div (32 div b).
 */
export function packInt32Rows(q: Int8Array, rows: number, cols: number, bits: number): Int32Array {
  const pf = Math.floor(32 / bits);
  const wpr = Math.ceil(cols / pf);
  const half = 1 << (bits - 1);
  const out = new Int32Array(rows * wpr);
  for (let r = 0; r < rows; r++) {
    for (let w = 0; w < wpr; w++) {
      let word = 0;
      const base = r * cols + w * pf;
      const n = Math.min(pf, cols - w * pf);
      for (let k = 0; k < n; k++) word |= (q[base + k]! + half) << (k * bits);
      out[r * wpr + w] = word;
    }
  }
  return out;
}

/** `pack_to_int32(value, num_bits, packed_dim=0)`: the same along the rows (zero points [out, groups]). */
export function packInt32Columns(q: Int8Array, rows: number, cols: number, bits: number): Int32Array {
  const pf = Math.floor(32 / bits);
  const half = 1 << (bits - 1);
  const out = new Int32Array(Math.ceil(rows / pf) * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[Math.floor(r / pf) * cols + c]! |= (q[r * cols + c]! + half) << ((r % pf) * bits);
  }
  return out;
}

/** bitsandbytes' 4-bit packing: code 2i in the high nibble of byte i, code 2i + 1 in the low one. */
export function packNibbles(codes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) out[i >> 1]! |= i & 1 ? codes[i]! : codes[i]! << 4;
  return out;
}

// ---------------------------------------------------------------- Python-compatible JSON

/** A number Python must read as a float (json.dumps writes `6.0`, not `6`). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** Python's `repr(float)`: shortest round-trip digits, `.0` on integers, exponent form below 1e-4 and from 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, expText] = x.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  const digits = mantissa.replace('-', '').replace('.', '');
  const sign = x < 0 ? '-' : '';
  if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || '0'}`;
}

/** JSON as Python's json.dumps writes it (`, ` and `: ` separators, or `indent`), PyFloat as floats. */
export function pythonJson(value: unknown, indent?: number, depth = 0): string {
  if (value instanceof PyFloat) return pythonFloatRepr(value.value);
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const pad = indent === undefined ? '' : `\n${' '.repeat(indent * (depth + 1))}`;
  const end = indent === undefined ? '' : `\n${' '.repeat(indent * depth)}`;
  const sep = indent === undefined ? ', ' : ',';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[${value.map((v) => pad + pythonJson(v, indent, depth + 1)).join(sep)}${end}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) return '{}';
  return `{${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${pythonJson(v, indent, depth + 1)}`).join(sep)}${end}}`;
}

// ---------------------------------------------------------------- scales in the model's dtype

/** compressed-tensors keeps scales in the weight's dtype: 16-bit for 16-bit models, else f32. */
function scaleDtypeFor(t: TensorInfo): 'F32' | 'F16' | 'BF16' {
  return t.dtype === 'F16' || t.dtype === 'BF16' ? t.dtype : 'F32';
}

function roundTo(dtype: 'F32' | 'F16' | 'BF16', v: Float32Array): Float32Array {
  if (dtype === 'F32') return v;
  return dtype === 'BF16' ? v.map((x) => bf16ToF32(f32ToBf16(x))) : v.map((x) => f16ToF32(f32ToF16(x)));
}

function encodeFloats(dtype: 'F32' | 'F16' | 'BF16', v: Float32Array): Uint8Array {
  if (dtype === 'F32') return bytesOf(v);
  const out = new Uint16Array(v.length);
  const convert = dtype === 'BF16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < v.length; i++) out[i] = convert(v[i]!);
  return bytesOf(out);
}

/**
 * Levels for scales rounded to the stored dtype (the twin's rule, rtn.ts: round(x / s) clamped, zero
 * point added), so a loader's (q − z) · s is the quantization of x with the scale it actually reads.
 */
function requantizeInt(x: Float32Array, t: RtnTensor, scales: Float32Array, bits: number, symmetric: boolean): void {
  const l = groupLayout(t.scheme as Extract<QuantScheme, { kind: 'int' }>, t.rows, t.cols);
  const qmax = (1 << (bits - 1)) - 1;
  const qmin = symmetric ? -qmax : -qmax - 1;
  const q = t.q as Int8Array;
  forEachGroup(l.rows, l.cols, l.group, (g, from, to) => {
    const z = t.zeroPoints ? t.zeroPoints[g]! : 0;
    const s = scales[g]!;
    const lo = qmin - z;
    const hi = qmax - z;
    for (let i = from; i < to; i++) {
      const v = Math.fround(x[i]! / s);
      if (Number.isNaN(v)) {
        q[i] = z;
        continue;
      }
      // round half to even (rtn.ts roundHalfEven), inlined: Math.round takes ties upwards
      let level = Math.round(v);
      if (level - v === 0.5 && (level & 1) !== 0) level--;
      q[i] = Math.min(Math.max(level, lo), hi) + z;
    }
  });
}

function requantizeFp8(x: Float32Array, t: RtnTensor, scales: Float32Array, format: 'e4m3' | 'e5m2'): void {
  const l = groupLayout(t.scheme as Extract<QuantScheme, { kind: 'fp8' }>, t.rows, t.cols);
  forEachGroup(l.rows, l.cols, l.group, (g, from, to) => {
    for (let i = from; i < to; i++) t.q[i] = encodeFp8(Math.fround(x[i]! / scales[g]!), format);
  });
}

/** Calls `f(group index, first, end)` for each group of `group` values along the rows of [rows, cols]. */
function forEachGroup(rows: number, cols: number, group: number, f: (g: number, from: number, to: number) => void): void {
  const perRow = Math.ceil(cols / group);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < perRow; g++) f(r * perRow + g, r * cols + g * group, r * cols + Math.min(cols, (g + 1) * group));
  }
}

// ---------------------------------------------------------------- per-tensor jobs

type Sink = (bytes: Uint8Array) => Promise<void>;

interface TensorJob {
  source: TensorInfo;
  scheme: QuantScheme | undefined;
  specs: SafetensorsTensorSpec[];
  bytes: number;
  write(sink: Sink): Promise<void>;
}

interface JobContext {
  model: ModelInfo;
  files: FileAccess;
  quantizer: RtnQuantizer;
  signal?: AbortSignal;
}

function job(source: TensorInfo, scheme: QuantScheme | undefined, specs: SafetensorsTensorSpec[], write: (sink: Sink) => Promise<void>): TensorJob {
  return { source, scheme, specs, bytes: specs.reduce((s, x) => s + specByteLength(x), 0), write };
}

/**
 * f32 rows of a tensor in chunks whose row counts are multiples of `alignRows` (Infinity: the whole
 * tensor). Rows to quantize with `scheme` must be finite: a NaN or ±Inf stops the job (NON_FINITE)
 * before it reaches a scale.
 */
async function* rowChunks(ctx: JobContext, t: TensorInfo, alignRows: number, scheme?: QuantScheme) {
  const { cols } = matrixShape(t.shape);
  const unit = Math.max(1, cols) * alignRows;
  const maxElements = alignRows === Infinity ? Infinity : unit * Math.max(1, Math.floor(ROW_CHUNK_ELEMENTS / unit));
  for await (const chunk of tensorRowsF32(ctx.model, t, ctx.files, { maxElements, signal: ctx.signal })) {
    if (scheme) checkFiniteSource(chunk.values, t.name, formatScheme(scheme), chunk.row * cols);
    yield chunk;
  }
}

function needsWholeTensor(s: QuantScheme): boolean {
  return s.kind !== 'nf4' && s.granularity.kind === 'tensor';
}

const COPY_CHUNK = 16 << 20;

function keepJob(ctx: JobContext, t: TensorInfo): TensorJob {
  const plain = t.encoding !== 'quantized' && isSafetensorsDType(t.dtype);
  const dtype: SafetensorsDType = plain ? (t.dtype as SafetensorsDType) : 'F32';
  return job(t, undefined, [{ name: t.name, dtype, shape: t.shape }], async (sink) => {
    if (!plain) {
      for await (const chunk of rowChunks(ctx, t, 1)) await sink(bytesOf(chunk.values));
    } else if (t.encoding !== 'raw') {
      await sink(await readTensorBytes(ctx.model, t, ctx.files));
    } else {
      const src = await ctx.files.open(t.file);
      try {
        const buf = new Uint8Array(Math.min(COPY_CHUNK, t.byteLength));
        for (let done = 0; done < t.byteLength; ) {
          throwIfAborted(ctx.signal);
          const part = buf.subarray(0, Math.min(buf.length, t.byteLength - done));
          await readInto(src, t.byteOffset + done, part, t.name);
          await sink(part);
          done += part.length;
        }
      } finally {
        await src.close();
      }
    }
  });
}

function strategyOf(s: QuantScheme): 'tensor' | 'channel' | 'group' {
  if (s.kind === 'nf4') return 'group';
  return s.granularity.kind;
}

/** compressed-tensors pack-quantized (int) and float-quantized (FP8) parts of one weight. */
function compressedJob(ctx: JobContext, t: TensorInfo, scheme: Extract<QuantScheme, { kind: 'int' | 'fp8' }>): TensorJob {
  const m = moduleName(t.name);
  const [rows, cols] = t.shape as [number, number];
  const l = groupLayout(scheme, rows, cols);
  const perTensor = scheme.granularity.kind === 'tensor';
  const groups = perTensor ? 1 : l.groupsPerRow;
  const scaleShape = perTensor ? [1] : [rows, groups];
  const scaleDtype = scaleDtypeFor(t);
  const specs: SafetensorsTensorSpec[] = [];
  if (scheme.kind === 'int') {
    specs.push({ name: `${m}.weight_packed`, dtype: 'I32', shape: [rows, Math.ceil(cols / Math.floor(32 / scheme.bits))] });
  } else {
    specs.push({ name: `${m}.weight`, dtype: 'F8_E4M3', shape: [rows, cols] });
  }
  specs.push({ name: `${m}.weight_scale`, dtype: scaleDtype, shape: scaleShape });
  const asym = scheme.kind === 'int' && !scheme.symmetric;
  if (asym) {
    specs.push(
      perTensor
        ? { name: `${m}.weight_zero_point`, dtype: 'I8', shape: [1] }
        : { name: `${m}.weight_zero_point`, dtype: 'I32', shape: [Math.ceil(rows / Math.floor(32 / scheme.bits)), groups] },
    );
  }
  if (scheme.kind === 'int') specs.push({ name: `${m}.weight_shape`, dtype: 'I64', shape: [2] });
  return job(t, scheme, specs, async (sink) => {
    const scales = new Float32Array(perTensor ? 1 : rows * groups);
    const zeros = asym ? new Int8Array(scales.length) : undefined;
    for await (const chunk of rowChunks(ctx, t, perTensor ? Infinity : 1, scheme)) {
      const q = await ctx.quantizer(chunk.values, chunk.rows, cols, scheme);
      const stored = roundTo(scaleDtype, q.scales);
      if (stored !== q.scales) {
        if (scheme.kind === 'int') requantizeInt(chunk.values, q, stored, scheme.bits, scheme.symmetric);
        else requantizeFp8(chunk.values, q, stored, scheme.format);
      }
      scales.set(stored, perTensor ? 0 : chunk.row * groups);
      if (zeros && q.zeroPoints) zeros.set(q.zeroPoints, perTensor ? 0 : chunk.row * groups);
      await sink(scheme.kind === 'int' ? bytesOf(packInt32Rows(q.q as Int8Array, chunk.rows, cols, scheme.bits)) : bytesOf(q.q));
    }
    await sink(encodeFloats(scaleDtype, scales));
    if (zeros) await sink(perTensor ? bytesOf(zeros) : bytesOf(packInt32Columns(zeros, rows, groups, (scheme as { bits: number }).bits)));
    if (scheme.kind === 'int') await sink(bytesOf(BigInt64Array.from([BigInt(rows), BigInt(cols)])));
  });
}

/** The JSON dtype name bitsandbytes records (`str(torch.dtype)` without `torch.`). */
function torchDtypeName(dtype: DType): string {
  return dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32';
}

/** QuantState.as_dict(packed=True)'s `quant_state.bitsandbytes__nf4`: the non-tensor items, json.dumps'd. */
export function bnbQuantStateJson(shape: readonly number[], blockSize: number, dtype: string, nestedOffset?: number): string {
  const state: Record<string, unknown> = { quant_type: 'nf4', blocksize: blockSize, dtype, shape: [...shape] };
  if (nestedOffset !== undefined) {
    state.nested_blocksize = NESTED_BLOCK_SIZE;
    state.nested_dtype = 'float32';
    state.nested_offset = new PyFloat(nestedOffset);
  }
  return pythonJson(state);
}

/**
 * Block absmax values of an NF4 tensor (the quantizer's, clip search included), streamed: a double
 * quantized tensor's JSON holds their mean, which the shard header must know before any data.
 */
async function nf4Absmax(ctx: JobContext, t: TensorInfo, scheme: Extract<QuantScheme, { kind: 'nf4' }>, alignRows: number): Promise<Float32Array> {
  const n = elementCount2(t.shape);
  const absmax = new Float32Array(Math.ceil(n / scheme.blockSize));
  const { cols } = matrixShape(t.shape);
  const raw = { ...scheme, doubleQuant: false };
  for await (const chunk of rowChunks(ctx, t, alignRows, scheme)) {
    const q = await ctx.quantizer(chunk.values, chunk.rows, cols, raw);
    absmax.set(q.scales, (chunk.row * cols) / scheme.blockSize);
  }
  return absmax;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

async function bnbJob(ctx: JobContext, t: TensorInfo, scheme: Extract<QuantScheme, { kind: 'nf4' }>): Promise<TensorJob> {
  const n = elementCount2(t.shape);
  const { cols } = matrixShape(t.shape);
  const blocks = Math.ceil(n / scheme.blockSize);
  const alignRows = scheme.blockSize / gcd(Math.max(1, cols), scheme.blockSize);
  const dtype = torchDtypeName(t.dtype);
  const offset = scheme.doubleQuant ? doubleQuantizeAbsmax(await nf4Absmax(ctx, t, scheme, alignRows)).offset : undefined;
  const state = new TextEncoder().encode(bnbQuantStateJson(t.shape, scheme.blockSize, dtype, offset));
  const specs: SafetensorsTensorSpec[] = [
    { name: t.name, dtype: 'U8', shape: [Math.ceil(n / 2), 1] },
    { name: `${t.name}.absmax`, dtype: scheme.doubleQuant ? 'U8' : 'F32', shape: [blocks] },
    { name: `${t.name}.quant_map`, dtype: 'F32', shape: [16] },
  ];
  if (scheme.doubleQuant) {
    specs.push(
      { name: `${t.name}.nested_absmax`, dtype: 'F32', shape: [Math.ceil(blocks / NESTED_BLOCK_SIZE)] },
      { name: `${t.name}.nested_quant_map`, dtype: 'F32', shape: [256] },
    );
  }
  specs.push({ name: `${t.name}.quant_state.bitsandbytes__nf4`, dtype: 'U8', shape: [state.length] });
  return job(t, scheme, specs, async (sink) => {
    const absmax = new Float32Array(blocks);
    const raw = { ...scheme, doubleQuant: false };
    for await (const chunk of rowChunks(ctx, t, alignRows, scheme)) {
      const q = await ctx.quantizer(chunk.values, chunk.rows, cols, raw);
      absmax.set(q.scales, (chunk.row * cols) / scheme.blockSize);
      await sink(packNibbles(q.q as Uint8Array));
    }
    if (scheme.doubleQuant) {
      const nested = doubleQuantizeAbsmax(absmax);
      if (nested.offset !== offset) throw new QuantLensError('INTERNAL', 'the quantizer gave different block absmax values on a second pass', { tensor: t.name });
      await sink(nested.indices);
      await sink(bytesOf(NF4_LEVELS));
      await sink(bytesOf(nested.absmax));
      await sink(bytesOf(DYNAMIC_MAP));
    } else {
      await sink(bytesOf(absmax));
      await sink(bytesOf(NF4_LEVELS));
    }
    await sink(state);
  });
}

/** BF16 of quantize → dequantize, in the original name and shape. */
function fakeQuantJob(ctx: JobContext, t: TensorInfo, scheme: QuantScheme): TensorJob {
  const { cols } = matrixShape(t.shape);
  const whole = needsWholeTensor(scheme) || (scheme.kind === 'nf4' && scheme.doubleQuant);
  const alignRows = scheme.kind === 'nf4' ? scheme.blockSize / gcd(Math.max(1, cols), scheme.blockSize) : 1;
  return job(t, scheme, [{ name: t.name, dtype: 'BF16', shape: t.shape }], async (sink) => {
    for await (const chunk of rowChunks(ctx, t, whole ? Infinity : alignRows, scheme)) {
      const q = await ctx.quantizer(chunk.values, chunk.rows, cols, scheme);
      await sink(encodeFloats('BF16', dequantizeRtn(q)));
    }
  });
}

// ---------------------------------------------------------------- configs

function weightsArgs(s: Extract<QuantScheme, { kind: 'int' | 'fp8' }>): Record<string, unknown> {
  const strategy = strategyOf(s);
  return {
    num_bits: s.kind === 'int' ? s.bits : 8,
    type: s.kind === 'int' ? 'int' : 'float',
    symmetric: s.kind === 'int' ? s.symmetric : true,
    group_size: s.granularity.kind === 'group' ? s.granularity.size : null,
    strategy,
    block_structure: null,
    dynamic: false,
    actorder: null,
    observer: s.mse ? 'mse' : 'minmax',
    observer_kwargs: {},
  };
}

/**
 * compressed-tensors `quantization_config`: one config group per scheme (sorted by name), targets the
 * module names, `ignore` the Linear weights left in float (the output head among them).
 */
export function compressedTensorsQuantizationConfig(assignment: ReadonlyMap<string, QuantScheme>, ignore: readonly string[]): Record<string, unknown> {
  const byScheme = new Map<string, string[]>();
  for (const [name, s] of assignment) byScheme.set(formatScheme(s), [...(byScheme.get(formatScheme(s)) ?? []), moduleName(name)]);
  const groups: Record<string, unknown> = {};
  const formats = new Set<string>();
  [...byScheme.keys()].sort().forEach((key, i) => {
    const s = parseScheme(key) as Extract<QuantScheme, { kind: 'int' | 'fp8' }>;
    const format = s.kind === 'int' ? 'pack-quantized' : 'float-quantized';
    formats.add(format);
    groups[`group_${i}`] = { targets: byScheme.get(key)!.sort(), weights: weightsArgs(s), input_activations: null, output_activations: null, format };
  });
  return {
    config_groups: groups,
    quant_method: 'compressed-tensors',
    kv_cache_scheme: null,
    format: formats.size === 1 ? [...formats][0] : 'mixed-precision',
    quantization_status: 'compressed',
    global_compression_ratio: null,
    ignore: [...ignore],
  };
}

/** transformers' BitsAndBytesConfig.to_dict() for a pre-quantized NF4 model (keys sorted, as config.json is saved). */
export function bitsandbytesQuantizationConfig(doubleQuant: boolean, computeDtype: string, skipModules: readonly string[] | null): Record<string, unknown> {
  return {
    _load_in_4bit: true,
    _load_in_8bit: false,
    bnb_4bit_compute_dtype: computeDtype,
    bnb_4bit_quant_storage: 'uint8',
    bnb_4bit_quant_type: 'nf4',
    bnb_4bit_use_double_quant: doubleQuant,
    llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false,
    llm_int8_skip_modules: skipModules ? [...skipModules] : null,
    // BitsAndBytesConfig.post_init insists on a float
    llm_int8_threshold: new PyFloat(6),
    load_in_4bit: true,
    load_in_8bit: false,
    quant_method: 'bitsandbytes',
  };
}

// ---------------------------------------------------------------- side files

/** Files copied beside the weights: tokenizer, generation and chat-template files. */
const SIDE_FILES = /^(tokenizer(_config)?\.json|tokenizer\.model|special_tokens_map\.json|added_tokens\.json|vocab\.(json|txt)|merges\.txt|generation_config\.json|chat_template\.(json|jinja)|preprocessor_config\.json|.*\.tiktoken)$/;

function inputFolder(model: ModelInfo): string {
  return dirname(model.files[0]!);
}

async function readConfigText(dir: string, files: FileAccess): Promise<string | undefined> {
  const path = join(dir, 'config.json');
  if (!(await files.exists(path))) return undefined;
  const s = await stat(path);
  if (s.size > MAX_JSON_SIDE_FILE_BYTES) throw new QuantLensError('LIMIT_EXCEEDED', `config.json has ${s.size} bytes, the limit is ${MAX_JSON_SIDE_FILE_BYTES}`, { file: path });
  return readFile(path, 'utf8');
}

/**
 * config.json with `quantization_config` set (or removed when undefined). The input's text is kept
 * byte for byte where possible (Python float lexemes such as `10000.0` survive); a config that
 * already has a quantization_config is rewritten.
 */
export function configWithQuantization(text: string | undefined, quantization: Record<string, unknown> | undefined): string {
  let parsed: Record<string, unknown> = {};
  if (text !== undefined) {
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new QuantLensError('INVALID_JSON', `config.json is not valid JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new QuantLensError('INVALID_JSON', 'config.json is not a JSON object');
  }
  const had = Object.prototype.hasOwnProperty.call(parsed, 'quantization_config');
  if (text !== undefined && !had) {
    if (!quantization) return text;
    const close = text.lastIndexOf('}');
    const body = text.slice(0, close).trimEnd();
    const sep = body.endsWith('{') ? '' : ',';
    return `${body}${sep}\n  "quantization_config": ${pythonJson(quantization, 2, 1)}\n}\n`;
  }
  const out: Record<string, unknown> = { ...parsed };
  delete out.quantization_config;
  if (quantization) out.quantization_config = quantization;
  return `${pythonJson(out, 2)}\n`;
}

// ---------------------------------------------------------------- the pipeline

function planAssignment(model: ModelInfo, options: SafetensorsQuantizeOptions): Map<string, QuantScheme> {
  if ((options.scheme === undefined) === (options.plan === undefined)) throw new QuantLensError('USAGE', 'give either a scheme or a plan');
  const out = new Map<string, QuantScheme>();
  if (options.scheme !== undefined) {
    const s = parseScheme(options.scheme);
    for (const t of model.tensors) if (isQuantizableWeight(t)) out.set(t.name, s);
    return out;
  }
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  for (const [name, scheme] of Object.entries(options.plan!)) {
    const t = byName.get(name);
    if (!t) throw new QuantLensError('USAGE', `the plan names ${name}, which this model does not hold`, { tensor: name });
    if (t.shape.length < 2 && !options.fakeQuant) throw new QuantLensError('USAGE', `the plan quantizes ${name}, a ${t.shape.length}-D tensor; the safetensors layouts quantize matrices`, { tensor: name });
    out.set(name, parseScheme(scheme));
  }
  return out;
}

function chooseLayout(assignment: ReadonlyMap<string, QuantScheme>, fakeQuant: boolean): SafetensorsLayout {
  if (fakeQuant) return 'fake-quant';
  const kinds = new Set([...assignment.values()].map((s) => s.kind));
  if (kinds.has('nf4')) {
    if (kinds.size > 1) throw new QuantLensError('USAGE', 'NF4 is written in the bitsandbytes layout and int/FP8 in compressed-tensors: one output cannot mix them (use --fake-quant to evaluate a mix)');
    return 'bitsandbytes';
  }
  return 'compressed-tensors';
}

/** Checks a scheme fits a tensor in a layout; returns why not, or undefined. */
function misfit(t: TensorInfo, s: QuantScheme, layout: SafetensorsLayout): string | undefined {
  const cols = t.shape[t.shape.length - 1] ?? 1;
  if (s.kind !== 'nf4' && s.granularity.kind === 'group' && cols % s.granularity.size !== 0) return `rows of ${cols} are not whole groups of ${s.granularity.size}`;
  if (layout === 'compressed-tensors' && s.kind === 'fp8' && s.format === 'e5m2') return 'compressed-tensors stores FP8 as e4m3 only';
  return undefined;
}

const FUSED_SIBLINGS: ReadonlyArray<readonly string[]> = [['q_proj', 'k_proj', 'v_proj'], ['gate_proj', 'up_proj']];

/** vLLM fuses q/k/v and gate/up into one layer, which must share one scheme. */
function fusedMismatches(assignment: ReadonlyMap<string, QuantScheme>): string[] {
  const out: string[] = [];
  for (const name of assignment.keys()) {
    for (const group of FUSED_SIBLINGS) {
      const m = new RegExp(`^(.*\\.)${group[0]}\\.weight$`).exec(name);
      if (!m) continue;
      const names = group.map((g) => `${m[1]}${g}.weight`);
      const schemes = new Set(names.map((n) => (assignment.has(n) ? formatScheme(assignment.get(n)!) : 'float')));
      if (schemes.size > 1) out.push(`${names.map(moduleName).join(', ')} get ${[...schemes].join(' / ')}`);
    }
  }
  return out;
}

function shardFileName(i: number, count: number): string {
  return count === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}.safetensors`;
}

export async function quantizeToSafetensors(input: string, output: string, options: SafetensorsQuantizeOptions): Promise<SafetensorsQuantizeResult> {
  const files = options.files ?? nodeFileAccess;
  const model = await openModel(input, { signal: options.signal, files });
  const assignment = planAssignment(model, options);
  const layout = chooseLayout(assignment, options.fakeQuant === true);
  const diagnostics: Diagnostic[] = [];
  for (const [name, s] of [...assignment]) {
    const t = model.tensors.find((x) => x.name === name)!;
    const why = misfit(t, s, layout);
    if (!why) continue;
    if (options.plan) throw new QuantLensError('USAGE', `${formatScheme(s)} does not fit ${name}: ${why}`, { tensor: name });
    if (layout === 'compressed-tensors' && s.kind === 'fp8') throw new QuantLensError('UNSUPPORTED', `${formatScheme(s)}: ${why}; use fp8-e4m3, or --fake-quant`);
    assignment.delete(name);
    diagnostics.push({ severity: 'warning', code: 'LEFT_IN_FLOAT', tensor: name, message: `${why}: kept as ${t.dtype}` });
  }
  if (assignment.size === 0) {
    const unfit = diagnostics.find((d) => d.code === 'LEFT_IN_FLOAT');
    const why = unfit
      ? `${unfit.tensor}: ${unfit.message}`
      : options.scheme !== undefined
        ? 'a scheme quantizes the 2-D Linear weights (names ending in .weight, embeddings, norms and the output head aside), and this model has none; name tensors with a plan to quantize others'
        : 'the plan names no tensor';
    throw new QuantLensError('USAGE', `no tensor of this model is quantized by the given scheme or plan (${why})`);
  }
  if (layout === 'compressed-tensors') {
    for (const s of new Set([...assignment.values()].map(formatScheme))) {
      const p = parseScheme(s);
      if (p.kind === 'int' && (![4, 8].includes(p.bits) || p.granularity.kind === 'tensor')) {
        diagnostics.push({ severity: 'info', code: 'RUNTIME_SUPPORT', message: `${s}: vLLM's WNA16 kernels take 4- and 8-bit channel or group schemes; compressed-tensors itself decompresses this one` });
      }
    }
    for (const m of fusedMismatches(assignment)) diagnostics.push({ severity: 'warning', code: 'FUSED_MISMATCH', message: `vLLM fuses these layers and needs one scheme for them: ${m}` });
  }

  const ctx: JobContext = { model, files, quantizer: options.quantizer ?? twinRtnQuantizer, signal: options.signal };
  const jobs: TensorJob[] = [];
  for (const t of model.tensors) {
    throwIfAborted(options.signal);
    const s = assignment.get(t.name);
    if (!s) jobs.push(keepJob(ctx, t));
    else if (layout === 'fake-quant') jobs.push(fakeQuantJob(ctx, t, s));
    else if (s.kind === 'nf4') jobs.push(await bnbJob(ctx, t, s));
    else jobs.push(compressedJob(ctx, t, s));
  }

  const linearLeft = model.tensors.filter((t) => !assignment.has(t.name) && t.shape.length === 2 && t.name.endsWith('.weight') && !['embed', 'norm'].includes(describeTensor(t.name).role)).map((t) => moduleName(t.name));
  let quantization: Record<string, unknown> | undefined;
  if (layout === 'compressed-tensors') quantization = compressedTensorsQuantizationConfig(assignment, linearLeft);
  if (layout === 'bitsandbytes') {
    const doubleQuant = [...assignment.values()].some((s) => s.kind === 'nf4' && s.doubleQuant);
    const defaultSkip = linearLeft.every((m) => describeTensor(`${m}.weight`).role === 'output');
    const first = model.tensors.find((t) => assignment.has(t.name))!;
    quantization = bitsandbytesQuantizationConfig(doubleQuant, torchDtypeName(first.dtype), defaultSkip ? null : linearLeft);
  }

  // shards: whole tensors (with their companions) in model order, each shard at most shardBytes
  const shardBytes = options.shardBytes ?? DEFAULT_SHARD_BYTES;
  const shards: TensorJob[][] = [[]];
  let size = 0;
  for (const j of jobs) {
    if (size > 0 && size + j.bytes > shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push(j);
    size += j.bytes;
  }
  const totalBytes = jobs.reduce((s, j) => s + j.bytes, 0);
  const names = shards.map((_, i) => shardFileName(i, shards.length));
  const metadata: Record<string, string> = { format: 'pt' };
  if (layout === 'fake-quant') metadata['quantlens.fake_quant'] = JSON.stringify(Object.fromEntries([...assignment].map(([n, s]) => [n, formatScheme(s)])));

  const parent = dirname(output);
  if (await files.exists(output)) throw new QuantLensError('OUTPUT', `${output} already exists; QuantLens never overwrites`, { file: output });
  const temp = join(parent, `.${basename(output)}.${randomBytes(4).toString('hex')}.quantlens-tmp`);
  try {
    await mkdir(temp);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' ? `the folder ${parent} is not writable` : e.message;
    throw new QuantLensError('OUTPUT', `cannot write ${output}: ${why}`, { file: output, cause: err });
  }
  const written: string[] = [];
  try {
    await checkFreeSpace(parent, totalBytes);
    const inputBytes = model.tensors.reduce((s, t) => s + t.byteLength, 0);
    let bytesDone = 0;
    let tensorsDone = 0;
    for (let i = 0; i < shards.length; i++) {
      const writer = await SafetensorsWriter.create(join(temp, names[i]!), shards[i]!.flatMap((j) => j.specs), metadata);
      try {
        for (const j of shards[i]!) {
          throwIfAborted(options.signal);
          options.onProgress?.({ tensorsDone, tensors: jobs.length, bytesDone, bytesTotal: inputBytes, tensor: j.source.name });
          await j.write((b) => writer.write(b));
          bytesDone += j.source.byteLength;
          tensorsDone++;
        }
        await writer.close();
      } catch (err) {
        await writer.abort();
        throw err;
      }
      written.push(names[i]!);
    }
    options.onProgress?.({ tensorsDone, tensors: jobs.length, bytesDone, bytesTotal: inputBytes, tensor: '' });
    if (shards.length > 1) {
      const weightMap: Record<string, string> = {};
      const entries = shards.flatMap((s, i) => s.flatMap((j) => j.specs.map((spec) => [spec.name, names[i]!] as const)));
      for (const [n, f] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) weightMap[n] = f;
      await writeFile(join(temp, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2)}\n`);
      written.push('model.safetensors.index.json');
    }
    const dir = inputFolder(model);
    const configText = await readConfigText(dir, files);
    if (configText !== undefined || quantization) {
      await writeFile(join(temp, 'config.json'), configWithQuantization(configText, quantization));
      written.push('config.json');
    }
    for (const name of (await files.list(dir)).filter((n) => SIDE_FILES.test(n))) {
      await copyFile(join(dir, name), join(temp, name));
      written.push(name);
    }
    throwIfAborted(options.signal);
    if (await files.exists(output)) throw new QuantLensError('OUTPUT', `${output} appeared while quantizing; QuantLens never overwrites`, { file: output });
    await rename(temp, output);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    throw toQuantLensError(err);
  }
  const params = [...model.tensors].reduce((s, t) => s + elementCount2(t.shape), 0);
  return {
    output,
    layout,
    files: written,
    tensors: model.tensors.map((t) => ({ name: t.name, from: t.dtype, scheme: assignment.has(t.name) ? formatScheme(assignment.get(t.name)!) : null })),
    bytes: totalBytes,
    bitsPerWeight: params > 0 ? (totalBytes * 8) / params : 0,
    ...(quantization && { quantizationConfig: JSON.parse(pythonJson(quantization)) as Record<string, unknown> }),
    diagnostics,
  };
}
