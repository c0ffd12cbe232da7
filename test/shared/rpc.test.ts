import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RpcEndpoint, RemoteError, Transfer, errorPayloadOf, type RpcEnvelope } from '../../src/shared/rpc';
import { QuantLensError } from '../../src/core/errors';

interface ClientSide {
  requests: {
    add: { request: { a: number; b: number }; reply: number };
    fail: { request: Record<string, never>; reply: never };
    slow: { request: { ms: number }; reply: string };
    buffer: { request: { n: number }; reply: ArrayBuffer };
  };
  events: { hello: { who: string } };
}
interface ServerSide {
  requests: Record<never, never>;
  events: { progress: { done: number } };
}

/** Two endpoints wired back to back through a queue, as a webview or worker channel would be (asynchronous). */
function pair() {
  const log: Array<{ to: 'server' | 'client'; message: RpcEnvelope; transfer?: ArrayBuffer[] }> = [];
  let client!: RpcEndpoint<ServerSide, ClientSide>;
  const server: RpcEndpoint<ClientSide, ServerSide> = new RpcEndpoint((message, transfer) => {
    log.push({ to: 'client', message, transfer });
    setImmediate(() => client.receive(structuredClone(message)));
  });
  client = new RpcEndpoint((message, transfer) => {
    log.push({ to: 'server', message, transfer });
    setImmediate(() => server.receive(structuredClone(message)));
  });
  return { client, server, log };
}

test('a request resolves with the reply', async () => {
  const { client, server } = pair();
  server.handle('add', ({ a, b }) => a + b);
  assert.equal(await client.request('add', { a: 2, b: 3 }), 5);
});

test('async handlers and concurrent requests each get their own reply', async () => {
  const { client, server } = pair();
  server.handle('slow', async ({ ms }) => {
    await new Promise((r) => setTimeout(r, ms));
    return `after ${ms}`;
  });
  const replies = await Promise.all([client.request('slow', { ms: 20 }), client.request('slow', { ms: 1 })]);
  assert.deepEqual(replies, ['after 20', 'after 1']);
});

test("an error reply carries the QuantLensError's code, message, offset and tensor", async () => {
  const { client, server } = pair();
  server.handle('fail', () => {
    throw new QuantLensError('TRUNCATED', 'file ends inside tensor data', { offset: 1234, tensor: 'layers.0.w' });
  });
  await assert.rejects(client.request('fail', {}), (err: unknown) => {
    assert.ok(err instanceof RemoteError);
    assert.equal(err.code, 'TRUNCATED');
    assert.equal(err.message, 'file ends inside tensor data');
    assert.equal(err.offset, 1234);
    assert.equal(err.tensor, 'layers.0.w');
    return true;
  });
});

test('a plain Error becomes INTERNAL; a missing handler gives UNSUPPORTED', async () => {
  const { client, server } = pair();
  server.handle('fail', () => {
    throw new TypeError('boom');
  });
  await assert.rejects(client.request('fail', {}), { name: 'RemoteError', code: 'INTERNAL', message: 'boom' });
  await assert.rejects(client.request('add', { a: 1, b: 1 }), { code: 'UNSUPPORTED' });
});

test('events reach every listener of their type, and unsubscribing stops them', async () => {
  const { client, server } = pair();
  const seen: string[] = [];
  const a = server.on('hello', ({ who }) => seen.push(`a:${who}`));
  server.on('hello', ({ who }) => seen.push(`b:${who}`));
  client.notify('hello', { who: 'x' });
  await new Promise((r) => setImmediate(r));
  a.dispose();
  client.notify('hello', { who: 'y' });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['a:x', 'b:x', 'b:y']);
});

test('dispose rejects pending requests with CANCELLED and aborts running handlers', async () => {
  const { client, server } = pair();
  let handlerSignal: AbortSignal | undefined;
  server.handle('slow', (_req, signal) => {
    handlerSignal = signal;
    return new Promise<string>(() => {});
  });
  const pending = client.request('slow', { ms: 0 });
  await new Promise((r) => setImmediate(r));
  client.dispose();
  await assert.rejects(pending, { code: 'CANCELLED' });
  await assert.rejects(client.request('add', { a: 1, b: 2 }), { code: 'CANCELLED' });
  server.dispose();
  assert.equal(handlerSignal?.aborted, true);
});

test('aborting a request rejects it and aborts the handler on the other side', async () => {
  const { client, server, log } = pair();
  let aborted = false;
  server.handle('slow', (_req, signal) => {
    return new Promise<string>((_resolve, reject) => {
      signal.addEventListener('abort', () => {
        aborted = true;
        reject(new Error('aborted'));
      });
    });
  });
  const controller = new AbortController();
  const pending = client.request('slow', { ms: 0 }, { signal: controller.signal });
  await new Promise((r) => setImmediate(r));
  controller.abort();
  await assert.rejects(pending, { code: 'CANCELLED' });
  await new Promise((r) => setImmediate(r));
  assert.equal(aborted, true);
  // the aborted handler's error is not sent back: its request is no longer pending
  assert.equal(log.filter((e) => e.message.rpc === 'error').length, 0);
  await assert.rejects(client.request('slow', { ms: 0 }, { signal: AbortSignal.abort() }), { code: 'CANCELLED' });
});

test('Transfer replies hand their buffers to post', async () => {
  const { client, server, log } = pair();
  server.handle('buffer', ({ n }) => {
    const buf = new ArrayBuffer(n);
    return new Transfer(buf, [buf]);
  });
  const reply = await client.request('buffer', { n: 16 });
  assert.equal(reply.byteLength, 16);
  const sent = log.find((e) => e.message.rpc === 'reply');
  assert.equal(sent?.transfer?.length, 1);
});

test('receive ignores foreign messages and says so', () => {
  const { client } = pair();
  assert.equal(client.receive({ type: 'something-else' }), false);
  assert.equal(client.receive(null), false);
  assert.equal(client.receive({ rpc: 'reply', id: 999, body: 1 }), true);
});

test('errorPayloadOf keeps typed fields and drops the rest', () => {
  assert.deepEqual(errorPayloadOf(new QuantLensError('BAD_MAGIC', 'not gguf', { offset: 0, file: '/x.gguf' })), {
    code: 'BAD_MAGIC',
    message: 'not gguf',
    offset: 0,
    file: '/x.gguf',
  });
  assert.deepEqual(errorPayloadOf('plain'), { code: 'INTERNAL', message: 'plain' });
  assert.equal(errorPayloadOf(Object.assign(new Error('x'), { name: 'AbortError' })).code, 'CANCELLED');
});
