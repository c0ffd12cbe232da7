/**
 * The one generator of synthetic checkpoints for tests, benchmarks and the demo: seeded, streamed
 * tensor by tensor (a 1 GB model never sits in memory), with weights shaped like trained ones:
 * per-row and per-column scales drawn log-normally, a few outlier input columns per matrix
 * (the LLM.int8 phenomenon), norms near 1.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { encodeGgufHeader, layoutGgufTensorData } from './gguf/write';
import type { MetadataValue } from './model';
import { f32ToF16 } from './quant/fp16';

export interface LlamaShape {
  hidden: number;
  ffn: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

export type GenDType = 'F32' | 'F16' | 'BF16';

export interface GenTensor {
  name: string;
  /** Row-major, outermost first. */
  shape: number[];
  kind: 'matrix' | 'norm' | 'embed';
}

export const PRESETS = {
  /** Llama-shaped, ~1 GB in BF16, written as two shards with an index. */
  'llama-1gb': { shape: { hidden: 2048, ffn: 5632, layers: 8, heads: 16, kvHeads: 4, vocab: 32000 }, dtype: 'BF16', shardBytes: 600e6 },
  /** ~1.1 B parameters (TinyLlama's shape). */
  'llama-1b': { shape: { hidden: 2048, ffn: 5632, layers: 22, heads: 32, kvHeads: 4, vocab: 32000 }, dtype: 'BF16', shardBytes: 2e9 },
  /** The demo workspace's model: rows of 512 and 1408, so K-quants apply. */
  demo: { shape: { hidden: 512, ffn: 1408, layers: 4, heads: 8, kvHeads: 4, vocab: 4096 }, dtype: 'F16', shardBytes: Infinity },
  /** Small enough for unit tests, rows of 256 so every GGUF type applies. */
  tiny: { shape: { hidden: 256, ffn: 512, layers: 2, heads: 4, kvHeads: 2, vocab: 256 }, dtype: 'F32', shardBytes: Infinity },
} as const satisfies Record<string, { shape: LlamaShape; dtype: GenDType; shardBytes: number }>;

export type PresetName = keyof typeof PRESETS;

/** Tensors of a Llama-family decoder under Hugging Face names. */
export function llamaTensors(s: LlamaShape): GenTensor[] {
  const headDim = s.hidden / s.heads;
  const kv = s.kvHeads * headDim;
  const t: GenTensor[] = [{ name: 'model.embed_tokens.weight', shape: [s.vocab, s.hidden], kind: 'embed' }];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}`;
    t.push(
      { name: `${p}.input_layernorm.weight`, shape: [s.hidden], kind: 'norm' },
      { name: `${p}.self_attn.q_proj.weight`, shape: [s.hidden, s.hidden], kind: 'matrix' },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kv, s.hidden], kind: 'matrix' },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kv, s.hidden], kind: 'matrix' },
      { name: `${p}.self_attn.o_proj.weight`, shape: [s.hidden, s.hidden], kind: 'matrix' },
      { name: `${p}.post_attention_layernorm.weight`, shape: [s.hidden], kind: 'norm' },
      { name: `${p}.mlp.gate_proj.weight`, shape: [s.ffn, s.hidden], kind: 'matrix' },
      { name: `${p}.mlp.up_proj.weight`, shape: [s.ffn, s.hidden], kind: 'matrix' },
      { name: `${p}.mlp.down_proj.weight`, shape: [s.hidden, s.ffn], kind: 'matrix' },
    );
  }
  t.push({ name: 'model.norm.weight', shape: [s.hidden], kind: 'norm' }, { name: 'lm_head.weight', shape: [s.vocab, s.hidden], kind: 'matrix' });
  return t;
}

/** Hugging Face config.json for a generated model. */
export function llamaConfig(s: LlamaShape, dtype: GenDType): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    intermediate_size: s.ffn,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.hidden / s.heads,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    quantlens_generated: true,
  };
}

/** splitmix32: small, fast, and every seed gives a different stream. */
export class Rng {
  private state: number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  uint32(): number {
    this.state = (this.state + 0x9e3779b9) | 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  }
  /** Uniform in (0, 1). */
  uniform(): number {
    return (this.uint32() + 0.5) / 4294967296;
  }
  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const a = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(a);
    return r * Math.cos(a);
  }
}

function hashName(name: string, seed: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Outlier input columns per matrix and their gain range. */
const OUTLIER_COLUMNS = 4;

/**
 * Streams a tensor's values in row chunks of at most `chunkElements`, deterministically from
 * (seed, name): the same tensor gets the same numbers whatever the output format.
 */
export function* tensorValues(t: GenTensor, seed: number, chunkElements = 1 << 20): Generator<Float32Array> {
  const rng = new Rng(hashName(t.name, seed));
  const rows = t.shape.length === 1 ? 1 : t.shape[0];
  const cols = t.shape.length === 1 ? t.shape[0] : t.shape.slice(1).reduce((a, b) => a * b, 1);
  if (t.kind === 'norm') {
    const out = new Float32Array(cols);
    for (let c = 0; c < cols; c++) out[c] = 1 + 0.05 * rng.normal();
    yield out;
    return;
  }
  const colScale = new Float32Array(cols);
  for (let c = 0; c < cols; c++) colScale[c] = Math.exp(0.2 * rng.normal());
  if (t.kind === 'matrix') {
    for (let i = 0; i < OUTLIER_COLUMNS; i++) colScale[rng.uint32() % cols] *= 8 + 12 * rng.uniform();
  }
  const sigma = t.kind === 'embed' ? 0.02 : 1 / Math.sqrt(cols);
  const rowsPerChunk = Math.max(1, Math.floor(chunkElements / cols));
  for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
    const n = Math.min(rowsPerChunk, rows - r0);
    const out = new Float32Array(n * cols);
    for (let r = 0; r < n; r++) {
      const rowScale = sigma * Math.exp(0.3 * rng.normal());
      const base = r * cols;
      for (let c = 0; c < cols; c++) out[base + c] = rng.normal() * rowScale * colScale[c];
    }
    yield out;
  }
}

const DTYPE_BYTES: Record<GenDType, number> = { F32: 4, F16: 2, BF16: 2 };

/** Encodes f32 values as `dtype` little-endian bytes (round to nearest even). */
export function encodeValues(values: Float32Array, dtype: GenDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint16Array(values.length);
  if (dtype === 'F16') {
    for (let i = 0; i < values.length; i++) out[i] = f32ToF16(values[i]);
  } else {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) {
      const b = bits[i];
      // Generated values are finite, so the NaN case of round-to-nearest-even never arises.
      out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  }
  return new Uint8Array(out.buffer);
}

export function tensorBytes(t: GenTensor, dtype: GenDType): number {
  return t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
}

/**
 * Writes safetensors files: one, or shards of at most `shardBytes` with a `model.safetensors.index.json`.
 * Returns the written paths (index last when sharded).
 */
export function writeSafetensorsModel(dir: string, tensors: GenTensor[], dtype: GenDType, seed: number, shardBytes = Infinity): string[] {
  mkdirSync(dir, { recursive: true });
  const shards: GenTensor[][] = [[]];
  let size = 0;
  for (const t of tensors) {
    const b = tensorBytes(t, dtype);
    if (size > 0 && size + b > shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += b;
  }
  const names = shards.length === 1 ? ['model.safetensors'] : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((shard, i) => {
    writeSafetensorsFile(join(dir, names[i]), shard, dtype, seed);
    for (const t of shard) {
      weightMap[t.name] = names[i];
      total += tensorBytes(t, dtype);
    }
  });
  const paths = names.map((n) => join(dir, n));
  if (shards.length > 1) {
    const index = join(dir, 'model.safetensors.index.json');
    writeText(index, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
    paths.push(index);
  }
  return paths;
}

function writeSafetensorsFile(path: string, tensors: GenTensor[], dtype: GenDType, seed: number): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', generator: 'quantlens' } };
  let offset = 0;
  for (const t of tensors) {
    const b = tensorBytes(t, dtype);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + b] };
    offset += b;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // 8-byte aligned data, as the Rust crate writes
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, head);
    writeSync(fd, Buffer.from(json));
    for (const t of tensors) for (const chunk of tensorValues(t, seed)) writeSync(fd, encodeValues(chunk, dtype));
  } finally {
    closeSync(fd);
  }
}

export function writeText(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/** Tensors of the many-tensor GGUF preset: `blocks` × 4 small matrices (header parsing dominates). */
export function manyTensors(blocks: number): GenTensor[] {
  const t: GenTensor[] = [];
  for (let b = 0; b < blocks; b++) {
    for (const role of ['attn_q', 'attn_k', 'ffn_up', 'ffn_down']) t.push({ name: `blk.${b}.${role}.weight`, shape: [8, 32], kind: 'matrix' });
  }
  return t;
}

/** Writes a GGUF v3 file (32-byte alignment) holding `tensors` as `dtype`, streamed. */
export function writeGgufModel(path: string, tensors: GenTensor[], dtype: GenDType, seed: number, metadata: Record<string, MetadataValue> = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const alignment = 32;
  const specs = tensors.map((t) => ({ name: t.name, dtype, shape: t.shape }));
  const { offsets } = layoutGgufTensorData(specs, alignment);
  const header = encodeGgufHeader({
    version: 3,
    alignment,
    metadata: { 'general.architecture': { type: 'string', value: 'quantlens' }, 'general.name': { type: 'string', value: 'generated' }, ...metadata },
    tensors: specs.map((t, i) => ({ ...t, offset: offsets[i] })),
  });
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    let at = 0;
    tensors.forEach((t, i) => {
      if (offsets[i] > at) writeSync(fd, new Uint8Array(offsets[i] - at));
      at = offsets[i];
      for (const chunk of tensorValues(t, seed)) {
        const bytes = encodeValues(chunk, dtype);
        writeSync(fd, bytes);
        at += bytes.length;
      }
    });
  } finally {
    closeSync(fd);
  }
}
