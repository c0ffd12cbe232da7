// Matrix product for the forward pass: y[t, r] = Σ_c x[t, c] · w[r, c] over f32 rows, four lanes at a
// time with two accumulators per weight row. The TypeScript twin is matmulF32 in src/core/model/ops.ts;
// both sum in a different order than exact arithmetic, so the binding's test holds them to a relative
// bound, not bit equality.

/** x: n rows of `cols` f32; w: `rows` rows of `cols` f32; out: n rows of `rows` f32 (row stride `outStride`). */
export function matmulF32(x: usize, n: i32, w: usize, rows: i32, cols: i32, out: usize, outStride: i32): void {
  const vecEnd = cols & ~7;
  for (let r = 0; r < rows; r++) {
    const wr = w + (<usize>r * <usize>cols << 2);
    for (let t = 0; t < n; t++) {
      const xr = x + (<usize>t * <usize>cols << 2);
      let a0 = f32x4.splat(0);
      let a1 = f32x4.splat(0);
      let c = 0;
      for (; c < vecEnd; c += 8) {
        const o = <usize>c << 2;
        a0 = f32x4.add(a0, f32x4.mul(v128.load(xr + o), v128.load(wr + o)));
        a1 = f32x4.add(a1, f32x4.mul(v128.load(xr + o + 16), v128.load(wr + o + 16)));
      }
      const a = f32x4.add(a0, a1);
      let s: f32 = f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 1) + f32x4.extract_lane(a, 2) + f32x4.extract_lane(a, 3);
      for (; c < cols; c++) s += load<f32>(xr + (<usize>c << 2)) * load<f32>(wr + (<usize>c << 2));
      store<f32>(out + ((<usize>t * <usize>outStride + <usize>r) << 2), s);
    }
  }
}
