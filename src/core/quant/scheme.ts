/**
 * The names of QuantLens' round-to-nearest schemes for safetensors outputs, one grammar that
 * every command accepts:
 *
 *   int<b>-t|ch|g<N>-sym|asym[-mse]   b = 2…8; per tensor, per output channel (row), or per group
 *                                     of N consecutive values along the input dimension (columns)
 *   nf4-g<N>[-dq][-mse]               QLoRA's NormalFloat4, blocks of N (bitsandbytes' block sizes);
 *                                     -dq: the block absmax values double-quantized (8-bit, blocks of 256)
 *   fp8-e4m3|e5m2-t|ch[-mse]          OCP FP8 with one f32 scale per tensor or per channel
 *
 * `-mse` searches clip ratios for the least squared error (see rtn.ts).
 */
import { QuantLensError } from '../errors';

export type Granularity = { kind: 'tensor' } | { kind: 'channel' } | { kind: 'group'; size: number };

export interface IntScheme {
  kind: 'int';
  bits: number;
  granularity: Granularity;
  symmetric: boolean;
  mse: boolean;
}

export interface Nf4Scheme {
  kind: 'nf4';
  blockSize: number;
  doubleQuant: boolean;
  mse: boolean;
}

export interface Fp8Scheme {
  kind: 'fp8';
  format: 'e4m3' | 'e5m2';
  granularity: { kind: 'tensor' } | { kind: 'channel' };
  mse: boolean;
}

export type QuantScheme = IntScheme | Nf4Scheme | Fp8Scheme;

/** Block sizes bitsandbytes' 4-bit kernels accept (bitsandbytes/functional.py quantize_4bit). */
export const NF4_BLOCK_SIZES: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/** Largest group of the int family: larger groups are per-channel in all but name. */
export const MAX_GROUP_SIZE = 1 << 20;

const INT = /^int([2-8])-(t|ch|g(\d+))-(sym|asym)(-mse)?$/;
const NF4 = /^nf4-g(\d+)(-dq)?(-mse)?$/;
const FP8 = /^fp8-(e4m3|e5m2)-(t|ch)(-mse)?$/;

function usage(name: string, why: string): QuantLensError {
  return new QuantLensError(
    'USAGE',
    `invalid quantization scheme "${name}": ${why} (expected int<2-8>-t|ch|g<N>-sym|asym[-mse], nf4-g<N>[-dq][-mse] or fp8-e4m3|e5m2-t|ch[-mse])`,
  );
}

/** Parses a scheme name (case-insensitive); throws QuantLensError USAGE with the grammar otherwise. */
export function parseScheme(name: string): QuantScheme {
  const s = name.trim().toLowerCase();
  let m = INT.exec(s);
  if (m) {
    let granularity: Granularity;
    if (m[2] === 't') granularity = { kind: 'tensor' };
    else if (m[2] === 'ch') granularity = { kind: 'channel' };
    else {
      const size = Number(m[3]);
      if (!(size >= 1 && size <= MAX_GROUP_SIZE) || String(size) !== m[3]) throw usage(name, `group size must be 1…${MAX_GROUP_SIZE}`);
      granularity = { kind: 'group', size };
    }
    return { kind: 'int', bits: Number(m[1]), granularity, symmetric: m[4] === 'sym', mse: m[5] !== undefined };
  }
  m = NF4.exec(s);
  if (m) {
    const blockSize = Number(m[1]);
    if (!NF4_BLOCK_SIZES.includes(blockSize) || String(blockSize) !== m[1]) {
      throw usage(name, `NF4 block size must be one of ${NF4_BLOCK_SIZES.join(', ')}`);
    }
    return { kind: 'nf4', blockSize, doubleQuant: m[2] !== undefined, mse: m[3] !== undefined };
  }
  m = FP8.exec(s);
  if (m) {
    return {
      kind: 'fp8',
      format: m[1] as 'e4m3' | 'e5m2',
      granularity: m[2] === 't' ? { kind: 'tensor' } : { kind: 'channel' },
      mse: m[3] !== undefined,
    };
  }
  if (/^int\d+-/.test(s)) throw usage(name, 'integer widths are 2 to 8 bits');
  throw usage(name, 'unknown form');
}

/** The canonical name of a scheme: `formatScheme(parseScheme(n))` is `n` in lower case. */
export function formatScheme(scheme: QuantScheme): string {
  const mse = scheme.mse ? '-mse' : '';
  switch (scheme.kind) {
    case 'int': {
      const g = scheme.granularity;
      const gran = g.kind === 'tensor' ? 't' : g.kind === 'channel' ? 'ch' : `g${g.size}`;
      return `int${scheme.bits}-${gran}-${scheme.symmetric ? 'sym' : 'asym'}${mse}`;
    }
    case 'nf4':
      return `nf4-g${scheme.blockSize}${scheme.doubleQuant ? '-dq' : ''}${mse}`;
    case 'fp8':
      return `fp8-${scheme.format}-${scheme.granularity.kind === 'tensor' ? 't' : 'ch'}${mse}`;
  }
}

/** Whether a name parses as a scheme (for commands that also accept GGUF type names). */
export function isSchemeName(name: string): boolean {
  try {
    parseScheme(name);
    return true;
  } catch {
    return false;
  }
}
