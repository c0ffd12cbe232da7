/**
 * The one error class of QuantLens. Every failure that reaches a user carries a stable `code`,
 * and, where it applies, the byte `offset` in the file and the `tensor` it concerns.
 */
export type ErrorCode =
  // input that cannot be read or is invalid (CLI exit 2)
  | 'IO'
  | 'UNKNOWN_FORMAT'
  | 'TRUNCATED'
  | 'HEADER_TOO_LARGE'
  | 'INVALID_HEADER'
  | 'INVALID_UTF8'
  | 'INVALID_JSON'
  | 'INVALID_DTYPE'
  | 'INVALID_SHAPE'
  | 'INVALID_OFFSETS'
  | 'SIZE_MISMATCH'
  | 'OVERFLOW'
  | 'LIMIT_EXCEEDED'
  | 'BAD_MAGIC'
  | 'UNSUPPORTED_VERSION'
  | 'INVALID_ALIGNMENT'
  | 'INVALID_VALUE_TYPE'
  | 'DUPLICATE_NAME'
  | 'MISSING_SHARD'
  | 'INVALID_PROTOBUF'
  | 'UNSAFE_PATH'
  | 'INVALID_PICKLE'
  | 'FORBIDDEN_GLOBAL'
  | 'MISSING_STORAGE'
  | 'TENSOR_NOT_FOUND'
  | 'INVALID_ZIP'
  | 'UNSUPPORTED_COMPRESSION'
  /** NaN or ±Inf where a quantizer needs finite values. */
  | 'NON_FINITE'
  // usage (CLI exit 1)
  | 'USAGE'
  /** The input is already quantized and requantizing was not allowed. */
  | 'REQUANTIZE'
  // cancelled (CLI exit 3)
  | 'CANCELLED'
  // anything else (CLI exit 4)
  | 'UNSUPPORTED'
  /** ONNX Runtime refused a model or failed while running it. */
  | 'RUNTIME'
  | 'INTERNAL'
  | 'OUTPUT';

export interface QuantLensErrorDetails {
  offset?: number | bigint;
  tensor?: string;
  file?: string;
  cause?: unknown;
}

export class QuantLensError extends Error {
  override readonly name = 'QuantLensError';
  readonly code: ErrorCode;
  readonly offset?: number;
  readonly tensor?: string;
  readonly file?: string;

  constructor(code: ErrorCode, message: string, details: QuantLensErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.offset !== undefined) this.offset = Number(details.offset);
    if (details.tensor !== undefined) this.tensor = details.tensor;
    if (details.file !== undefined) this.file = details.file;
  }

  /** `error[CODE]: message (file, offset N, tensor T)`, the form the CLI prints. */
  describe(): string {
    const where: string[] = [];
    if (this.file !== undefined) where.push(this.file);
    if (this.offset !== undefined) where.push(`offset ${this.offset}`);
    if (this.tensor !== undefined) where.push(`tensor ${this.tensor}`);
    return `error[${this.code}]: ${this.message}${where.length ? ` (${where.join(', ')})` : ''}`;
  }

  toJSON(): { code: ErrorCode; message: string; offset?: number; tensor?: string; file?: string } {
    return { code: this.code, message: this.message, offset: this.offset, tensor: this.tensor, file: this.file };
  }
}

/** Wraps anything thrown into a QuantLensError, keeping typed ones as they are. */
export function toQuantLensError(err: unknown): QuantLensError {
  if (err instanceof QuantLensError) return err;
  if (isAbortError(err)) return new QuantLensError('CANCELLED', 'cancelled');
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.syscall === 'string') {
    return new QuantLensError('IO', e.message, { file: e.path, cause: err });
  }
  return new QuantLensError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as QuantLensError).code === 'CANCELLED');
}

/** Throws CANCELLED when the signal has fired; call between units of work. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new QuantLensError('CANCELLED', 'cancelled');
}

const USAGE_CODES: ReadonlySet<ErrorCode> = new Set(['USAGE', 'REQUANTIZE']);
const OTHER_CODES: ReadonlySet<ErrorCode> = new Set(['UNSUPPORTED', 'RUNTIME', 'INTERNAL', 'OUTPUT']);

/** CLI exit code: 1 usage, 2 unreadable/invalid input, 3 cancelled, 4 other failure. */
export function exitCodeOf(err: QuantLensError): 1 | 2 | 3 | 4 {
  if (USAGE_CODES.has(err.code)) return 1;
  if (err.code === 'CANCELLED') return 3;
  if (OTHER_CODES.has(err.code)) return 4;
  return 2;
}
