/**
 * Mutation fuzzer over every real checkpoint in ../shared/models and generated fixtures: truncations,
 * byte flips and huge length fields. Every outcome must be a model whose tensors lie inside their
 * files, or a QuantLensError: never another exception, never a hang.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { MemoryByteSource } from '../../src/core/bytesource';
import { QuantLensError } from '../../src/core/errors';
import { PRESETS, Rng, llamaTensors, writeGgufModel, writeSafetensorsModel } from '../../src/core/generate';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import type { FileAccess } from '../../src/core/readers/types';

const models = resolve(__dirname, '../../../shared/models');
const CHECKPOINT = /\.(safetensors|gguf|onnx|pt|pth|jit)$|^pytorch_model\.bin$/;
const MAX_FILE_BYTES = 4 << 20;
/** Mutations across all files: the foundation issue asks for at least 10,000 per CI run. */
const TOTAL_MUTATIONS = Number(process.env.QUANTLENS_FUZZ_MUTATIONS ?? 12_000);

function checkpoints(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...checkpoints(p));
    else if (CHECKPOINT.test(name) && statSync(p).size <= MAX_FILE_BYTES && !p.includes('ggml-golden')) out.push(p);
  }
  return out.sort();
}

/** Serves `bytes` for `path` and the real file system for its siblings (shards, external data). */
function mutatedAccess(path: string, bytes: Uint8Array): FileAccess {
  return {
    ...nodeFileAccess,
    open: async (p) => (p === path ? new MemoryByteSource(bytes, p) : nodeFileAccess.open(p)),
  };
}

function mutate(src: Uint8Array, rng: Rng): Uint8Array {
  const pick = (): number => {
    const r = rng.uniform();
    // Headers live at the start (safetensors, GGUF, pickles) or the end (zip directories).
    if (r < 0.5) return rng.uint32() % Math.min(src.length, 4096);
    if (r < 0.75) return Math.max(0, src.length - 1 - (rng.uint32() % Math.min(src.length, 4096)));
    return rng.uint32() % src.length;
  };
  const kind = rng.uint32() % 4;
  if (kind === 0) return src.slice(0, pick());
  const out = src.slice();
  if (kind === 1) {
    for (let i = 1 + (rng.uint32() % 8); i > 0; i--) out[pick()] ^= 1 << rng.uint32() % 8;
  } else if (kind === 2) {
    // A huge little-endian length or count.
    const at = pick();
    for (let i = 0; i < 8 && at + i < out.length; i++) out[at + i] = i < 7 ? 0xff : 0x7f;
  } else {
    out[pick()] = rng.uint32() & 0xff;
  }
  return out;
}

test('mutated checkpoints give a typed error or a sound model, never anything else', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ql-fuzz-'));
  try {
    // Own fixtures, so the fuzzer runs on a clone without ../shared/models too.
    writeSafetensorsModel(join(dir, 'st'), llamaTensors({ ...PRESETS.tiny.shape, layers: 1, vocab: 64 }), 'BF16', 5);
    writeGgufModel(join(dir, 'g.gguf'), llamaTensors({ ...PRESETS.tiny.shape, layers: 1, vocab: 64 }), 'F16', 5);
    const files = [join(dir, 'st/model.safetensors'), join(dir, 'g.gguf'), ...checkpoints(models)];
    const perFile = Math.ceil(TOTAL_MUTATIONS / files.length);
    const rng = new Rng(20261122);
    let runs = 0;
    let typed = 0;
    for (const path of files) {
      const original = new Uint8Array(readFileSync(path));
      for (let i = 0; i < perFile; i++) {
        const bytes = mutate(original, rng);
        runs++;
        try {
          const model = await openModel(path, { files: mutatedAccess(path, bytes) });
          for (const tensor of model.tensors) {
            const size = tensor.file === path ? bytes.length : statSync(tensor.file).size;
            assert.ok(tensor.byteOffset >= 0 && tensor.byteOffset + tensor.byteLength <= size, `${path}: ${tensor.name} lies outside its file`);
          }
        } catch (err) {
          if (!(err instanceof QuantLensError)) {
            const file = join(tmpdir(), `quantlens-fuzz-escape-${runs}.bin`);
            writeFileSync(file, bytes);
            assert.fail(`${path}, mutation ${i}: ${(err as Error)?.stack ?? String(err)} (input saved to ${file})`);
          }
          typed++;
        }
      }
    }
    t.diagnostic(`${runs} mutations over ${files.length} files, ${typed} typed errors, ${runs - typed} opened`);
    assert.ok(runs >= TOTAL_MUTATIONS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
