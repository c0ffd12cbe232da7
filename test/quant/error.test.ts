import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ggmlQuantizationError, quantizationError } from '../../src/core/quant/error';

test('quantizationError: SSE, max error, SQNR; null SQNR when lossless; non-finite sources skipped', () => {
  const x = new Float32Array([1, -2, 3, Number.NaN, 4]);
  const y = new Float32Array([1, -2, 3, 0, 4]);
  const exact = quantizationError(x, y);
  assert.equal(exact.count, 4);
  assert.equal(exact.sumSquaredError, 0);
  assert.equal(exact.sqnrDb, null);
  y[2] = 2.5;
  const e = quantizationError(x, y);
  assert.equal(e.sumSquaredError, 0.25);
  assert.equal(e.maxAbsError, 0.5);
  assert.equal(e.signalEnergy, 30);
  assert.equal(e.sqnrDb, 10 * Math.log10(30 / 0.25));
  assert.equal(quantizationError(x, y, 0, 2).sqnrDb, null);
});

test('ggmlQuantizationError: Q8_0 of a ramp is close; all-zero rows are lossless', () => {
  const x = Float32Array.from({ length: 256 }, (_, i) => (i - 128) / 16);
  const e = ggmlQuantizationError('Q8_0', x, 2, 128);
  assert.ok(e.sqnrDb! > 35, `SQNR ${e.sqnrDb}`);
  assert.ok(e.maxAbsError <= 8 / 127 / 2 + 1e-3);
  assert.equal(ggmlQuantizationError('Q4_K', new Float32Array(256), 1, 256).sqnrDb, null);
});
