// Every GGUF quantizer, twin (and kernel), against the raw blocks libggml's ggml_quantize_chunk
// wrote for the reference vectors, with and without importance weights.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DTYPES } from '../../src/core/dtypes';
import { GGUF_QUANT_TYPES, quantizeRows } from '../../src/core/quant/ggml-quantize';
import { blockMismatch, goldenBlocks, goldenCases } from './ggml-golden-data';
import { haveGolden } from './golden';

const cases = haveGolden ? goldenCases() : [];

for (const type of GGUF_QUANT_TYPES) {
  for (const imat of [false, true]) {
    test(`twin ${type}${imat ? ' with imatrix' : ''} equals libggml`, { skip: !haveGolden && 'ggml-golden missing' }, () => {
      const failures: string[] = [];
      for (const c of cases) {
        const expected = goldenBlocks(c, type, imat);
        if (!expected) continue;
        const actual = quantizeRows(type, c.w, c.rows, c.cols, imat ? c.imatrix : undefined);
        const m = blockMismatch(actual, expected, DTYPES[type].bytesPerBlock);
        if (m) failures.push(`${c.name} ${type}${imat ? '.imat' : ''}: ${m}`);
      }
      assert.equal(failures.length, 0, failures.join('\n'));
    });
  }
}

test('kernel equals libggml on every golden vector', { skip: !haveGolden && 'ggml-golden missing' }, async (t) => {
  const { instantiateKernel } = await import('../../src/kernel/wasm');
  const { quantizeWithKernel } = await import('../../src/kernel/quantize');
  const kernel = instantiateKernel();
  for (const type of GGUF_QUANT_TYPES) {
    for (const imat of [false, true]) {
      await t.test(`kernel ${type}${imat ? ' with imatrix' : ''}`, () => {
        const failures: string[] = [];
        for (const c of cases) {
          const expected = goldenBlocks(c, type, imat);
          if (!expected) continue;
          const actual = quantizeWithKernel(kernel, type, c.w, c.rows, c.cols, imat ? c.imatrix : undefined);
          const m = blockMismatch(actual, expected, DTYPES[type].bytesPerBlock);
          if (m) failures.push(`${c.name} ${type}${imat ? '.imat' : ''}: ${m}`);
        }
        assert.equal(failures.length, 0, failures.join('\n'));
      });
    }
  }
});
