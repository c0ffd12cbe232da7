import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemoryByteSource, type ByteSource } from '../../src/core/bytesource';
import { QuantLensError } from '../../src/core/errors';
import { PROTOBUF_MAX_DEPTH } from '../../src/core/limits';
import { encodeMessage, MessageBuilder, writeMessageToFile } from '../../src/core/protobuf/encoder';
import { openProtoMessage, type ProtoMessage } from '../../src/core/protobuf/scanner';
import { asFloat32, asFloat64, asInt32, asInt64, decodeZigZag, encodeZigZag, type ProtoField } from '../../src/core/protobuf/wire';
import { concat, f32Field, f64Field, key, lField, sField, varint, vField } from '../fixtures/onnx-builder';

/** A ByteSource that counts the bytes read from it. */
class CountingSource implements ByteSource {
  bytesRead = 0;
  readonly size: number;
  constructor(
    private readonly inner: MemoryByteSource,
    readonly name = 'counting',
  ) {
    this.size = inner.size;
  }
  async read(offset: number, into: Uint8Array): Promise<number> {
    const n = await this.inner.read(offset, into);
    this.bytesRead += n;
    return n;
  }
  async close(): Promise<void> {}
}

async function fieldsOf(msg: ProtoMessage): Promise<ProtoField[]> {
  const out: ProtoField[] = [];
  for await (const f of msg.fields()) out.push(f);
  return out;
}

async function scan(bytes: Uint8Array, inMemoryMessageBytes?: number): Promise<ProtoField[]> {
  return fieldsOf(await openProtoMessage(new MemoryByteSource(bytes, 'test.pb'), { inMemoryMessageBytes }));
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof QuantLensError, `expected a QuantLensError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

for (const mode of ['in memory', 'streamed'] as const) {
  const limit = mode === 'streamed' ? 0 : undefined;

  test(`scanner (${mode}): varints, fixed values, offsets and lengths of every field`, async () => {
    const values = [0n, 1n, 127n, 128n, 300n, 2n ** 32n, 2n ** 49n, 2n ** 56n + 3n, 2n ** 63n, 2n ** 64n - 1n];
    const bytes = concat(...values.map((v, i) => vField(i + 1, v)), f32Field(20, 1.5), f64Field(21, -2.25), sField(22, 'hello'));
    const fields = await scan(bytes, limit);
    assert.deepEqual(
      fields.slice(0, values.length).map((f) => f.bits),
      values,
    );
    const [f32, f64, s] = fields.slice(values.length);
    assert.equal(asFloat32(f32!.bits), 1.5);
    assert.equal(asFloat64(f64!.bits), -2.25);
    assert.equal(s!.wireType, 2);
    assert.equal(s!.length, 5);
    assert.equal(new TextDecoder().decode(bytes.subarray(s!.offset, s!.offset + s!.length)), 'hello');
    assert.equal(s!.start, bytes.length - 8, 'two-byte key, one-byte length, five bytes');
    // Every field's range ends where the next begins.
    for (let i = 1; i < fields.length; i++) assert.equal(fields[i]!.start, fields[i - 1]!.offset + fields[i - 1]!.length);
  });

  test(`scanner (${mode}): sub-messages keep absolute offsets`, async () => {
    const inner = concat(vField(1, 7), sField(2, 'abc'));
    const bytes = concat(vField(1, 1), lField(2, inner));
    const msg = await openProtoMessage(new MemoryByteSource(bytes), { inMemoryMessageBytes: limit });
    const fields = await fieldsOf(msg);
    const sub = await msg.message(fields[1]!);
    assert.equal(sub.start, fields[1]!.offset);
    assert.equal(sub.depth, 1);
    const innerFields = await fieldsOf(sub);
    assert.equal(innerFields[0]!.bits, 7n);
    assert.deepEqual(new TextDecoder().decode(await sub.bytes(innerFields[1]!, 100)), 'abc');
    assert.equal(innerFields[1]!.offset, bytes.length - 3);
  });
}

test('int32/int64/zigzag views of varint bits', () => {
  assert.equal(asInt64(2n ** 64n - 1n), -1n);
  assert.equal(asInt32(2n ** 64n - 5n), -5);
  for (const v of [0n, -1n, 1n, -(2n ** 63n), 2n ** 63n - 1n]) assert.equal(decodeZigZag(encodeZigZag(v)), v);
  assert.equal(encodeZigZag(-1n), 1n);
  assert.equal(encodeZigZag(1n), 2n);
});

test('malformed wire data: one case per error code', async () => {
  // A varint with 11 bytes.
  await rejectsWith(scan(concat(key(1, 0), new Uint8Array(10).fill(0xff), Uint8Array.of(0x01))), 'INVALID_PROTOBUF');
  // A 10-byte varint whose last byte carries bits beyond 64.
  await rejectsWith(scan(concat(key(1, 0), new Uint8Array(9).fill(0xff), Uint8Array.of(0x02))), 'INVALID_PROTOBUF');
  // Wire types 3, 4 (groups), 6, 7.
  for (const wt of [3, 4, 6, 7]) await rejectsWith(scan(concat(key(1, wt), varint(0))), 'INVALID_PROTOBUF');
  // Field number 0.
  await rejectsWith(scan(concat(key(0, 0), varint(1))), 'INVALID_PROTOBUF');
  // A length that runs past the end of the file.
  await rejectsWith(scan(concat(key(1, 2), varint(100), Uint8Array.of(1, 2, 3))), 'TRUNCATED');
  // A file that ends inside a varint, or inside a fixed64.
  await rejectsWith(scan(concat(key(1, 0), Uint8Array.of(0x80))), 'TRUNCATED');
  await rejectsWith(scan(concat(key(1, 1), Uint8Array.of(1, 2, 3))), 'TRUNCATED');
  // A length that overruns its enclosing message (but not the file).
  const overrun = concat(lField(1, concat(key(2, 2), varint(5), Uint8Array.of(1))), sField(3, 'padding'));
  const msg = await openProtoMessage(new MemoryByteSource(overrun));
  const [outer] = await fieldsOf(msg);
  await rejectsWith(fieldsOf(await msg.message(outer!)), 'INVALID_PROTOBUF');
  // A payload larger than the caller allows.
  const big = await openProtoMessage(new MemoryByteSource(sField(1, 'x'.repeat(100))));
  const [s] = await fieldsOf(big);
  await rejectsWith(big.bytes(s!, 10), 'LIMIT_EXCEEDED');
  // A varint field descended into as a message.
  const [v] = await fieldsOf(await openProtoMessage(new MemoryByteSource(vField(1, 5))));
  await rejectsWith(big.message(v!), 'INVALID_PROTOBUF');
});

test(`nesting deeper than PROTOBUF_MAX_DEPTH (${PROTOBUF_MAX_DEPTH}) is LIMIT_EXCEEDED`, async () => {
  for (const limit of [undefined, 0]) {
    let bytes = vField(1, 1);
    for (let i = 0; i < PROTOBUF_MAX_DEPTH + 2; i++) bytes = lField(1, bytes);
    let msg = await openProtoMessage(new MemoryByteSource(bytes), { inMemoryMessageBytes: limit });
    const descend = async () => {
      for (;;) {
        const [f] = await fieldsOf(msg);
        if (f!.wireType !== 2) return;
        msg = await msg.message(f!);
      }
    };
    await rejectsWith(descend(), 'LIMIT_EXCEEDED');
  }
});

test('streamed scanning locates a large field without reading it', async () => {
  const payload = new Uint8Array(4 << 20).fill(7);
  const bytes = concat(vField(1, 42), lField(2, payload), sField(3, 'after'));
  const source = new CountingSource(new MemoryByteSource(bytes));
  const fields = await fieldsOf(await openProtoMessage(source));
  assert.deepEqual(
    fields.map((f) => [f.fieldNumber, f.length]),
    [
      [1, 1],
      [2, payload.length],
      [3, 5],
    ],
  );
  assert.ok(source.bytesRead < 256 << 10, `read ${source.bytesRead} bytes of ${bytes.length}`);
});

test('encoder: scalar, string, nested and packed fields encode as protobuf does', async () => {
  const b = new MessageBuilder()
    .varint(1, 300)
    .varint(2, -1)
    .varint(3, 2n ** 63n)
    .sint(4, -3)
    .float(5, 1.5)
    .double(6, -2.25)
    .string(7, 'hi')
    .message(8, new MessageBuilder().varint(1, 7).string(2, 'x'))
    .packedVarints(9, [1, 300, 2n ** 40n])
    .packedFloats(10, [1, 2])
    .varint(11, true);
  const expected = concat(
    vField(1, 300),
    vField(2, -1),
    vField(3, 2n ** 63n),
    vField(4, 5),
    f32Field(5, 1.5),
    f64Field(6, -2.25),
    sField(7, 'hi'),
    lField(8, concat(vField(1, 7), sField(2, 'x'))),
    lField(9, concat(varint(1), varint(300), varint(2n ** 40n))),
    lField(10, Uint8Array.of(0, 0, 0x80, 0x3f, 0, 0, 0, 0x40)),
    vField(11, 1),
  );
  assert.equal(b.byteLength(), expected.length);
  assert.deepEqual(await encodeMessage(b), expected);
  assert.equal(vField(2, -1).length, 11, 'negative int64 is a 10-byte varint');
});

test('encoder: fields referencing source ranges are copied at write time, streamed to a file', async () => {
  const sourceBytes = new Uint8Array(3 << 20);
  for (let i = 0; i < sourceBytes.length; i++) sourceBytes[i] = (i * 31) & 0xff;
  const source = new MemoryByteSource(sourceBytes, 'source');
  const existingField = sField(3, 'kept');
  const withField = new MemoryByteSource(concat(Uint8Array.of(9, 9), existingField), 'fields');
  const b = new MessageBuilder()
    .varint(1, 1)
    .bytesFromSource(2, source, 1000, sourceBytes.length - 2000)
    .rawFromSource(withField, 2, existingField.length)
    .message(4, new MessageBuilder().bytesFromSource(1, source, 5, 10));
  const expected = concat(
    vField(1, 1),
    lField(2, sourceBytes.subarray(1000, sourceBytes.length - 1000)),
    existingField,
    lField(4, lField(1, sourceBytes.subarray(5, 15))),
  );
  const dir = await mkdtemp(join(tmpdir(), 'quantlens-pb-'));
  try {
    const path = join(dir, 'out.pb');
    const written = await writeMessageToFile(b, path);
    assert.equal(written, expected.length);
    assert.deepEqual(new Uint8Array(await readFile(path)), expected);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // A referenced range that the source cannot supply is a typed error.
  await rejectsWith(encodeMessage(new MessageBuilder().bytesFromSource(1, source, sourceBytes.length - 4, 8)), 'TRUNCATED');
});

test('encoder output scans back to the same fields', async () => {
  const b = new MessageBuilder().varint(1, -7).string(2, 'name').fixed32(3, 0xdeadbeef).fixed64(4, 2n ** 60n);
  const fields = await scan(await encodeMessage(b));
  assert.equal(asInt64(fields[0]!.bits), -7n);
  assert.equal(fields[1]!.length, 4);
  assert.equal(fields[2]!.bits, 0xdeadbeefn);
  assert.equal(fields[3]!.bits, 2n ** 60n);
});
