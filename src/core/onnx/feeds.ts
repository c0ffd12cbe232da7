/**
 * What a calibration sample is: one value per graph input, as plain typed arrays (they cross to the
 * kernel workers by structured clone), and the model's input signature they are built against.
 */
import { QuantLensError } from '../errors';
import { MAX_ONNX_FEED_ELEMENTS } from '../limits';
import type { OnnxGraph, OnnxValueInfo } from '../readers/onnx';
import { OnnxDataType, onnxDataTypeName } from '../readers/onnx';

/** Element types a feed may have (ONNX Runtime's tensor type names). */
export type FeedType = 'float32' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'uint16' | 'bool';

export type FeedData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** One tensor handed to or returned by the runtime. */
export interface OnnxFeed {
  name: string;
  type: FeedType;
  dims: number[];
  data: FeedData;
}

/** One calibration sample: a value for every graph input. */
export type Sample = OnnxFeed[];

const FEED_TYPE_OF_ONNX = new Map<number, FeedType>([
  [OnnxDataType.FLOAT, 'float32'],
  [OnnxDataType.DOUBLE, 'float64'],
  [OnnxDataType.INT64, 'int64'],
  [OnnxDataType.INT32, 'int32'],
  [OnnxDataType.INT16, 'int16'],
  [OnnxDataType.INT8, 'int8'],
  [OnnxDataType.UINT8, 'uint8'],
  [OnnxDataType.UINT16, 'uint16'],
  [OnnxDataType.BOOL, 'bool'],
]);

export function feedTypeOfOnnx(elemType: number): FeedType | undefined {
  return FEED_TYPE_OF_ONNX.get(elemType);
}

/** A zero-filled array of `n` elements of `type`. */
export function zeroData(type: FeedType, n: number): FeedData {
  switch (type) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int64': return new BigInt64Array(n);
    case 'int32': return new Int32Array(n);
    case 'int16': return new Int16Array(n);
    case 'int8': return new Int8Array(n);
    case 'uint16': return new Uint16Array(n);
    case 'uint8':
    case 'bool': return new Uint8Array(n);
  }
}

/** A graph input: its element type and dims, each a size or a symbolic name (null: unnamed unknown). */
export interface InputSpec {
  name: string;
  type: FeedType;
  dims: Array<number | string | null>;
}

/**
 * The graph inputs a caller must feed: initializers listed as inputs (old exporters do that) are
 * left out, since the model carries their values.
 */
export function inputSignature(graph: OnnxGraph): InputSpec[] {
  const initialized = new Set(graph.initializers.map((t) => t.name));
  return graph.inputs.filter((v) => !initialized.has(v.name)).map(specOf);
}

function specOf(v: OnnxValueInfo): InputSpec {
  const type = v.type;
  if (!type || type.kind !== 'tensor') {
    throw new QuantLensError('UNSUPPORTED', `graph input ${v.name} is not a tensor: QuantLens feeds tensor inputs only`);
  }
  const feedType = feedTypeOfOnnx(type.elemType);
  if (!feedType) {
    throw new QuantLensError('UNSUPPORTED', `graph input ${v.name} has element type ${onnxDataTypeName(type.elemType) ?? type.elemType}, which QuantLens cannot feed`);
  }
  if (!type.shape) throw new QuantLensError('UNSUPPORTED', `graph input ${v.name} has no shape: give its values in .npy files`);
  return { name: v.name, type: feedType, dims: type.shape.map((d) => d.value ?? d.param ?? null) };
}

/**
 * Concrete dims of an input: symbolic dims from `dims` (by symbol name, or `<input>:<axis>` for
 * unnamed ones); a leading symbolic dim with no value is the batch, 1. Anything else unresolved is a
 * USAGE error naming the flag to give.
 */
export function resolveDims(spec: InputSpec, dims: ReadonlyMap<string, number>): number[] {
  const out = spec.dims.map((d, axis) => {
    if (typeof d === 'number') return d;
    const given = (d !== null ? dims.get(d) : undefined) ?? dims.get(`${spec.name}:${axis}`);
    if (given !== undefined) return given;
    if (axis === 0) return 1;
    throw new QuantLensError(
      'USAGE',
      `input ${spec.name} dimension ${axis} is symbolic (${d ?? 'unnamed'}): give it with --dim ${d ?? `${spec.name}:${axis}`}=N`,
    );
  });
  checkedCount(out, spec.name);
  return out;
}

/** Element count of `dims`, refused beyond MAX_ONNX_FEED_ELEMENTS. */
export function checkedCount(dims: readonly number[], what: string): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new QuantLensError('INVALID_SHAPE', `${what}: dimension ${d} is not a size`);
    n *= d;
    if (n > MAX_ONNX_FEED_ELEMENTS) throw new QuantLensError('LIMIT_EXCEEDED', `${what}: more than ${MAX_ONNX_FEED_ELEMENTS} elements in one input`);
  }
  return n;
}

/**
 * `dims` plus batch defaults: a symbol that is the leading dim of some input is the batch, 1, wherever
 * it appears (Silero VAD's state is [2, batch, 128]).
 */
export function withBatchDefaults(signature: readonly InputSpec[], dims: ReadonlyMap<string, number>): Map<string, number> {
  const out = new Map(dims);
  for (const spec of signature) {
    const lead = spec.dims[0];
    if (typeof lead === 'string' && !out.has(lead)) out.set(lead, 1);
  }
  return out;
}

/** Parses `--dim NAME=N` values. */
export function parseDimFlags(values: readonly string[]): Map<string, number> {
  const dims = new Map<string, number>();
  for (const v of values) {
    const at = v.lastIndexOf('=');
    const n = Number(v.slice(at + 1));
    if (at <= 0 || !Number.isSafeInteger(n) || n < 0) throw new QuantLensError('USAGE', `--dim wants NAME=N, got ${v}`);
    dims.set(v.slice(0, at), n);
  }
  return dims;
}
