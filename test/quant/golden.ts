// The libggml golden vectors of ../shared/models/ggml-golden and a bitwise comparison that names
// the first bad block, how many differ and the worst error.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isDType, type DType } from '../../src/core/dtypes';
import { readNpy } from '../fixtures/npy';

export const goldenDir = resolve(__dirname, '../../../shared/models/ggml-golden');
export const haveGolden = existsSync(join(goldenDir, 'manifest.json'));

export interface GoldenVector {
  case: string;
  /** file stem: `Q4_K` or `Q4_K.imat` */
  name: string;
  dtype: DType;
  blocks: Uint8Array;
  dequantized: Float32Array;
}

/** Every `<TYPE>[.imat].bin` with its `.deq.npy`, across all cases. */
export function goldenVectors(): GoldenVector[] {
  const out: GoldenVector[] = [];
  for (const c of readdirSync(goldenDir, { withFileTypes: true })) {
    if (!c.isDirectory()) continue;
    for (const file of readdirSync(join(goldenDir, c.name)).sort()) {
      if (!file.endsWith('.bin')) continue;
      const name = file.slice(0, -'.bin'.length);
      const type = name.replace(/\.imat$/, '');
      if (!isDType(type)) throw new Error(`unknown type in golden file ${file}`);
      const npy = readNpy(join(goldenDir, c.name, `${name}.deq.npy`));
      out.push({
        case: c.name,
        name,
        dtype: type,
        blocks: new Uint8Array(readFileSync(join(goldenDir, c.name, file))),
        dequantized: npy.data as Float32Array,
      });
    }
  }
  return out;
}

/**
 * null when `got` equals `want` bit for bit (any NaN equals any NaN), else a message naming the
 * first differing block, the number of differing blocks and elements, and the worst error.
 */
export function bitwiseMismatch(got: Float32Array, want: Float32Array, blockSize: number): string | null {
  if (got.length !== want.length) return `length ${got.length}, expected ${want.length}`;
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let firstBad = -1;
  let badElements = 0;
  let badBlocks = 0;
  let lastBadBlock = -1;
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < g.length; i++) {
    if (g[i] === w[i] || (Number.isNaN(got[i]) && Number.isNaN(want[i]))) continue;
    if (firstBad < 0) firstBad = i;
    badElements++;
    const block = Math.floor(i / blockSize);
    if (block !== lastBadBlock) {
      badBlocks++;
      lastBadBlock = block;
    }
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= worst)) {
      worst = err;
      worstAt = i;
    }
  }
  if (firstBad < 0) return null;
  const b = Math.floor(firstBad / blockSize);
  return (
    `first bad block ${b} (element ${firstBad}: got ${got[firstBad]}, want ${want[firstBad]}), ` +
    `${badBlocks} blocks / ${badElements} elements differ, worst error ${worst} at element ${worstAt} ` +
    `(got ${got[worstAt]}, want ${want[worstAt]})`
  );
}
