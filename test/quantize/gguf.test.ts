import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { PRESETS, llamaTensors, writeSafetensorsModel } from '../../src/core/generate';
import { quantizeToGguf } from '../../src/core/quantize/to-gguf';
import { openModel } from '../../src/core/readers';
import { GGUF_QUANT_TYPES } from '../../src/core/quant/ggml-quantize';
import { safetensorsBytes } from '../fixtures/safetensors-builder';

const models = resolve(__dirname, '../../../shared/models');
const stories = join(models, 'stories260K');
const hasModels = existsSync(stories);

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'ql-quant-'));
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

const REFERENCES: Array<[string, string]> = [
  ['Q8_0', 'stories260K-Q8_0.gguf'],
  ['Q4_0', 'quant-ref/stories260K-Q4_0.gguf'],
  ['Q4_1', 'quant-ref/stories260K-Q4_1.gguf'],
  ['Q5_0', 'quant-ref/stories260K-Q5_0.gguf'],
  ['Q5_1', 'quant-ref/stories260K-Q5_1.gguf'],
  ['Q4_K_M', 'stories260K-Q4_K_M.gguf'],
  ['Q5_K_M', 'quant-ref/stories260K-Q5_K_M.gguf'],
  ['Q6_K', 'quant-ref/stories260K-Q6_K.gguf'],
];

test('GGUF → GGUF is byte-identical to llama-quantize on stories260K', { skip: !hasModels && 'no ../shared/models' }, async () => {
  const dir = scratch();
  const input = join(stories, 'stories260K-f32.gguf');
  const before = sha256(input);
  try {
    for (const [type, ref] of REFERENCES) {
      const out = join(dir, `${type}.gguf`);
      const r = await quantizeToGguf(input, out, { type });
      const a = readFileSync(out);
      const b = readFileSync(join(stories, ref));
      if (!a.equals(b)) {
        let at = 0;
        while (at < Math.min(a.length, b.length) && a[at] === b[at]) at++;
        assert.fail(`${type}: ${a.length} bytes vs ${ref}'s ${b.length}, first difference at byte ${at}`);
      }
      // ffn_down rows of 172 fit no block type llama-quantize would pick: F16, and said so.
      assert.ok(r.diagnostics.some((d) => d.code === 'TYPE_FALLBACK' && d.tensor === 'blk.0.ffn_down.weight'), type);
    }
    assert.equal(sha256(input), before, 'the input is never modified');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--pure on a safetensors tensor writes libggml\'s blocks for every GGUF type', { skip: !hasModels && 'no ../shared/models' }, async () => {
  const dir = scratch();
  try {
    for (const c of ['gauss_256', 'real_mlp_512']) {
      const input = join(models, 'ggml-golden', c, 'src.safetensors');
      for (const type of GGUF_QUANT_TYPES) {
        const out = join(dir, `${c}-${type}.gguf`);
        await quantizeToGguf(input, out, { type: type === 'MXFP4' ? 'MXFP4_MOE' : type, pure: true });
        const model = await openModel(out);
        const w = model.tensors.find((t) => t.name === 'w')!;
        assert.equal(w.dtype, type, `${c} ${type}`);
        const got = readFileSync(out).subarray(w.byteOffset, w.byteOffset + w.byteLength);
        const want = readFileSync(join(models, 'ggml-golden', c, `${type}.bin`));
        assert.ok(Buffer.from(got).equals(want), `${c} ${type}: blocks differ from libggml's`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a generated model quantizes to Q4_K_M with K-quants, F32 norms and nothing left behind', async () => {
  const dir = scratch();
  try {
    const src = join(dir, 'tiny');
    writeSafetensorsModel(src, llamaTensors(PRESETS.tiny.shape), 'F32', 7);
    const out = join(dir, 'tiny-Q4_K_M.gguf');
    const progress: number[] = [];
    const r = await quantizeToGguf(src, out, { type: 'Q4_K_M', onProgress: (p) => progress.push(p.tensorsDone) });
    const m = await openModel(out);
    const byName = new Map(m.tensors.map((t) => [t.name, t]));
    assert.equal(byName.get('model.layers.0.self_attn.q_proj.weight')!.dtype, 'Q4_K');
    assert.equal(byName.get('model.layers.0.input_layernorm.weight')!.dtype, 'F32');
    assert.equal(byName.get('lm_head.weight')!.dtype, 'Q6_K', 'the output tensor gets Q6_K as in llama-quantize');
    assert.equal(m.metadata['general.architecture'].value, 'quantlens');
    assert.equal(m.metadata['general.file_type'].value, 15);
    assert.ok(r.bitsPerWeight > 4 && r.bitsPerWeight < 6, `bpw ${r.bitsPerWeight}`);
    assert.equal(progress[progress.length - 1], m.tensors.length);
    assert.deepEqual(readdirSync(dir).sort(), ['tiny', 'tiny-Q4_K_M.gguf']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cancelled quantize leaves no output and no temp file; an existing output is never replaced', async () => {
  const dir = scratch();
  try {
    const src = join(dir, 'tiny');
    writeSafetensorsModel(src, llamaTensors(PRESETS.tiny.shape), 'F32', 7);
    const abort = new AbortController();
    const out = join(dir, 'cancelled.gguf');
    await assert.rejects(
      quantizeToGguf(src, out, { type: 'Q4_K_M', signal: abort.signal, onProgress: (p) => p.tensorsDone === 3 && abort.abort() }),
      (e: Error & { code?: string }) => e.code === 'CANCELLED',
    );
    assert.deepEqual(readdirSync(dir), ['tiny']);
    const done = join(dir, 'done.gguf');
    await quantizeToGguf(src, done, { type: 'Q8_0' });
    const before = sha256(done);
    await assert.rejects(quantizeToGguf(src, done, { type: 'Q4_0' }), (e: Error & { code?: string }) => e.code === 'OUTPUT');
    assert.equal(sha256(done), before);
    assert.deepEqual(readdirSync(dir).sort(), ['done.gguf', 'tiny']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an already quantized GGUF is requantized only when allowed, as llama-quantize --allow-requantize', async () => {
  const dir = scratch();
  try {
    const src = join(dir, 'tiny');
    writeSafetensorsModel(src, llamaTensors(PRESETS.tiny.shape), 'F32', 7);
    const q8 = join(dir, 'q8.gguf');
    await quantizeToGguf(src, q8, { type: 'Q8_0' });
    const before = sha256(q8);
    await assert.rejects(
      quantizeToGguf(q8, join(dir, 'q4.gguf'), { type: 'Q4_0' }),
      (e: Error & { code?: string }) => e.code === 'REQUANTIZE' && /already quantized \(Q8_0\)/.test(e.message) && /--allow-requantize/.test(e.message),
    );
    assert.deepEqual(readdirSync(dir).sort(), ['q8.gguf', 'tiny'], 'nothing written on refusal');
    // Tensors already at the target type are copied, which needs no permission.
    await quantizeToGguf(q8, join(dir, 'q8-again.gguf'), { type: 'Q8_0' });
    const r = await quantizeToGguf(q8, join(dir, 'q4.gguf'), { type: 'Q4_0', allowRequantize: true });
    assert.ok(r.tensors.some((t) => t.from === 'Q8_0' && t.to === 'Q4_0'));
    assert.equal(sha256(q8), before, 'the input is never modified');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a NaN or Inf in a tensor to quantize is a NON_FINITE error naming it (twin and kernel), and nothing is written', async () => {
  const { KernelPool } = await import('../../src/kernel/pool');
  const { poolTensorEncoder } = await import('../../src/kernel/pool-encoder');
  const dir = scratch();
  const pool = new KernelPool({ size: 1 });
  try {
    const values = new Float32Array(64 * 64).map((_, i) => Math.sin(i));
    values[5 * 64 + 7] = Number.NaN;
    const src = join(dir, 'nan.safetensors');
    writeFileSync(src, safetensorsBytes([{ name: 'layer.weight', dtype: 'F32', shape: [64, 64], data: new Uint8Array(values.buffer) }]));
    for (const encoder of [undefined, poolTensorEncoder(pool, 1024)]) {
      await assert.rejects(
        quantizeToGguf(src, join(dir, 'q8.gguf'), { type: 'Q8_0', encoder }),
        (e: Error & { code?: string; tensor?: string }) => e.code === 'NON_FINITE' && e.tensor === 'layer.weight' && /element 327\b/.test(e.message),
      );
      assert.deepEqual(readdirSync(dir), ['nan.safetensors']);
    }
    // Float outputs keep NaN element by element.
    const r = await quantizeToGguf(src, join(dir, 'f16.gguf'), { type: 'Q8_0', tensorTypes: [{ pattern: /layer/, type: 'F16' }] });
    assert.equal(r.tensors[0].to, 'F16');
  } finally {
    pool.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a read-only folder gives a clear OUTPUT error', async () => {
  const dir = scratch();
  try {
    const src = join(dir, 'tiny');
    writeSafetensorsModel(src, llamaTensors(PRESETS.tiny.shape), 'F32', 7);
    // root ignores permission bits; sysfs refuses new files even to root.
    let readOnly = '/sys';
    if (process.getuid?.() !== 0) {
      readOnly = join(dir, 'ro');
      mkdirSync(readOnly);
      chmodSync(readOnly, 0o555);
    }
    await assert.rejects(quantizeToGguf(src, join(readOnly, 'x.gguf'), { type: 'Q8_0' }), (e: Error & { code?: string }) => e.code === 'OUTPUT' && /not writable/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the kernel pool encoder writes the same bytes as the TypeScript twin', async () => {
  const { KernelPool } = await import('../../src/kernel/pool');
  const { poolTensorEncoder } = await import('../../src/kernel/pool-encoder');
  const dir = scratch();
  const pool = new KernelPool({ size: 2 });
  try {
    const src = join(dir, 'tiny');
    writeSafetensorsModel(src, llamaTensors(PRESETS.tiny.shape), 'BF16', 11);
    for (const type of ['Q4_K_M', 'Q8_0', 'Q5_1', 'IQ4_XS', 'F16']) {
      const viaTwin = join(dir, `twin-${type}.gguf`);
      const viaPool = join(dir, `pool-${type}.gguf`);
      await quantizeToGguf(src, viaTwin, { type });
      // Small jobs, so several row ranges of one tensor are in flight at once.
      await quantizeToGguf(src, viaPool, { type, encoder: poolTensorEncoder(pool, 4096) });
      assert.ok(readFileSync(viaTwin).equals(readFileSync(viaPool)), `${type}: kernel and twin outputs differ`);
    }
    if (hasModels) {
      const out = join(dir, 'pool-Q4_K_M-stories.gguf');
      await quantizeToGguf(join(stories, 'stories260K-f32.gguf'), out, { type: 'Q4_K_M', encoder: poolTensorEncoder(pool) });
      assert.ok(readFileSync(out).equals(readFileSync(join(stories, 'stories260K-Q4_K_M.gguf'))), 'pool output differs from llama-quantize');
    }
  } finally {
    pool.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
