// Reads the libggml reference vectors in ../shared/models/ggml-golden (see its README): one F32
// tensor `w` per case, one importance weight per column, raw block files per type.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy } from '../fixtures/npy';
import { goldenDir } from './golden';

export interface GoldenCase {
  name: string;
  rows: number;
  cols: number;
  w: Float32Array;
  imatrix: Float32Array;
  dir: string;
}

function readSafetensorsW(path: string): { w: Float32Array; rows: number; cols: number } {
  const buf = readFileSync(path);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const t = header.w!;
  const start = 8 + headerLen + t.data_offsets[0];
  const bytes = buf.subarray(start, 8 + headerLen + t.data_offsets[1]);
  const w = new Float32Array(bytes.length / 4);
  new Uint8Array(w.buffer).set(bytes);
  return { w, rows: t.shape[0]!, cols: t.shape[1]! };
}

function readNpyF32(path: string): Float32Array {
  const npy = readNpy(path);
  if (npy.descr !== '<f4') throw new Error(`${path}: expected little-endian f32, dtype ${npy.descr}`);
  return npy.data as Float32Array;
}

export function goldenCases(): GoldenCase[] {
  return readdirSync(goldenDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => {
      const dir = join(goldenDir, d.name);
      const { w, rows, cols } = readSafetensorsW(join(dir, 'src.safetensors'));
      return { name: d.name, rows, cols, w, imatrix: readNpyF32(join(dir, 'imatrix.npy')), dir };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The expected blocks of `type` (`.imat` with importance weights), or undefined when the case has none. */
export function goldenBlocks(c: GoldenCase, type: string, imat: boolean): Uint8Array | undefined {
  const path = join(c.dir, `${type}${imat ? '.imat' : ''}.bin`);
  return existsSync(path) ? new Uint8Array(readFileSync(path)) : undefined;
}

/** A failure message naming the first mismatching block and how many differ, or null when equal. */
export function blockMismatch(actual: Uint8Array, expected: Uint8Array, blockBytes: number): string | null {
  if (actual.length !== expected.length) return `length ${actual.length}, expected ${expected.length}`;
  let bad = 0;
  let first = -1;
  for (let b = 0; b < expected.length / blockBytes; b++) {
    for (let k = b * blockBytes; k < (b + 1) * blockBytes; k++) {
      if (actual[k] !== expected[k]) {
        if (first < 0) first = b;
        bad++;
        break;
      }
    }
  }
  if (bad === 0) return null;
  const hex = (a: Uint8Array) => Buffer.from(a.subarray(first * blockBytes, (first + 1) * blockBytes)).toString('hex');
  return `${bad} of ${expected.length / blockBytes} blocks differ; first block ${first}\n  got      ${hex(actual)}\n  expected ${hex(expected)}`;
}
