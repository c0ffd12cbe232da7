/**
 * The one RPC endpoint used between the extension and its webviews, and between the host and its
 * workers. It is transport-agnostic: it sends through the `post` function it is given, and is fed
 * incoming messages through `receive`. No vscode, DOM or Node imports here.
 *
 * A protocol is a pair of maps, one per direction (see protocol.ts):
 * `requests: { [type]: { request: R; reply: P } }` and `events: { [type]: E }`.
 */

export interface ProtocolSide {
  requests: Record<string, { request: unknown; reply: unknown }>;
  events: Record<string, unknown>;
}

/** The error a request rejects with: the remote QuantLensError's fields, or INTERNAL. */
export interface ErrorPayload {
  code: string;
  message: string;
  offset?: number;
  tensor?: string;
  file?: string;
}

/** A request that failed on the other side (or was cut off by dispose/cancel). */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  readonly code: string;
  readonly offset?: number;
  readonly tensor?: string;
  readonly file?: string;

  constructor(payload: ErrorPayload) {
    super(payload.message);
    this.code = payload.code;
    if (payload.offset !== undefined) this.offset = payload.offset;
    if (payload.tensor !== undefined) this.tensor = payload.tensor;
    if (payload.file !== undefined) this.file = payload.file;
  }

  toJSON(): ErrorPayload {
    return errorPayloadOf(this);
  }
}

/** The wire form of every RPC message; `rpc` tells them apart from anything else on the channel. */
export type RpcEnvelope =
  | { rpc: 'request'; id: number; type: string; body: unknown }
  | { rpc: 'reply'; id: number; body: unknown }
  | { rpc: 'error'; id: number; error: ErrorPayload }
  | { rpc: 'cancel'; id: number }
  | { rpc: 'event'; type: string; body: unknown };

/** Sends one envelope; `transfer` lists buffers to move rather than copy (worker transports). */
export type PostFunction = (message: RpcEnvelope, transfer?: ArrayBuffer[]) => void;

/** A handler's result with buffers to transfer along with it. */
export class Transfer<T> {
  constructor(readonly value: T, readonly buffers: ArrayBuffer[]) {}
}

type RequestOf<S extends ProtocolSide, K extends keyof S['requests']> = S['requests'][K]['request'];
type ReplyOf<S extends ProtocolSide, K extends keyof S['requests']> = S['requests'][K]['reply'];

export type RequestHandler<S extends ProtocolSide, K extends keyof S['requests']> = (
  request: RequestOf<S, K>,
  signal: AbortSignal,
) => ReplyOf<S, K> | Transfer<ReplyOf<S, K>> | Promise<ReplyOf<S, K> | Transfer<ReplyOf<S, K>>>;

export interface RequestOptions {
  /** Aborting rejects the request with CANCELLED and tells the other side to abort its handler. */
  signal?: AbortSignal;
  transfer?: ArrayBuffer[];
}

export interface Unsubscribe {
  dispose(): void;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: RemoteError): void;
  cleanup(): void;
}

/**
 * One end of a connection. `Incoming` is what the other side sends (we handle its requests and
 * listen to its events); `Outgoing` is what we send.
 */
export class RpcEndpoint<Incoming extends ProtocolSide, Outgoing extends ProtocolSide> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, (request: unknown, signal: AbortSignal) => unknown>();
  private readonly listeners = new Map<string, Set<(body: unknown) => void>>();
  /** Aborts the handlers still running for the other side's requests, by request id. */
  private readonly running = new Map<number, AbortController>();
  private disposed = false;

  constructor(private readonly post: PostFunction) {}

  /** Sends a request and resolves with the reply; rejects with RemoteError on an error reply. */
  request<K extends keyof Outgoing['requests'] & string>(
    type: K,
    body: RequestOf<Outgoing, K>,
    options: RequestOptions = {},
  ): Promise<ReplyOf<Outgoing, K>> {
    if (this.disposed) return Promise.reject(new RemoteError({ code: 'CANCELLED', message: 'connection closed' }));
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(new RemoteError({ code: 'CANCELLED', message: 'cancelled' }));
    const id = this.nextId++;
    return new Promise<ReplyOf<Outgoing, K>>((resolve, reject) => {
      const onAbort = (): void => {
        this.settle(id)?.reject(new RemoteError({ code: 'CANCELLED', message: 'cancelled' }));
        this.send({ rpc: 'cancel', id });
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: resolve as (value: unknown) => void,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      });
      this.send({ rpc: 'request', id, type, body }, options.transfer);
    });
  }

  /** Sends an event (no reply). */
  notify<K extends keyof Outgoing['events'] & string>(type: K, body: Outgoing['events'][K], transfer?: ArrayBuffer[]): void {
    if (!this.disposed) this.send({ rpc: 'event', type, body }, transfer);
  }

  /** Serves one request type; a thrown error becomes an error reply with its code, offset and tensor. */
  handle<K extends keyof Incoming['requests'] & string>(type: K, handler: RequestHandler<Incoming, K>): Unsubscribe {
    if (this.handlers.has(type)) throw new Error(`duplicate RPC handler for ${type}`);
    this.handlers.set(type, handler as (request: unknown, signal: AbortSignal) => unknown);
    return { dispose: () => this.handlers.delete(type) };
  }

  /** Listens to one event type. */
  on<K extends keyof Incoming['events'] & string>(type: K, listener: (body: Incoming['events'][K]) => void): Unsubscribe {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    const l = listener as (body: unknown) => void;
    set.add(l);
    return { dispose: () => set.delete(l) };
  }

  /** Feeds one incoming message; returns false when it is not an RPC envelope (so callers may route it elsewhere). */
  receive(message: unknown): boolean {
    if (!isEnvelope(message) || this.disposed) return isEnvelope(message);
    switch (message.rpc) {
      case 'request':
        void this.serve(message.id, message.type, message.body);
        break;
      case 'reply':
        this.settle(message.id)?.resolve(message.body);
        break;
      case 'error':
        this.settle(message.id)?.reject(new RemoteError(message.error));
        break;
      case 'cancel': {
        // the requester has stopped waiting: abort the handler and send nothing back
        const controller = this.running.get(message.id);
        this.running.delete(message.id);
        controller?.abort();
        break;
      }
      case 'event':
        for (const listener of [...(this.listeners.get(message.type) ?? [])]) {
          try {
            listener(message.body);
          } catch (err) {
            // one failing listener must not starve the others; surface it asynchronously
            queueMicrotask(() => {
              throw err;
            });
          }
        }
        break;
    }
    return true;
  }

  /** Rejects every pending request, aborts running handlers, drops handlers and listeners. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const id of [...this.pending.keys()]) {
      this.settle(id)?.reject(new RemoteError({ code: 'CANCELLED', message: 'connection closed' }));
    }
    for (const controller of this.running.values()) controller.abort();
    this.running.clear();
    this.handlers.clear();
    this.listeners.clear();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private async serve(id: number, type: string, body: unknown): Promise<void> {
    const handler = this.handlers.get(type);
    if (!handler) {
      this.send({ rpc: 'error', id, error: { code: 'UNSUPPORTED', message: `no handler for request ${type}` } });
      return;
    }
    const controller = new AbortController();
    this.running.set(id, controller);
    try {
      const result = await handler(body, controller.signal);
      if (this.running.delete(id) && !this.disposed) {
        if (result instanceof Transfer) this.send({ rpc: 'reply', id, body: result.value }, result.buffers);
        else this.send({ rpc: 'reply', id, body: result });
      }
    } catch (err) {
      if (this.running.delete(id) && !this.disposed) this.send({ rpc: 'error', id, error: errorPayloadOf(err) });
    }
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    p.cleanup();
    return p;
  }

  private send(message: RpcEnvelope, transfer?: ArrayBuffer[]): void {
    if (transfer?.length) this.post(message, transfer);
    else this.post(message);
  }
}

/** The fields of a QuantLensError (or anything error-like) that cross the wire. */
export function errorPayloadOf(err: unknown): ErrorPayload {
  if (err && typeof err === 'object') {
    const e = err as Partial<ErrorPayload> & { name?: string };
    const code = typeof e.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(e.code) ? e.code : e.name === 'AbortError' ? 'CANCELLED' : 'INTERNAL';
    const payload: ErrorPayload = { code, message: typeof e.message === 'string' ? e.message : String(err) };
    if (typeof e.offset === 'number') payload.offset = e.offset;
    if (typeof e.tensor === 'string') payload.tensor = e.tensor;
    if (typeof e.file === 'string') payload.file = e.file;
    return payload;
  }
  return { code: 'INTERNAL', message: String(err) };
}

function isEnvelope(message: unknown): message is RpcEnvelope {
  if (!message || typeof message !== 'object') return false;
  const m = message as { rpc?: unknown; id?: unknown; type?: unknown };
  switch (m.rpc) {
    case 'request':
      return typeof m.id === 'number' && typeof m.type === 'string';
    case 'reply':
    case 'error':
    case 'cancel':
      return typeof m.id === 'number';
    case 'event':
      return typeof m.type === 'string';
    default:
      return false;
  }
}
