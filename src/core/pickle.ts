/**
 * A pickle interpreter that never executes anything: it rebuilds Python values as inert JS values
 * and resolves globals only against an allowlist modelled on `torch.load(weights_only=True)`
 * (torch/_weights_only_unpickler.py). Opcodes of protocols 0-5 as in CPython's Lib/pickle.py.
 */
import type { DType } from './dtypes';
import { QuantLensError } from './errors';
import {
  MAX_TENSOR_DIMS,
  PICKLE_MAX_LONG_BYTES,
  PICKLE_MAX_MEMO,
  PICKLE_MAX_OPS,
  PICKLE_MAX_STACK,
  PICKLE_MAX_STRING_BYTES,
} from './limits';

// ---------------------------------------------------------------------------------------------
// Values

/** Python ints are bigint, floats are number, so metadata keeps the difference. */
export type PyValue =
  | null
  | boolean
  | bigint
  | number
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | PyGlobal
  | PyObject
  | PyDType
  | PyStorageType
  | PyStorage
  | PyTensor;

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

/** dict and OrderedDict. `attrs` holds what BUILD set on the instance (e.g. a state_dict's `_metadata`). */
export class PyDict {
  readonly entries = new Map<PyValue, PyValue>();
  attrs: PyValue = null;
}

export class PySet {
  constructor(
    readonly items: PyValue[],
    readonly frozen: boolean,
  ) {}
}

/** An allowlisted global that is not itself a value: a rebuild function or a class. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of a class rebuilt without its code: TorchScript `__torch__.*` modules, `slice`, … */
export class PyObject {
  /** Attributes set by BUILD from a dict state. */
  readonly attrs = new Map<string, PyValue>();
  /** BUILD state that is not a dict (a class with `__setstate__`). */
  state: PyValue = null;
  constructor(
    readonly className: string,
    readonly args: PyValue[],
  ) {}
}

/** A torch dtype such as `torch.float32`; `dtype` is undefined for types QuantLens does not model (complex, quantized). */
export class PyDType {
  constructor(
    readonly torchName: string,
    readonly dtype: DType | undefined,
    readonly elementSize: number,
  ) {}
}

/** A storage class such as `torch.FloatStorage`; `UntypedStorage` holds bytes. */
export class PyStorageType {
  constructor(
    readonly torchName: string,
    readonly dtype: DType | undefined,
    readonly elementSize: number,
  ) {}
}

/**
 * A storage named by a persistent id. `key` names the record (zip `data/<key>`) or the legacy
 * root storage; a legacy view (`view_metadata`) starts `viewOffset` elements into its root.
 */
export class PyStorage {
  constructor(
    readonly key: string,
    readonly storageType: PyStorageType,
    readonly location: string,
    readonly numel: bigint,
    readonly viewOffset: bigint = 0n,
    readonly viewNumel: bigint = numel,
  ) {}
}

/** A tensor view of a storage, in elements of `dtype`. */
export class PyTensor {
  constructor(
    readonly storage: PyStorage,
    readonly dtype: PyDType | PyStorageType,
    readonly storageOffset: bigint,
    readonly shape: bigint[],
    readonly strides: bigint[],
  ) {}
}

// ---------------------------------------------------------------------------------------------
// Allowlist

interface TorchTypeRow {
  dtype: DType | undefined;
  size: number;
}

/** torch dtype names (and their aliases) → our dtype; complex and quantized types are known but not modelled. */
const TORCH_DTYPES: Record<string, TorchTypeRow> = {
  float64: { dtype: 'F64', size: 8 },
  double: { dtype: 'F64', size: 8 },
  float32: { dtype: 'F32', size: 4 },
  float: { dtype: 'F32', size: 4 },
  float16: { dtype: 'F16', size: 2 },
  half: { dtype: 'F16', size: 2 },
  bfloat16: { dtype: 'BF16', size: 2 },
  float8_e4m3fn: { dtype: 'F8_E4M3', size: 1 },
  float8_e5m2: { dtype: 'F8_E5M2', size: 1 },
  int64: { dtype: 'I64', size: 8 },
  long: { dtype: 'I64', size: 8 },
  int32: { dtype: 'I32', size: 4 },
  int: { dtype: 'I32', size: 4 },
  int16: { dtype: 'I16', size: 2 },
  short: { dtype: 'I16', size: 2 },
  int8: { dtype: 'I8', size: 1 },
  uint8: { dtype: 'U8', size: 1 },
  uint16: { dtype: 'U16', size: 2 },
  uint32: { dtype: 'U32', size: 4 },
  uint64: { dtype: 'U64', size: 8 },
  bool: { dtype: 'BOOL', size: 1 },
  complex32: { dtype: undefined, size: 4 },
  complex64: { dtype: undefined, size: 8 },
  cfloat: { dtype: undefined, size: 8 },
  complex128: { dtype: undefined, size: 16 },
  cdouble: { dtype: undefined, size: 16 },
  float8_e4m3fnuz: { dtype: undefined, size: 1 },
  float8_e5m2fnuz: { dtype: undefined, size: 1 },
  qint8: { dtype: undefined, size: 1 },
  quint8: { dtype: undefined, size: 1 },
  qint32: { dtype: undefined, size: 4 },
  quint4x2: { dtype: undefined, size: 1 },
  quint2x4: { dtype: undefined, size: 1 },
};

/** Storage classes, as torch/storage.py `_dtype_to_storage_type_map` names them. */
const TORCH_STORAGES: Record<string, TorchTypeRow> = {
  DoubleStorage: { dtype: 'F64', size: 8 },
  FloatStorage: { dtype: 'F32', size: 4 },
  HalfStorage: { dtype: 'F16', size: 2 },
  BFloat16Storage: { dtype: 'BF16', size: 2 },
  LongStorage: { dtype: 'I64', size: 8 },
  IntStorage: { dtype: 'I32', size: 4 },
  ShortStorage: { dtype: 'I16', size: 2 },
  CharStorage: { dtype: 'I8', size: 1 },
  ByteStorage: { dtype: 'U8', size: 1 },
  BoolStorage: { dtype: 'BOOL', size: 1 },
  UntypedStorage: { dtype: 'U8', size: 1 },
  ComplexFloatStorage: { dtype: undefined, size: 8 },
  ComplexDoubleStorage: { dtype: undefined, size: 16 },
  QInt8Storage: { dtype: undefined, size: 1 },
  QUInt8Storage: { dtype: undefined, size: 1 },
  QInt32Storage: { dtype: undefined, size: 4 },
  QUInt4x2Storage: { dtype: undefined, size: 1 },
  QUInt2x4Storage: { dtype: undefined, size: 1 },
};

/** Callables the interpreter knows how to apply (by rebuilding a value, never by running code). */
const CALLABLES = new Set([
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
  'torch.nn.parameter.Parameter',
  'torch.Tensor',
  'torch._tensor.Tensor',
  'collections.OrderedDict',
  'torch.Size',
  'torch.device',
  'builtins.set',
  'builtins.frozenset',
  'builtins.slice',
  'builtins.bytearray',
  '_codecs.encode',
  'torch.jit._pickle.build_intlist',
  'torch.jit._pickle.build_doublelist',
  'torch.jit._pickle.build_boollist',
  'torch.jit._pickle.build_tensorlist',
  'torch.jit._pickle.build_genericlist',
  'torch.jit._pickle.restore_type_tag',
]);

const STORAGE_MODULES = new Set(['torch', 'torch.storage', 'torch.cuda']);
const TORCHSCRIPT_CLASS_PREFIX = '__torch__.';

/** Python 2 module names that Python 3's unpickler maps (Lib/_compat_pickle.py IMPORT_MAPPING). */
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

/** Resolves GLOBAL/STACK_GLOBAL/INST; anything off the allowlist is FORBIDDEN_GLOBAL naming it. */
export function resolveGlobal(pickledModule: string, name: string, offset?: number): PyValue {
  const module = Object.prototype.hasOwnProperty.call(PY2_MODULES, pickledModule) ? PY2_MODULES[pickledModule]! : pickledModule;
  const qualified = `${module}.${name}`;
  if (CALLABLES.has(qualified)) return new PyGlobal(module, name);
  if (module === 'torch' && Object.prototype.hasOwnProperty.call(TORCH_DTYPES, name)) {
    const row = TORCH_DTYPES[name]!;
    return new PyDType(name, row.dtype, row.size);
  }
  if (STORAGE_MODULES.has(module) && Object.prototype.hasOwnProperty.call(TORCH_STORAGES, name)) {
    const row = TORCH_STORAGES[name]!;
    return new PyStorageType(name, row.dtype, row.size);
  }
  // TorchScript classes are rebuilt as attribute bags; their methods live in code/ and are never read.
  if (module.startsWith(TORCHSCRIPT_CLASS_PREFIX) || module === '__torch__') return new PyGlobal(module, name);
  throw new QuantLensError('FORBIDDEN_GLOBAL', `pickle global ${qualified} is not allowed (only tensors, storages and plain containers are)`, {
    offset,
  });
}

function isTorchScriptClass(g: PyGlobal): boolean {
  return g.module.startsWith(TORCHSCRIPT_CLASS_PREFIX) || g.module === '__torch__';
}

// ---------------------------------------------------------------------------------------------
// Interpreter

export interface PickleOptions {
  /** Called for PERSID/BINPERSID; without it a persistent id is INVALID_PICKLE. */
  persistentLoad?: (pid: PyValue) => PyValue;
  /** Absolute file offset of `bytes[0]`, for error offsets. */
  baseOffset?: number;
  /** File name for errors. */
  file?: string;
}

export interface PickleResult {
  value: PyValue;
  /** Index in `bytes` just past STOP. */
  end: number;
}

/** Thrown when the stream ends before STOP: the caller may retry with more bytes. */
export class PickleEndOfInput extends QuantLensError {
  constructor(offset: number, file?: string) {
    super('TRUNCATED', 'pickle stream ends before STOP', { offset, file });
  }
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Runs one pickle starting at `start`; returns the value and where STOP ended. */
export function loadPickle(bytes: Uint8Array, start = 0, options: PickleOptions = {}): PickleResult {
  return new Interpreter(bytes, start, options).run();
}

class Interpreter {
  private pos: number;
  private stack: StackItem[] = [];
  private marks: number[] = [];
  private readonly memo = new Map<number, PyValue>();
  private readonly view: DataView;
  private opStart = 0;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly options: PickleOptions,
  ) {
    this.pos = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private fail(message: string, code: 'INVALID_PICKLE' | 'LIMIT_EXCEEDED' = 'INVALID_PICKLE'): QuantLensError {
    return new QuantLensError(code, message, { offset: (this.options.baseOffset ?? 0) + this.opStart, file: this.options.file });
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) {
      throw new PickleEndOfInput((this.options.baseOffset ?? 0) + this.bytes.length, this.options.file);
    }
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }
  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(PICKLE_MAX_STRING_BYTES)) throw this.fail(`length ${v} exceeds ${PICKLE_MAX_STRING_BYTES}`, 'LIMIT_EXCEEDED');
    return Number(v);
  }
  private take(n: number): Uint8Array {
    if (n > PICKLE_MAX_STRING_BYTES) throw this.fail(`length ${n} exceeds ${PICKLE_MAX_STRING_BYTES}`, 'LIMIT_EXCEEDED');
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private line(): string {
    const nl = this.bytes.indexOf(0x0a, this.pos);
    if (nl < 0) {
      if (this.bytes.length - this.pos > PICKLE_MAX_STRING_BYTES) throw this.fail('unterminated line', 'LIMIT_EXCEEDED');
      throw new PickleEndOfInput((this.options.baseOffset ?? 0) + this.bytes.length, this.options.file);
    }
    const text = latin1.decode(this.bytes.subarray(this.pos, nl));
    this.pos = nl + 1;
    return text;
  }
  private utf8(raw: Uint8Array): string {
    try {
      return utf8.decode(raw);
    } catch {
      throw this.fail('string is not valid UTF-8');
    }
  }
  /** Python 2 `str` (STRING/BINSTRING): decoded as UTF-8 like torch.load's encoding='utf-8', else kept as bytes. */
  private py2String(raw: Uint8Array): PyValue {
    try {
      return utf8.decode(raw);
    } catch {
      return raw.slice();
    }
  }

  private push(v: StackItem): void {
    if (this.stack.length + this.marks.length >= PICKLE_MAX_STACK) throw this.fail(`stack deeper than ${PICKLE_MAX_STACK}`, 'LIMIT_EXCEEDED');
    this.stack.push(v);
  }
  private pop(): PyValue {
    if (this.stack.length === 0 || (this.marks.length > 0 && this.stack.length <= this.marks[this.marks.length - 1]!)) {
      throw this.fail('stack underflow');
    }
    const v = this.stack.pop()!;
    if (v === MARK) throw this.fail('unexpected mark');
    return v;
  }
  private top(): PyValue {
    const v = this.pop();
    this.stack.push(v);
    return v;
  }
  private pushMark(): void {
    if (this.stack.length + this.marks.length >= PICKLE_MAX_STACK) throw this.fail(`stack deeper than ${PICKLE_MAX_STACK}`, 'LIMIT_EXCEEDED');
    this.marks.push(this.stack.length);
  }
  private popMark(): PyValue[] {
    const at = this.marks.pop();
    if (at === undefined) throw this.fail('no mark on the stack');
    return this.stack.splice(at) as PyValue[];
  }
  private memoPut(index: number, v: PyValue): void {
    if (!this.memo.has(index) && this.memo.size >= PICKLE_MAX_MEMO) throw this.fail(`memo larger than ${PICKLE_MAX_MEMO}`, 'LIMIT_EXCEEDED');
    this.memo.set(index, v);
  }
  private memoGet(index: number): PyValue {
    if (!this.memo.has(index)) throw this.fail(`memo key ${index} is not defined`);
    return this.memo.get(index)!;
  }
  private decimal(text: string): number {
    if (!/^\d+$/.test(text) || text.length > 15) throw this.fail(`bad memo index ${JSON.stringify(text)}`);
    return Number(text);
  }

  run(): PickleResult {
    let ops = 0;
    for (;;) {
      if (++ops > PICKLE_MAX_OPS) throw this.fail(`more than ${PICKLE_MAX_OPS} opcodes`, 'LIMIT_EXCEEDED');
      this.opStart = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: { // PROTO
          const proto = this.u8();
          if (proto > 5) throw this.fail(`unsupported pickle protocol ${proto}`);
          break;
        }
        case 0x95: // FRAME: framing is only a hint for buffered readers
          this.need(8);
          this.pos += 8;
          break;
        case 0x2e: { // STOP
          const value = this.pop();
          return { value, end: this.pos };
        }
        case 0x28: this.pushMark(); break; // MARK
        case 0x30: this.pop(); break; // POP
        case 0x31: this.popMark(); break; // POP_MARK
        case 0x32: this.push(this.top()); break; // DUP
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4b: this.push(BigInt(this.u8())); break; // BININT1
        case 0x4d: this.push(BigInt(this.u16())); break; // BININT2
        case 0x4a: this.push(BigInt(this.i32())); break; // BININT
        case 0x8a: this.push(this.long(this.u8())); break; // LONG1
        case 0x8b: { // LONG4
          const n = this.i32();
          if (n < 0) throw this.fail('negative LONG4 length');
          this.push(this.long(n));
          break;
        }
        case 0x49: { // INT (protocol 0; "00"/"01" are False/True)
          const text = this.line();
          if (text === '00') this.push(false);
          else if (text === '01') this.push(true);
          else this.push(this.parseInt(text));
          break;
        }
        case 0x4c: this.push(this.parseInt(this.line().replace(/L$/, ''))); break; // LONG
        case 0x46: { // FLOAT
          const text = this.line();
          const v = Number(text);
          if (!Number.isFinite(v) && !/^[-+]?(inf|nan)$/i.test(text.trim())) throw this.fail(`bad float ${JSON.stringify(text)}`);
          this.push(Number.isNaN(v) ? parsePyFloatWord(text) : v);
          break;
        }
        case 0x47: { // BINFLOAT (big-endian)
          this.need(8);
          this.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        }
        case 0x53: { // STRING
          const text = unquotePy(this.line());
          if (text === null) throw this.fail('STRING argument is not quoted');
          this.push(this.py2String(latin1Bytes(text)));
          break;
        }
        case 0x54: { // BINSTRING
          const n = this.i32();
          if (n < 0) throw this.fail('negative BINSTRING length');
          this.push(this.py2String(this.take(n)));
          break;
        }
        case 0x55: this.push(this.py2String(this.take(this.u8()))); break; // SHORT_BINSTRING
        case 0x56: this.push(unescapeRawUnicode(this.line())); break; // UNICODE
        case 0x58: this.push(this.utf8(this.take(this.u32()))); break; // BINUNICODE
        case 0x8c: this.push(this.utf8(this.take(this.u8()))); break; // SHORT_BINUNICODE
        case 0x8d: this.push(this.utf8(this.take(this.u64()))); break; // BINUNICODE8
        case 0x42: this.push(this.take(this.u32()).slice()); break; // BINBYTES
        case 0x43: this.push(this.take(this.u8()).slice()); break; // SHORT_BINBYTES
        case 0x8e: this.push(this.take(this.u64()).slice()); break; // BINBYTES8
        case 0x96: this.push(this.take(this.u64()).slice()); break; // BYTEARRAY8
        case 0x97: throw this.fail('out-of-band buffers (NEXT_BUFFER) are not supported');
        case 0x98: break; // READONLY_BUFFER: no effect on an inert value
        case 0x29: this.push(new PyTuple([])); break; // EMPTY_TUPLE
        case 0x74: this.push(new PyTuple(this.popMark())); break; // TUPLE
        case 0x85: this.push(new PyTuple([this.pop()])); break; // TUPLE1
        case 0x86: { // TUPLE2
          const b = this.pop();
          const a = this.pop();
          this.push(new PyTuple([a, b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.push(new PyTuple([a, b, c]));
          break;
        }
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x6c: this.push(this.popMark()); break; // LIST
        case 0x61: { // APPEND
          const v = this.pop();
          this.appendTo(this.top(), [v]);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.popMark();
          this.appendTo(this.top(), items);
          break;
        }
        case 0x7d: this.push(new PyDict()); break; // EMPTY_DICT
        case 0x64: { // DICT
          const items = this.popMark();
          const d = new PyDict();
          this.setItems(d, items);
          this.push(d);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItems(this.top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.popMark();
          this.setItems(this.top(), items);
          break;
        }
        case 0x8f: this.push(new PySet([], false)); break; // EMPTY_SET
        case 0x90: { // ADDITEMS
          const items = this.popMark();
          const s = this.top();
          if (!(s instanceof PySet) || s.frozen) throw this.fail('ADDITEMS on a non-set');
          s.items.push(...items);
          break;
        }
        case 0x91: this.push(new PySet(this.popMark(), true)); break; // FROZENSET
        case 0x67: this.push(this.memoGet(this.decimal(this.line()))); break; // GET
        case 0x68: this.push(this.memoGet(this.u8())); break; // BINGET
        case 0x6a: this.push(this.memoGet(this.u32())); break; // LONG_BINGET
        case 0x70: this.memoPut(this.decimal(this.line()), this.top()); break; // PUT
        case 0x71: this.memoPut(this.u8(), this.top()); break; // BINPUT
        case 0x72: this.memoPut(this.u32(), this.top()); break; // LONG_BINPUT
        case 0x94: this.memoPut(this.memo.size, this.top()); break; // MEMOIZE
        case 0x63: { // GLOBAL
          const module = this.line();
          const name = this.line();
          this.push(this.global(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') throw this.fail('STACK_GLOBAL needs two strings');
          this.push(this.global(module, name));
          break;
        }
        case 0x82: case 0x83: case 0x84: { // EXT1/2/4: the copyreg extension registry is code we do not have
          const code = op === 0x82 ? this.u8() : op === 0x83 ? this.u16() : this.i32();
          throw new QuantLensError('FORBIDDEN_GLOBAL', `pickle extension code ${code} is not allowed`, {
            offset: (this.options.baseOffset ?? 0) + this.opStart,
            file: this.options.file,
          });
        }
        case 0x52: { // REDUCE
          const args = this.pop();
          const callable = this.pop();
          if (!(args instanceof PyTuple)) throw this.fail('REDUCE arguments are not a tuple');
          this.push(this.call(callable, args.items));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.pop();
          const cls = this.pop();
          if (!(args instanceof PyTuple)) throw this.fail('NEWOBJ arguments are not a tuple');
          this.push(this.call(cls, args.items));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.pop();
          const args = this.pop();
          const cls = this.pop();
          if (!(args instanceof PyTuple) || !(kwargs instanceof PyDict)) throw this.fail('NEWOBJ_EX needs a tuple and a dict');
          this.push(this.call(cls, args.items));
          break;
        }
        case 0x69: { // INST
          const module = this.line();
          const name = this.line();
          const cls = this.global(module, name);
          this.push(this.call(cls, this.popMark()));
          break;
        }
        case 0x6f: { // OBJ
          const items = this.popMark();
          if (items.length === 0) throw this.fail('OBJ without a class');
          this.push(this.call(items[0]!, items.slice(1)));
          break;
        }
        case 0x62: { // BUILD
          const state = this.pop();
          this.build(this.top(), state);
          break;
        }
        case 0x50: this.push(this.persistent(this.line())); break; // PERSID
        case 0x51: this.push(this.persistent(this.pop())); break; // BINPERSID
        default:
          throw this.fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }

  private long(n: number): bigint {
    if (n > PICKLE_MAX_LONG_BYTES) throw this.fail(`integer of ${n} bytes exceeds ${PICKLE_MAX_LONG_BYTES}`, 'LIMIT_EXCEEDED');
    const raw = this.take(n);
    let v = 0n;
    for (let i = raw.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(raw[i]!);
    if (n > 0 && raw[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return v;
  }

  private parseInt(text: string): bigint {
    const t = text.trim();
    if (!/^[-+]?\d+$/.test(t) || t.length > PICKLE_MAX_LONG_BYTES * 3) throw this.fail(`bad integer ${JSON.stringify(text)}`);
    return BigInt(t);
  }

  private global(module: string, name: string): PyValue {
    return resolveGlobal(module, name, (this.options.baseOffset ?? 0) + this.opStart);
  }

  private persistent(pid: PyValue): PyValue {
    if (!this.options.persistentLoad) throw this.fail('persistent id in a pickle that allows none');
    try {
      return this.options.persistentLoad(pid);
    } catch (err) {
      if (err instanceof QuantLensError && err.offset === undefined) {
        throw new QuantLensError(err.code, err.message, { offset: (this.options.baseOffset ?? 0) + this.opStart, file: this.options.file });
      }
      throw err;
    }
  }

  private appendTo(target: PyValue, items: PyValue[]): void {
    if (!Array.isArray(target)) throw this.fail('APPEND to a non-list');
    if (target.length + items.length > PICKLE_MAX_STACK) throw this.fail(`list longer than ${PICKLE_MAX_STACK}`, 'LIMIT_EXCEEDED');
    target.push(...items);
  }

  private setItems(target: PyValue, items: PyValue[]): void {
    if (!(target instanceof PyDict)) throw this.fail('SETITEM on a non-dict');
    if (items.length % 2 !== 0) throw this.fail('odd number of items for a dict');
    for (let i = 0; i < items.length; i += 2) target.entries.set(items[i]!, items[i + 1]!);
  }

  private build(target: PyValue, state: PyValue): void {
    if (target instanceof PyObject) {
      if (state instanceof PyDict) {
        for (const [k, v] of state.entries) {
          if (typeof k !== 'string') throw this.fail('BUILD state key is not a string');
          target.attrs.set(k, v);
        }
      } else {
        target.state = state;
      }
    } else if (target instanceof PyDict) {
      target.attrs = state;
    } else if (target instanceof PyTensor) {
      // _rebuild_parameter_with_state / tensor subclasses: Python attributes of no concern to the bytes.
    } else {
      throw this.fail('BUILD on a value that takes no state');
    }
  }

  private call(callable: PyValue, args: PyValue[]): PyValue {
    if (callable instanceof PyStorageType || callable instanceof PyDType) {
      throw this.fail(`calling ${callable.torchName} is not supported`);
    }
    if (!(callable instanceof PyGlobal)) throw this.fail('call of a value that is not an allowed global');
    if (isTorchScriptClass(callable)) return new PyObject(callable.qualifiedName, args);
    const arg = (i: number): PyValue => (i < args.length ? args[i]! : null);
    switch (callable.qualifiedName) {
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2':
        return this.rebuildTensor(arg(0), arg(1), arg(2), arg(3), undefined);
      case 'torch._utils._rebuild_tensor_v3':
        return this.rebuildTensor(arg(0), arg(1), arg(2), arg(3), arg(6));
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
      case 'torch.nn.parameter.Parameter':
        return this.expectTensor(arg(0), callable.qualifiedName);
      case 'torch._tensor._rebuild_from_type_v2': {
        const inner = arg(2);
        if (!(inner instanceof PyTuple)) throw this.fail('_rebuild_from_type_v2 arguments are not a tuple');
        return this.call(arg(0), inner.items);
      }
      case 'torch.Tensor':
      case 'torch._tensor.Tensor':
        throw this.fail(`${callable.qualifiedName} is only allowed as a type argument`);
      case 'collections.OrderedDict': {
        const d = new PyDict();
        const init = arg(0);
        if (init !== null) {
          if (!Array.isArray(init) && !(init instanceof PyTuple)) throw this.fail('OrderedDict argument is not a sequence of pairs');
          for (const pair of Array.isArray(init) ? init : init.items) {
            const kv = Array.isArray(pair) ? pair : pair instanceof PyTuple ? pair.items : null;
            if (!kv || kv.length !== 2) throw this.fail('OrderedDict item is not a pair');
            d.entries.set(kv[0]!, kv[1]!);
          }
        }
        return d;
      }
      case 'torch.Size': {
        const items = arg(0);
        return new PyTuple(items instanceof PyTuple ? items.items : Array.isArray(items) ? items.slice() : []);
      }
      case 'torch.device':
        return args.map((a) => String(a)).join(':');
      case 'builtins.set':
      case 'builtins.frozenset': {
        const items = arg(0);
        const list = items instanceof PyTuple ? items.items : Array.isArray(items) ? items : [];
        return new PySet(list.slice(), callable.name === 'frozenset');
      }
      case 'builtins.slice':
        return new PyObject('builtins.slice', args);
      case 'builtins.bytearray': {
        const a = arg(0);
        return a instanceof Uint8Array ? a.slice() : new Uint8Array(0);
      }
      case '_codecs.encode': {
        // Python 3 bytes pickled at protocol 2: _codecs.encode(text, 'latin1').
        const text = arg(0);
        if (typeof text !== 'string') throw this.fail('_codecs.encode of a non-string');
        return latin1Bytes(text);
      }
      case 'torch.jit._pickle.build_intlist':
      case 'torch.jit._pickle.build_doublelist':
      case 'torch.jit._pickle.build_boollist':
      case 'torch.jit._pickle.build_tensorlist':
      case 'torch.jit._pickle.build_genericlist':
      case 'torch.jit._pickle.restore_type_tag':
        return arg(0);
      default:
        throw this.fail(`no rebuild rule for ${callable.qualifiedName}`);
    }
  }

  private expectTensor(v: PyValue, what: string): PyTensor {
    if (!(v instanceof PyTensor)) throw this.fail(`${what} expects a tensor`);
    return v;
  }

  private intTuple(v: PyValue, what: string): bigint[] {
    const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : null;
    if (!items) throw this.fail(`tensor ${what} is not a tuple`);
    if (items.length > MAX_TENSOR_DIMS) throw this.fail(`tensor has ${items.length} dimensions, limit ${MAX_TENSOR_DIMS}`, 'LIMIT_EXCEEDED');
    return items.map((x) => {
      if (typeof x !== 'bigint' || x < 0n) throw this.fail(`tensor ${what} holds ${describe(x)}, not a non-negative integer`);
      return x;
    });
  }

  private rebuildTensor(storage: PyValue, offset: PyValue, size: PyValue, stride: PyValue, dtype: PyValue | undefined): PyTensor {
    if (!(storage instanceof PyStorage)) throw this.fail('tensor rebuilt from something that is not a storage');
    if (typeof offset !== 'bigint' || offset < 0n) throw this.fail('tensor storage offset is not a non-negative integer');
    const shape = this.intTuple(size, 'size');
    const strides = this.intTuple(stride, 'stride');
    if (shape.length !== strides.length) throw this.fail(`tensor has ${shape.length} sizes but ${strides.length} strides`);
    let elementType: PyDType | PyStorageType = storage.storageType;
    if (dtype !== undefined) {
      if (!(dtype instanceof PyDType)) {
        throw new QuantLensError('INVALID_DTYPE', `tensor dtype argument is ${describe(dtype)}, not a torch dtype`, {
          offset: (this.options.baseOffset ?? 0) + this.opStart,
          file: this.options.file,
        });
      }
      elementType = dtype;
    }
    return new PyTensor(storage, elementType, offset, shape, strides);
  }
}

/** Persistent ids of torch archives: ('storage', storage_type, key, location, numel[, view_metadata]). */
export function storageFromPersistentId(pid: PyValue): PyStorage {
  const items = pid instanceof PyTuple ? pid.items : null;
  const typename = items?.[0];
  const tag = typename instanceof Uint8Array ? latin1.decode(typename) : typename;
  if (!items || tag !== 'storage') throw new QuantLensError('INVALID_PICKLE', `persistent id ${describe(pid)} is not a storage`);
  const [, storageType, key, location, numel, view] = items;
  if (!(storageType instanceof PyStorageType)) {
    throw new QuantLensError('INVALID_DTYPE', `storage type is ${describe(storageType ?? null)}, not a torch storage class`);
  }
  const keyText = typeof key === 'string' ? key : typeof key === 'bigint' ? key.toString() : key instanceof Uint8Array ? latin1.decode(key) : null;
  if (keyText === null) throw new QuantLensError('INVALID_PICKLE', 'storage key is not a string');
  const locationText = typeof location === 'string' ? location : location instanceof Uint8Array ? latin1.decode(location) : 'cpu';
  if (typeof numel !== 'bigint' || numel < 0n) throw new QuantLensError('INVALID_PICKLE', 'storage size is not a non-negative integer');
  if (view instanceof PyTuple) {
    const [, viewOffset, viewSize] = view.items;
    if (typeof viewOffset !== 'bigint' || typeof viewSize !== 'bigint' || viewOffset < 0n || viewSize < 0n || viewOffset + viewSize > numel) {
      throw new QuantLensError('INVALID_PICKLE', `storage view of ${keyText} lies outside its root`);
    }
    return new PyStorage(keyText, storageType, locationText, numel, viewOffset, viewSize);
  }
  return new PyStorage(keyText, storageType, locationText, numel);
}

/** Short description of a value for error messages. */
export function describe(v: PyValue): string {
  if (v === null) return 'None';
  if (typeof v === 'bigint') return `int ${v}`;
  if (typeof v === 'number') return `float ${v}`;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'string') return `str ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (v instanceof Uint8Array) return `bytes[${v.length}]`;
  if (Array.isArray(v)) return `list[${v.length}]`;
  if (v instanceof PyTuple) return `tuple[${v.items.length}]`;
  if (v instanceof PyDict) return `dict[${v.entries.size}]`;
  if (v instanceof PyGlobal) return v.qualifiedName;
  if (v instanceof PyObject) return `${v.className} object`;
  if (v instanceof PyDType || v instanceof PyStorageType) return `torch.${v.torchName}`;
  if (v instanceof PyStorage) return `storage ${v.key}`;
  if (v instanceof PyTensor) return 'tensor';
  return 'set';
}

function latin1Bytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i) & 0xff;
  return out;
}

function parsePyFloatWord(text: string): number {
  const t = text.trim().toLowerCase();
  if (t.endsWith('nan')) return NaN;
  return t.startsWith('-') ? -Infinity : Infinity;
}

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v' };

/** Protocol 0 STRING argument: a Python repr of a str, quotes included. */
function unquotePy(text: string): string | null {
  const q = text[0];
  if ((q !== "'" && q !== '"') || text.length < 2 || text[text.length - 1] !== q) return null;
  const body = text.slice(1, -1);
  return body.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8) & 0xff);
    return SIMPLE_ESCAPES[e] ?? `\\${e}`;
  });
}

/** Protocol 0 UNICODE argument: raw-unicode-escape (\uXXXX and \UXXXXXXXX only). */
function unescapeRawUnicode(text: string): string {
  return text.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, u4?: string, u8?: string) => {
    const cp = parseInt((u4 ?? u8)!, 16);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
  });
}
