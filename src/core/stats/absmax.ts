/**
 * Per-row and per-column absmax of a 2-D tensor (rows = the outermost dimension, columns = the
 * product of the others): the twin of the kernel's absMaxRowsF32 / absMaxColsF32.
 * Over finite values only (NaN and ±Inf count as 0); a row or column with no finite value is 0.
 * max is exact, so the order of evaluation does not matter.
 */

/** `out[r]` = max |v| over row r. */
export function rowAbsMax(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0; c < cols; c++) m = Math.max(m, finiteAbs(values[r * cols + c]!));
    out[r] = m;
  }
  return out;
}

/** `out[c]` = max |v| over column c. */
export function colAbsMax(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c] = Math.max(out[c]!, finiteAbs(values[r * cols + c]!));
  }
  return out;
}

function finiteAbs(v: number): number {
  return Number.isFinite(v) ? Math.abs(v) : 0;
}
