// readTensorBytes over every encoding, and statistics of non-raw tensors (bytes decoded on the main
// thread, transferred to a worker) against the twin. Reads ../shared/models; skips without it.
import assert from 'node:assert/strict';
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { openModel } from '../../src/core/readers';
import { nodeFileAccess } from '../../src/core/readers/node-files';
import { decodeToF32, decodeToF64, isPlainDType, type WideDType } from '../../src/core/stats/decode';
import { countCodes, laneStats, statsFromCodeTable, statsPathOf, type CodeDType, type TensorStats } from '../../src/core/stats/stats';
import { readTensorBytes } from '../../src/core/tensordata';
import { KernelPool } from '../../src/kernel/pool';
import { computeTensorStats } from '../../src/kernel/tensor-stats';
import { DTYPES, type DType } from '../../src/core/dtypes';

const models = resolve(__dirname, '../../../shared/models');

function twin(dtype: DType, bytes: Uint8Array): TensorStats {
  const path = statsPathOf(dtype, (bytes.length / DTYPES[dtype].bytesPerBlock) * DTYPES[dtype].blockSize);
  if (path === 'codes8' || path === 'codes16') {
    const table = new Float64Array(path === 'codes8' ? 256 : 65536);
    countCodes(dtype as CodeDType, bytes, table);
    return statsFromCodeTable(dtype as CodeDType, table);
  }
  if (path === 'f64') return laneStats(decodeToF64(dtype as WideDType, bytes));
  assert.ok(isPlainDType(dtype));
  return laneStats(decodeToF32(dtype, bytes));
}

test('raw and pytorch-view tensors read the same bytes as the file holds', async (t) => {
  const hf = resolve(models, 'stories260K/hf/model.safetensors');
  const pt = resolve(models, 'stories260K/stories260K.pt');
  if (!existsSync(hf) || !existsSync(pt)) return t.skip('../shared/models is missing');
  const a = await openModel(hf);
  const embed = a.tensors.find((x) => x.name === 'model.embed_tokens.weight')!;
  const raw = await readTensorBytes(a, embed, nodeFileAccess);
  const fd = openSync(hf, 'r');
  const direct = new Uint8Array(embed.byteLength);
  readSync(fd, direct, 0, embed.byteLength, embed.byteOffset);
  closeSync(fd);
  assert.deepEqual(raw, direct);
  const into = new Uint8Array(embed.byteLength);
  assert.equal(await readTensorBytes(a, embed, nodeFileAccess, into), into);
  assert.deepEqual(into, direct);
  const b = await openModel(pt);
  const tok = b.tensors.find((x) => x.name === 'tok_embeddings.weight')!;
  assert.equal(tok.encoding, 'pytorch-view');
  assert.deepEqual(await readTensorBytes(b, tok, nodeFileAccess), direct);
});

test('ONNX typed fields and Constant attributes: stats through the pool equal the twin on the decoded bytes', async (t) => {
  const file = resolve(models, 'silero-vad/silero_vad.onnx');
  if (!existsSync(file)) return t.skip('../shared/models is missing');
  const model = await openModel(file);
  const tensors = model.tensors.filter((x) => isPlainDType(x.dtype));
  assert.ok(tensors.some((x) => x.encoding !== 'raw'), 'the file has non-raw tensors');
  const pool = new KernelPool({ size: 2 });
  try {
    const stats = await computeTensorStats(pool, model, tensors);
    for (const [i, tensor] of tensors.entries()) {
      assert.deepStrictEqual(stats[i], twin(tensor.dtype, await readTensorBytes(model, tensor, nodeFileAccess)), tensor.name);
    }
  } finally {
    pool.dispose();
  }
});
