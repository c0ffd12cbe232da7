/**
 * The row-wise operations of a Llama block in plain TypeScript, in ggml's arithmetic (every float step
 * rounded to f32 except the sums ggml keeps in double): RMSNorm (ggml_compute_forward_rms_norm_f32),
 * rotary embedding in the Meta/GGUF pair layout (ggml rope, mode 0), causal grouped-query attention
 * and SiLU-gated MLP, and the f32 matrix product.
 */
import { fround } from '../quant/ggml-float';
import { roundToF16 } from './vec-dot';

/** out[t] = x[t] / sqrt(mean(x[t]²) + eps) · weight. */
export function rmsNorm(x: Float32Array, n: number, dim: number, weight: Float32Array, eps: number, out: Float32Array): void {
  for (let t = 0; t < n; t++) {
    const o = t * dim;
    let sum = 0;
    for (let i = 0; i < dim; i++) sum += fround(x[o + i] * x[o + i]);
    const mean = fround(sum / dim);
    const scale = fround(1 / fround(Math.sqrt(fround(mean + eps))));
    for (let i = 0; i < dim; i++) out[o + i] = fround(fround(x[o + i] * scale) * weight[i]);
  }
}

/** cos/sin of each rotary pair at each position: ggml_rope_cache_init with freq_scale 1, no YaRN. */
export function ropeTables(positions: number, ropeDims: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = ropeDims / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  const thetaScale = fround(Math.pow(theta, fround(-2 / ropeDims)));
  for (let p = 0; p < positions; p++) {
    let th = p;
    for (let i = 0; i < half; i++) {
      cos[p * half + i] = Math.cos(th);
      sin[p * half + i] = Math.sin(th);
      th = fround(th * thetaScale);
    }
  }
  return { cos, sin };
}

/** Rotates adjacent pairs (x[2i], x[2i+1]) of the first ropeDims values of every head, in place. */
export function applyRope(
  x: Float32Array,
  n: number,
  heads: number,
  headDim: number,
  ropeDims: number,
  tables: { cos: Float32Array; sin: Float32Array },
  firstPos = 0,
): void {
  const half = ropeDims / 2;
  for (let t = 0; t < n; t++) {
    const p = (firstPos + t) * half;
    for (let h = 0; h < heads; h++) {
      const o = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = tables.cos[p + i];
        const s = tables.sin[p + i];
        const x0 = x[o + 2 * i];
        const x1 = x[o + 2 * i + 1];
        x[o + 2 * i] = fround(fround(x0 * c) - fround(x1 * s));
        x[o + 2 * i + 1] = fround(fround(x0 * s) + fround(x1 * c));
      }
    }
  }
}

/**
 * Causal attention of n query rows over the first n key/value rows (one sequence from position 0):
 * softmax(q·k / sqrt(headDim)) · v per head, query head h reading key/value head h / (heads / kvHeads).
 * q: [n, heads, headDim]; k, v: [n, kvHeads, headDim]; out: [n, heads, headDim].
 */
export function causalAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  n: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  out: Float32Array,
): void {
  const group = heads / kvHeads;
  const scale = fround(1 / Math.sqrt(headDim));
  const scores = new Float64Array(n);
  const acc = new Float64Array(headDim);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < heads; h++) {
      const qo = (t * heads + h) * headDim;
      const kh = Math.floor(h / group);
      let max = -Infinity;
      for (let s = 0; s <= t; s++) {
        const ko = (s * kvHeads + kh) * headDim;
        let dot = 0;
        for (let i = 0; i < headDim; i++) dot += q[qo + i] * k[ko + i];
        const sc = fround(fround(dot) * scale);
        scores[s] = sc;
        if (sc > max) max = sc;
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) {
        const e = fround(Math.exp(fround(scores[s] - max)));
        scores[s] = e;
        sum += e;
      }
      acc.fill(0);
      for (let s = 0; s <= t; s++) {
        const vo = (s * kvHeads + kh) * headDim;
        const p = scores[s];
        for (let i = 0; i < headDim; i++) acc[i] += p * v[vo + i];
      }
      const inv = 1 / sum;
      for (let i = 0; i < headDim; i++) out[qo + i] = acc[i] * inv;
    }
  }
}

/** a[i] = silu(gate[i]) · up[i] (ggml_swiglu: x / (1 + e^-x) · up). */
export function swiglu(gate: Float32Array, up: Float32Array, out: Float32Array): void {
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i];
    out[i] = fround(fround(g / fround(1 + fround(Math.exp(-g)))) * up[i]);
  }
}

/** y[t, r] = Σ_c x[t, c] · w[r, c]: x [n, cols], w [rows, cols] row-major, y [n, rows]. */
export function matmulF32(x: Float32Array, n: number, w: Float32Array, rows: number, cols: number, out: Float32Array): void {
  for (let t = 0; t < n; t++) {
    const xo = t * cols;
    for (let r = 0; r < rows; r++) {
      const wo = r * cols;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let c = 0;
      for (; c + 4 <= cols; c += 4) {
        s0 += x[xo + c] * w[wo + c];
        s1 += x[xo + c + 1] * w[wo + c + 1];
        s2 += x[xo + c + 2] * w[wo + c + 2];
        s3 += x[xo + c + 3] * w[wo + c + 3];
      }
      for (; c < cols; c++) s0 += x[xo + c] * w[wo + c];
      out[t * rows + r] = s0 + s1 + s2 + s3;
    }
  }
}

/** x += y, element-wise. */
export function addInPlace(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = fround(x[i] + y[i]);
}

/**
 * The same attention as llama.cpp's CPU flash attention computes it over an F16 KV cache
 * (ggml-cpu ops.cpp `ggml_compute_forward_flash_attn_ext_f16_one_chunk`): the query rounded to F16,
 * keys visited in order with an online softmax, the weighted value sum kept in an F16 accumulator
 * (rescaled when a new maximum appears), divided by the softmax sum at the end.
 * `k` and `v` must already hold F16-representable values.
 */
export function causalAttentionF16(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  n: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  out: Float32Array,
): void {
  const group = heads / kvHeads;
  const scale = fround(1 / Math.sqrt(headDim));
  const acc = new Float32Array(headDim);
  const q16 = new Float32Array(headDim);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < heads; h++) {
      const qo = (t * heads + h) * headDim;
      const kh = Math.floor(h / group);
      for (let i = 0; i < headDim; i++) q16[i] = roundToF16(q[qo + i]);
      let max = -Infinity;
      let sum = 0;
      acc.fill(0);
      for (let s = 0; s <= t; s++) {
        const ko = (s * kvHeads + kh) * headDim;
        let dot = 0;
        for (let i = 0; i < headDim; i++) dot += q16[i] * k[ko + i];
        const score = fround(fround(dot) * scale);
        let ms = 1;
        let vs = 1;
        if (score > max) {
          ms = fround(Math.exp(max - score));
          max = score;
          for (let i = 0; i < headDim; i++) acc[i] = roundToF16(fround(acc[i] * ms));
        } else {
          vs = fround(Math.exp(fround(score - max)));
        }
        for (let i = 0; i < headDim; i++) acc[i] = roundToF16(fround(acc[i] + fround(v[ko + i] * vs)));
        sum = fround(fround(sum * ms) + vs);
      }
      const inv = fround(1 / sum);
      for (let i = 0; i < headDim; i++) out[qo + i] = fround(acc[i] * inv);
    }
  }
}
