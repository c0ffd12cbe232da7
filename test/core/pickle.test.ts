import assert from 'node:assert/strict';
import { test } from 'node:test';
import { QuantLensError } from '../../src/core/errors';
import {
  loadPickle,
  PickleEndOfInput,
  PyDict,
  PyObject,
  PySet,
  PyStorage,
  PyTensor,
  PyTuple,
  storageFromPersistentId,
  type PyValue,
} from '../../src/core/pickle';
import { global, ordered, pickle, PickleWriter, reduce, tensor, tuple } from '../fixtures/pickle-builder';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

/** One object pickled by CPython 3.11 at protocols 0-5 (`pickle.dumps(obj, protocol=p).hex()`), with
 * obj = {'a': [1, -2, 3.5, 'xé\n', None, True, (1, 2)], 'b': b'\x00\xff', 'big': 2**70, 'neg': -300,
 * 's': {1, 2}, 'f': frozenset([3]), 'od': OrderedDict([('k', 1)]), 't': (), 'l': [], 'inf': float('inf')}. */
const CPYTHON: Record<number, string> = {
  0: '286470300a56610a70310a286c70320a49310a61492d320a6146332e350a615678e95c75303030610a70330a614e614930310a612849310a49320a7470340a617356620a70350a635f636f646563730a656e636f64650a70360a28565c7530303030ff0a70370a566c6174696e310a70380a7470390a527031300a73566269670a7031310a4c313138303539313632303731373431313330333432344c0a73566e65670a7031320a492d3330300a7356730a7031330a635f5f6275696c74696e5f5f0a7365740a7031340a28286c7031350a49310a6149320a61747031360a527031370a7356660a7031380a635f5f6275696c74696e5f5f0a66726f7a656e7365740a7031390a28286c7032300a49330a61747032310a527032320a73566f640a7032330a63636f6c6c656374696f6e730a4f726465726564446963740a7032340a2874527032350a566b0a7032360a49310a737356740a7032370a287473566c0a7032380a286c7032390a7356696e660a7033300a46696e660a732e',
  1: '7d71002858010000006171015d7102284b014afeffffff47400c000000000000580400000078c3a90a71034e4930310a284b014b02747104655801000000627105635f636f646563730a656e636f64650a710628580300000000c3bf710758060000006c6174696e31710874710952710a5803000000626967710b4c313138303539313632303731373431313330333432344c0a58030000006e6567710c4ad4feffff580100000073710d635f5f6275696c74696e5f5f0a7365740a710e285d710f284b014b02657471105271115801000000667112635f5f6275696c74696e5f5f0a66726f7a656e7365740a7113285d71144b036174711552711658020000006f64711763636f6c6c656374696f6e730a4f726465726564446963740a71182952711958010000006b711a4b0173580100000074711b2958010000006c711c5d711d5803000000696e66711e477ff0000000000000752e',
  2: '80027d71002858010000006171015d7102284b014afeffffff47400c000000000000580400000078c3a90a71034e884b014b02867104655801000000627105635f636f646563730a656e636f64650a7106580300000000c3bf710758060000006c6174696e31710886710952710a5803000000626967710b8a0900000000000000004058030000006e6567710c4ad4feffff580100000073710d635f5f6275696c74696e5f5f0a7365740a710e5d710f284b014b02658571105271115801000000667112635f5f6275696c74696e5f5f0a66726f7a656e7365740a71135d71144b036185711552711658020000006f64711763636f6c6c656374696f6e730a4f726465726564446963740a71182952711958010000006b711a4b0173580100000074711b2958010000006c711c5d711d5803000000696e66711e477ff0000000000000752e',
  3: '80037d71002858010000006171015d7102284b014afeffffff47400c000000000000580400000078c3a90a71034e884b014b02867104655801000000627105430200ff7106580300000062696771078a0900000000000000004058030000006e656771084ad4feffff5801000000737109636275696c74696e730a7365740a710a5d710b284b014b026585710c52710d580100000066710e636275696c74696e730a66726f7a656e7365740a710f5d71104b036185711152711258020000006f64711363636f6c6c656374696f6e730a4f726465726564446963740a71142952711558010000006b71164b017358010000007471172958010000006c71185d71195803000000696e66711a477ff0000000000000752e',
  4: '800495ad000000000000007d94288c0161945d94284b014afeffffff47400c0000000000008c0478c3a90a944e884b014b028694658c016294430200ff948c03626967948a090000000000000000408c036e6567944ad4feffff8c0173948f94284b014b02908c016694284b0391948c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b01738c017494298c016c945d948c03696e6694477ff0000000000000752e',
};
CPYTHON[5] = CPYTHON[4]!.replace(/^8004/, '8005');

function asDict(v: PyValue): Map<PyValue, PyValue> {
  assert.ok(v instanceof PyDict);
  return v.entries;
}

for (const [protocol, text] of Object.entries(CPYTHON)) {
  test(`CPython protocol ${protocol} pickle reads back the same values`, () => {
    const bytes = hex(text);
    const { value, end } = loadPickle(bytes);
    assert.equal(end, bytes.length);
    const d = asDict(value);
    const a = d.get('a') as PyValue[];
    assert.deepEqual(a.slice(0, 6), [1n, -2n, 3.5, 'xé\n', null, true]);
    assert.ok(a[6] instanceof PyTuple);
    assert.deepEqual((a[6] as PyTuple).items, [1n, 2n]);
    assert.deepEqual(d.get('b'), Uint8Array.from([0, 255]));
    assert.equal(d.get('big'), 2n ** 70n);
    assert.equal(d.get('neg'), -300n);
    const s = d.get('s') as PySet;
    assert.ok(s instanceof PySet && !s.frozen);
    assert.deepEqual([...s.items].sort(), [1n, 2n]);
    const f = d.get('f') as PySet;
    assert.ok(f instanceof PySet && f.frozen);
    assert.deepEqual(f.items, [3n]);
    assert.deepEqual([...asDict(d.get('od')!)], [['k', 1n]]);
    assert.deepEqual((d.get('t') as PyTuple).items, []);
    assert.deepEqual(d.get('l'), []);
    assert.equal(d.get('inf'), Infinity);
  });
}

test('memo: BINPUT/BINGET and MEMOIZE share one object', () => {
  const w = new PickleWriter().proto(2).byte(0x5d).binput().byte(0x68, 0, 0x86).stop();
  const { value } = loadPickle(w.bytes());
  assert.ok(value instanceof PyTuple);
  assert.equal(value.items[0], value.items[1]);
  const m = loadPickle(hex('80045d94680086942e')).value as PyTuple;
  assert.equal(m.items[0], m.items[1]);
});

test('storages and tensors: _rebuild_tensor_v2 with a persistent id', () => {
  const bytes = pickle({ w: tensor({ storageType: 'HalfStorage', key: '7', numel: 12, shape: [3, 2], stride: [1, 3], offset: 2 }) });
  const { value } = loadPickle(bytes, 0, { persistentLoad: storageFromPersistentId });
  const t = asDict(value).get('w');
  assert.ok(t instanceof PyTensor);
  assert.ok(t.storage instanceof PyStorage);
  assert.equal(t.storage.key, '7');
  assert.equal(t.storage.numel, 12n);
  assert.equal(t.dtype.dtype, 'F16');
  assert.deepEqual(t.shape, [3n, 2n]);
  assert.deepEqual(t.strides, [1n, 3n]);
  assert.equal(t.storageOffset, 2n);
});

test('_rebuild_tensor_v3 takes its dtype from the argument; parameters unwrap', () => {
  const bytes = pickle([
    tensor({ storageType: 'UntypedStorage', key: '0', numel: 8, shape: [4], dtype: 'float8_e4m3fn' }),
    tensor({ storageType: 'BFloat16Storage', key: '1', numel: 4, shape: [4], parameter: true }),
  ]);
  const [a, b] = loadPickle(bytes, 0, { persistentLoad: storageFromPersistentId }).value as PyTensor[];
  assert.equal(a!.dtype.dtype, 'F8_E4M3');
  assert.equal(a!.storage.storageType.dtype, 'U8');
  assert.ok(b instanceof PyTensor);
  assert.equal(b.dtype.dtype, 'BF16');
});

test('TorchScript __torch__ classes become inert attribute bags', () => {
  const w = new PickleWriter().proto(2).global('__torch__.model', 'Net').byte(0x29, 0x81);
  w.value({ training: false, hidden: 64 }).byte(0x62).stop();
  const { value } = loadPickle(w.bytes());
  assert.ok(value instanceof PyObject);
  assert.equal(value.className, '__torch__.model.Net');
  assert.equal(value.attrs.get('hidden'), 64n);
});

test('allowed builtins: set, frozenset, slice, torch.Size, OrderedDict with items', () => {
  const bytes = pickle([
    reduce(global('builtins', 'set'), [[1, 2]]),
    reduce(global('builtins', 'slice'), [0, 4, null]),
    reduce(global('torch', 'Size'), [tuple(2, 3)]),
    ordered([['x', 1]]),
    reduce(global('collections', 'OrderedDict'), [[tuple('y', 2)]]),
  ]);
  const [set, slice, size, od, od2] = loadPickle(bytes).value as PyValue[];
  assert.ok(set instanceof PySet);
  assert.ok(slice instanceof PyObject && slice.className === 'builtins.slice');
  assert.deepEqual((size as PyTuple).items, [2n, 3n]);
  assert.deepEqual([...asDict(od!)], [['x', 1n]]);
  assert.deepEqual([...asDict(od2!)], [['y', 2n]]);
});

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof QuantLensError, `not a QuantLensError: ${String(err)}`);
    return `${err.code}: ${err.message}`;
  }
  return 'no error';
}

// One case per error code the interpreter raises.
const MALFORMED: Array<{ name: string; bytes: Uint8Array; code: string; mentions?: string }> = [
  { name: 'GLOBAL os.system', bytes: new PickleWriter().proto(2).global('os', 'system').stop().bytes(), code: 'FORBIDDEN_GLOBAL', mentions: 'os.system' },
  { name: 'GLOBAL posix.system called', bytes: pickle(reduce(global('posix', 'system'), ['echo pwned'])), code: 'FORBIDDEN_GLOBAL', mentions: 'posix.system' },
  {
    name: 'STACK_GLOBAL builtins.eval',
    bytes: new PickleWriter().proto(4).str('builtins').str('eval').byte(0x93).stop().bytes(),
    code: 'FORBIDDEN_GLOBAL',
    mentions: 'builtins.eval',
  },
  { name: 'INST subprocess.Popen', bytes: new PickleWriter().mark().text('isubprocess\nPopen\n').stop().bytes(), code: 'FORBIDDEN_GLOBAL', mentions: 'subprocess.Popen' },
  { name: 'EXT1 extension registry', bytes: new PickleWriter().proto(2).byte(0x82, 1).stop().bytes(), code: 'FORBIDDEN_GLOBAL' },
  { name: 'torch.load itself', bytes: new PickleWriter().proto(2).global('torch', 'load').stop().bytes(), code: 'FORBIDDEN_GLOBAL', mentions: 'torch.load' },
  { name: 'unknown opcode', bytes: Uint8Array.from([0x80, 0x02, 0xff, 0x2e]), code: 'INVALID_PICKLE', mentions: '0xff' },
  { name: 'memo key out of range', bytes: Uint8Array.from([0x80, 0x02, 0x68, 0x05, 0x2e]), code: 'INVALID_PICKLE', mentions: 'memo key 5' },
  { name: 'stack underflow', bytes: Uint8Array.from([0x80, 0x02, 0x30, 0x2e]), code: 'INVALID_PICKLE' },
  { name: 'STOP on an empty stack', bytes: Uint8Array.from([0x80, 0x02, 0x2e]), code: 'INVALID_PICKLE' },
  { name: 'pop through a mark', bytes: Uint8Array.from([0x80, 0x02, 0x4e, 0x28, 0x30, 0x2e]), code: 'INVALID_PICKLE' },
  { name: 'protocol 6', bytes: Uint8Array.from([0x80, 0x06, 0x4e, 0x2e]), code: 'INVALID_PICKLE' },
  { name: 'truncated before STOP', bytes: pickle({ a: [1, 2, 3] }).subarray(0, 12), code: 'TRUNCATED' },
  { name: 'truncated string', bytes: Uint8Array.from([0x80, 0x02, 0x58, 0x10, 0, 0, 0, 0x61]), code: 'TRUNCATED' },
  { name: 'BINUNICODE8 of 2^62 bytes', bytes: Uint8Array.from([0x80, 0x04, 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x2e]), code: 'LIMIT_EXCEEDED' },
  { name: 'LONG4 of 2^30 bytes', bytes: Uint8Array.from([0x80, 0x02, 0x8b, 0, 0, 0, 0x40, 0x2e]), code: 'LIMIT_EXCEEDED' },
  { name: 'invalid UTF-8 in BINUNICODE', bytes: Uint8Array.from([0x80, 0x02, 0x58, 1, 0, 0, 0, 0xff, 0x2e]), code: 'INVALID_PICKLE' },
  { name: 'persistent id without a loader', bytes: Uint8Array.from([0x80, 0x02, 0x4e, 0x51, 0x2e]), code: 'INVALID_PICKLE' },
  { name: 'out-of-band buffer', bytes: Uint8Array.from([0x80, 0x05, 0x97, 0x2e]), code: 'INVALID_PICKLE' },
  { name: 'SETITEM on a list', bytes: Uint8Array.from([0x80, 0x02, 0x5d, 0x4e, 0x4e, 0x73, 0x2e]), code: 'INVALID_PICKLE' },
  { name: 'REDUCE of a dtype', bytes: pickle(reduce(global('torch', 'float32'), [])), code: 'INVALID_PICKLE' },
  {
    name: '_rebuild_tensor_v3 with a non-dtype',
    bytes: (() => {
      const w = new PickleWriter().proto(2).global('torch._utils', '_rebuild_tensor_v3').mark();
      w.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(4).byte(0x74, 0x51);
      w.int(0).value(tuple(4)).value(tuple(1)).byte(0x89).byte(0x4e).int(7).byte(0x74, 0x52).stop();
      return w.bytes();
    })(),
    code: 'INVALID_DTYPE',
  },
  {
    name: 'negative tensor size',
    bytes: (() => {
      const w = new PickleWriter().proto(2).global('torch._utils', '_rebuild_tensor_v2').mark();
      w.mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(4).byte(0x74, 0x51);
      w.int(0).value(tuple(-4)).value(tuple(1)).byte(0x89).byte(0x4e).byte(0x74, 0x52).stop();
      return w.bytes();
    })(),
    code: 'INVALID_PICKLE',
  },
  {
    name: 'tensor of 9 dimensions',
    bytes: pickle(tensor({ storageType: 'FloatStorage', key: '0', numel: 1, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1] })),
    code: 'LIMIT_EXCEEDED',
  },
];

for (const c of MALFORMED) {
  test(`malformed pickle: ${c.name} → ${c.code}`, () => {
    const got = code(() => loadPickle(c.bytes, 0, { persistentLoad: storageFromPersistentId }));
    assert.ok(got.startsWith(`${c.code}:`), got);
    if (c.mentions) assert.ok(got.includes(c.mentions), got);
  });
}

test('truncation is reported as PickleEndOfInput so callers can read more', () => {
  assert.throws(() => loadPickle(pickle([1, 2, 3]).subarray(0, 5)), PickleEndOfInput);
});

test('persistent ids that are not storages are refused', () => {
  const bytes = new PickleWriter().proto(2).value(tuple('module', 1)).byte(0x51).stop().bytes();
  assert.match(code(() => loadPickle(bytes, 0, { persistentLoad: storageFromPersistentId })), /^INVALID_PICKLE/);
  const notAType = new PickleWriter().proto(2).value(tuple('storage', 'FloatStorage', '0', 'cpu', 4)).byte(0x51).stop().bytes();
  assert.match(code(() => loadPickle(notAType, 0, { persistentLoad: storageFromPersistentId })), /^INVALID_DTYPE/);
});
