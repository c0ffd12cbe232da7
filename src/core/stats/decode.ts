/**
 * Plain element types → f32 (and → f64 for the types whose statistics run in f64): the reference
 * twin of src/kernel/assembly/decode.ts. Written from each format's definition, not from the
 * kernel's tricks, so the tests compare two independent derivations.
 *
 * Float outputs are produced as bits, so NaN payloads survive (a JS number would canonicalize them):
 * - F16 → f32: exact; NaN keeps its payload shifted (f16 mantissa << 13), so a signalling f16 NaN
 *   stays signalling; this is the IEEE widening without quieting, as the kernel's integer path does.
 * - F8_E5M2 is the top byte of an F16 (same exponent width): decoded as that F16.
 * - F8_E4M3 is the "fn" variant (PyTorch float8_e4m3fn, OCP FP8): bias 7, no infinities,
 *   S.1111.111 is NaN, decoded to the quiet NaN sign | 0x7FC00000.
 * - F64 rounds to nearest f32, ties to even; NaN becomes the quiet NaN with its sign (the engine
 *   decides NaN bits of f32.demote_f64, so the kernel does this explicitly).
 * - Integers round to nearest f32, ties to even, in one rounding (64-bit ones included).
 */
import { DTYPES, type DType } from '../dtypes';
import { QuantLensError } from '../errors';

/** The plain types QuantLens decodes; block types go through the dequantizers. */
export type PlainDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';

const PLAIN: ReadonlySet<string> = new Set<PlainDType>(['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL']);

export function isPlainDType(dtype: DType): dtype is PlainDType {
  return PLAIN.has(dtype);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32ValueOfBits(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0]!;
}

/** f32 bits of the IEEE half code `h`. */
export function f16Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (man << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (man << 13)) >>> 0;
  if (man === 0) return sign >>> 0;
  // subnormal: man · 2^-24, normalised into an f32 (exact)
  scratchF32[0] = man * 2 ** -24;
  return (scratchU32[0]! | sign) >>> 0;
}

/** f32 bits of the bfloat16 code `h`: its top half. */
export function bf16Bits(h: number): number {
  return ((h & 0xffff) << 16) >>> 0;
}

/** f32 bits of the OCP FP8 E4M3 ("fn") code `b`. */
export function e4m3Bits(b: number): number {
  const sign = (b & 0x80) << 24;
  const exp = (b >>> 3) & 0xf;
  const man = b & 7;
  if (exp === 0xf && man === 7) return (sign | 0x7fc00000) >>> 0;
  if (exp !== 0) return (sign | ((exp - 7 + 127) << 23) | (man << 20)) >>> 0;
  if (man === 0) return sign >>> 0;
  scratchF32[0] = man * 2 ** -9;
  return (scratchU32[0]! | sign) >>> 0;
}

/** f32 bits of the OCP FP8 E5M2 code `b` (the top byte of an F16). */
export function e5m2Bits(b: number): number {
  return f16Bits((b & 0xff) << 8);
}

/** `v` rounded once to the nearest f32, ties to even (Number(bigint) then fround would round twice). */
export function bigintToF32(v: bigint): number {
  const negative = v < 0n;
  let a = negative ? -v : v;
  const bits = a.toString(2).length;
  if (bits > 24) {
    const shift = BigInt(bits - 24);
    let q = a >> shift;
    const rest = a - (q << shift);
    const half = 1n << (shift - 1n);
    if (rest > half || (rest === half && (q & 1n) === 1n)) q += 1n;
    a = q << shift;
  }
  const x = Number(a); // exact: at most 25 significant bits
  return Math.fround(negative ? -x : x);
}

/** The value (as a JS number, NaN payload lost) of one code of an 8- or 16-bit type: the code-table path. */
export function codeValue(dtype: PlainDType, code: number): number {
  switch (dtype) {
    case 'F16':
      return f32ValueOfBits(f16Bits(code));
    case 'BF16':
      return f32ValueOfBits(bf16Bits(code));
    case 'F8_E4M3':
      return f32ValueOfBits(e4m3Bits(code));
    case 'F8_E5M2':
      return f32ValueOfBits(e5m2Bits(code));
    case 'I16':
      return (code << 16) >> 16;
    case 'I8':
      return (code << 24) >> 24;
    case 'U16':
    case 'U8':
    case 'BOOL':
      return code;
    default:
      throw new QuantLensError('INTERNAL', `${dtype} has no code table`);
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes little-endian elements to f32, element by element (reference). */
export function decodeToF32(dtype: PlainDType, bytes: Uint8Array): Float32Array {
  const width = DTYPES[dtype].bytesPerBlock;
  const n = Math.floor(bytes.length / width);
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  const dv = view(bytes);
  for (let i = 0; i < n; i++) {
    const p = i * width;
    switch (dtype) {
      case 'F32':
        bits[i] = dv.getUint32(p, true);
        break;
      case 'F64': {
        // NaN → the quiet NaN with its sign (f32.demote_f64 leaves NaN bits to the engine); others round to nearest even
        const x = dv.getFloat64(p, true);
        if (Number.isNaN(x)) bits[i] = ((dv.getUint32(p + 4, true) & 0x80000000) | 0x7fc00000) >>> 0;
        else out[i] = x;
        break;
      }
      case 'F16':
        bits[i] = f16Bits(dv.getUint16(p, true));
        break;
      case 'BF16':
        bits[i] = bf16Bits(dv.getUint16(p, true));
        break;
      case 'F8_E4M3':
        bits[i] = e4m3Bits(bytes[p]!);
        break;
      case 'F8_E5M2':
        bits[i] = e5m2Bits(bytes[p]!);
        break;
      case 'I8':
        out[i] = dv.getInt8(p);
        break;
      case 'U8':
      case 'BOOL':
        out[i] = bytes[p]!;
        break;
      case 'I16':
        out[i] = dv.getInt16(p, true);
        break;
      case 'U16':
        out[i] = dv.getUint16(p, true);
        break;
      case 'I32':
        out[i] = dv.getInt32(p, true);
        break;
      case 'U32':
        out[i] = dv.getUint32(p, true);
        break;
      case 'I64':
        out[i] = bigintToF32(dv.getBigInt64(p, true));
        break;
      case 'U64':
        out[i] = bigintToF32(dv.getBigUint64(p, true));
        break;
    }
  }
  return out;
}

/** The types whose statistics run over f64 values (wider than f32's 24-bit mantissa). */
export type WideDType = 'F64' | 'I64' | 'I32' | 'U64' | 'U32';

/** Decodes F64 and 32/64-bit integers to f64 (one rounding, to nearest even, for 64-bit integers). */
export function decodeToF64(dtype: WideDType, bytes: Uint8Array): Float64Array {
  const width = DTYPES[dtype].bytesPerBlock;
  const n = Math.floor(bytes.length / width);
  const out = new Float64Array(n);
  const dv = view(bytes);
  for (let i = 0; i < n; i++) {
    const p = i * width;
    switch (dtype) {
      case 'F64':
        out[i] = dv.getFloat64(p, true);
        break;
      case 'I32':
        out[i] = dv.getInt32(p, true);
        break;
      case 'U32':
        out[i] = dv.getUint32(p, true);
        break;
      case 'I64':
        out[i] = Number(dv.getBigInt64(p, true)); // Number(bigint) rounds to nearest, ties to even
        break;
      case 'U64':
        out[i] = Number(dv.getBigUint64(p, true));
        break;
    }
  }
  return out;
}
