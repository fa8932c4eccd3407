/**
 * The server half of the public API: {@link RpcServer} binds a QUIC endpoint (in Rust) and runs
 * TypeScript handlers for the calls it receives. Framing, stream I/O, deadlines and backpressure
 * stay in Rust; this module only drives handlers, receiving calls in batches (one N-API crossing
 * per batch).
 * @module
 */
import { context as otelContext } from '@opentelemetry/api';
import { native, type Native } from './binding.js';
import { asRpcError, fromBinding, reportInternal, RpcError, toWire, unknownKind } from './errors.js';
import { chain, type ServerCallFn, type ServerInterceptor, type ServerResponse } from './interceptor.js';
import { appendAll, fromEntries, toEntries } from './metadata.js';
import { endMovedSpan, endSpan, startServerSpan } from './tracing.js';
import { AdminEndpoint, checkAdmin, type AdminOptions } from './admin.js';
import { recordCall } from './metrics.js';
import { bytes, connectionTimers, describe, func, invalid, optionalFunctions, optionalInteger, optionalPemFiles, optionalPort, optionalString, record, U32_MAX } from './options.js';
import type { ConnectionStats } from './stats.js';

/** Options of {@link RpcServer.listen}. */
export interface ServerOptions {
  /** Host to bind: an IP address (IPv4 or IPv6 literal) or a DNS name. Default `127.0.0.1`. */
  host?: string;
  /** UDP port, an integer in 0..65535; 0 (default) picks a free one. */
  port?: number;
  /**
   * PEM certificate chain and private key (both required). Without it the server generates a
   * self-signed certificate (rcgen) whose fingerprint is {@link RpcServer.certFingerprint}.
   */
  tls?: { certPath: string; keyPath: string };
  /** Largest accepted frame body in bytes (PROTOCOL.md), a positive integer. Default 16 MiB. */
  maxFrameSize?: number;
  /**
   * Per streaming call, how many items / bytes the server queues before the handler is paused
   * (backpressure); each a positive integer. Defaults: 256 items, 1 MiB.
   */
  streamWindow?: { items?: number; bytes?: number };
  /**
   * QUIC idle timeout this server offers, ms, a positive integer (RFC 9000 section 10.1): a
   * connection silent that long is closed and its calls fail with `UNAVAILABLE`. A connection
   * uses the smaller of its two ends' offers, so a client whose `lossDetectionMs` is lower
   * decides. Default 30000.
   */
  idleTimeoutMs?: number;
  /**
   * Interval between this server's keep-alive PINGs on a quiet connection, ms, an integer below
   * `idleTimeoutMs`; 0 for none. Default 5000, or a third of `idleTimeoutMs` if that is less.
   */
  keepAliveMs?: number;
  /**
   * Server middleware, applied to every call of a registered method, unary and
   * server-streaming, in this order (the first one outermost; see the `interceptor` module and
   * {@link RpcServer.use}). Default none.
   */
  interceptors?: ServerInterceptor[];
  /**
   * Serve the HTTP admin endpoint (`/metrics`, `/health/live`, `/health/ready`: the server
   * listens) on this address; see the `admin` module. Default: none.
   */
  admin?: AdminOptions;
}

/** The connection a call arrived on. */
export interface CallConnection {
  /** The connection's id, identical on client and server (TLS exporter, RFC 8446 section 7.5). */
  readonly id: string;
  /** The client's UDP address, `ip:port`. */
  readonly remoteAddress: string;
  /** quinn's statistics now; `undefined` once the connection is closed. */
  stats(): ConnectionStats | undefined;
}

/** What a handler knows about its call. */
export interface CallContext {
  /** The method name. */
  readonly method: string;
  /** The client's deadline in ms from reception; 0 when none. */
  readonly deadlineMs: number;
  /**
   * Aborts when the call ends early: client cancellation (reason code `CANCELLED`), deadline
   * (`DEADLINE_EXCEEDED`) or connection loss (`UNAVAILABLE`). `signal.reason` is an {@link RpcError}.
   */
  readonly signal: AbortSignal;
  /** The connection the call arrived on. */
  readonly connection: CallConnection;
  /**
   * The request headers (PROTOCOL.md section 5.6), lowercase keys, `-bin` values as base64
   * ({@link decodeBinaryHeader}). Through a director they include `rpcnet-session-id` (the
   * session id, 16 hex digits); a migrated, failed-over or resumed call sees the same headers.
   */
  readonly metadata: Headers;
  /**
   * Response headers to send: set them before the first item is yielded (or before returning,
   * for a unary call); later changes are not sent. A resumed handler sets them again, and the
   * client still receives them once.
   */
  readonly responseHeader: Headers;
  /**
   * Response trailers, sent just before the result, the end of the stream or the error (an
   * error thrown as an {@link RpcError} adds its `metadata`).
   */
  readonly responseTrailer: Headers;
  /**
   * Set when this call resumes elsewhere after a migration or a failover: continue producing
   * from item `seq` with the state saved by {@link CallContext.checkpoint} (README "Resumable
   * handlers"). In a bidi call the requests continue from the client's request `read` (the
   * number the handler had read when it saved that state; PROTOCOL.md section 13.6): the
   * iterable yields request `read` first. Undefined for a fresh call, which starts at item 0
   * and request 0.
   */
  readonly resume?: { readonly seq: number; readonly read: number; readonly state: Buffer };
  /**
   * Streaming calls: records the handler's state after the items yielded so far and, in a bidi
   * call, the requests read so far (README "Resumable handlers"). The bytes are copied. When the handler yields its next item at once,
   * the checkpoint crosses into Rust together with that item (one crossing per item); when it
   * does not (it awaits a timer or I/O first), the checkpoint crosses on its own at the end of
   * the current turn of the event loop (`setImmediate`), so it never waits for the next item.
   * On a cluster worker it is relayed to the director, and a migration or failover resumes the
   * handler from the latest checkpoint that reached Rust (`ctx.resume`). Items already delivered
   * are never delivered again. On a plain server and for unary calls it has no effect.
   * @throws {RpcError} `INVALID_ARGUMENT` when `state` is not a Uint8Array.
   */
  checkpoint(state: Uint8Array): void;
}

/** A unary handler: request bytes in, response bytes out. Throw an {@link RpcError} to pick the code. */
export type UnaryHandler = (request: Buffer, ctx: CallContext) => Uint8Array | Promise<Uint8Array>;

/**
 * A server-streaming handler: an (async) iterable of items, typically an `async function*`. Each
 * yielded item is one ITEM frame with the next sequence number. The iterator is paused while the
 * client is not reading (backpressure) and closed (`return()`) when the call ends early.
 */
export type ServerStreamingHandler = (
  request: Buffer,
  ctx: CallContext,
) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/**
 * A client-streaming handler (PROTOCOL.md section 3.4): the client's requests in, one response
 * out. The requests arrive as the client sends them; iterate them once. Throw an {@link RpcError}
 * to pick the code; a client that broke the rules makes the iteration throw `PROTOCOL`.
 */
export type ClientStreamingHandler = (requests: AsyncIterable<Buffer>, ctx: CallContext) => Uint8Array | Promise<Uint8Array>;

/**
 * A bidi handler (PROTOCOL.md section 3.4): the client's requests in, items out, both as they
 * come (typically an `async function*` that iterates `requests`). On a cluster worker it moves
 * like a server-streaming handler: a migration or failover restarts it from its latest
 * `ctx.checkpoint` (`ctx.resume`), with the requests from the one it had not read yet (README
 * "Resumable handlers"). Not in resumable sessions yet (`UNIMPLEMENTED`).
 */
export type BidiStreamingHandler = (requests: AsyncIterable<Buffer>, ctx: CallContext) => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

type Handler =
  | { streaming: false; client: false; fn: UnaryHandler }
  | { streaming: true; client: false; fn: ServerStreamingHandler }
  | { streaming: false; client: true; fn: ClientStreamingHandler }
  | { streaming: true; client: true; fn: BidiStreamingHandler };

/** Client items taken from Rust per crossing. */
const CLIENT_ITEM_BATCH = 256;

/**
 * How long a handler whose requests stopped because its call ended waits for the event that
 * says why (its `ctx.signal` aborts then), ms.
 */
const CANCEL_EVENT_WAIT_MS = 200;

/** How many of the client's requests a handler has read (for its checkpoints). */
interface ReadCount {
  read: number;
}

/**
 * The client's requests of call `id`, pulled from Rust in batches as the handler iterates;
 * `count.read` grows as each one is handed to the handler.
 */
function clientRequests(n: Native.NativeServer, id: number, count: ReadCount, signal: AbortSignal): AsyncIterable<Buffer> {
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        let batch: Buffer[] | null;
        try {
          batch = await n.nextClientItems(id, CLIENT_ITEM_BATCH);
        } catch (e) {
          const error = fromBinding(e);
          // The call ended under the handler (the client cancelled, the deadline passed, it
          // moved): the event that says why is on its way and aborts ctx.signal; the handler
          // sees that rather than the closed queue.
          if (['UNAVAILABLE', 'CANCELLED', 'DEADLINE_EXCEEDED'].includes(error.code) && !signal.aborted) {
            await Promise.race([untilAborted(signal), new Promise((r) => setTimeout(r, CANCEL_EVENT_WAIT_MS))]);
          }
          throw signal.aborted ? signal.reason : error;
        }
        if (batch === null) return;
        for (const request of batch) {
          count.read++;
          yield request;
        }
      }
    },
  };
}

type CallEvent = Extract<Native.NativeServerEvent, { kind: 'call' }>;

/**
 * The checkpoints of one streaming call on their way into Rust. The latest `ctx.checkpoint`
 * waits here until the next pushed item takes it ({@link Checkpoints.take}) or, if no item
 * follows within the current turn of the event loop, crosses on its own (`setImmediate`).
 */
class Checkpoints {
  readonly #server: Native.NativeServer;
  readonly #id: number;
  readonly #count: ReadCount;
  #state: Buffer | undefined;
  #read = 0;
  #scheduled = false;

  constructor(server: Native.NativeServer, id: number, count: ReadCount) {
    this.#server = server;
    this.#id = id;
    this.#count = count;
  }

  /** `ctx.checkpoint(state)`: keeps a copy (and the requests read so far) and schedules its crossing. */
  record(state: Uint8Array): void {
    this.#state = Buffer.from(bytes('state', state));
    this.#read = this.#count.read;
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flush);
  }

  /** The checkpoint recorded since the last item, for the item being pushed; clears it. */
  take(): { state: Buffer; read: number } | undefined {
    const state = this.#state;
    this.#state = undefined;
    return state && { state, read: this.#read };
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const taken = this.take();
    if (taken) this.#server.checkpoint(this.#id, taken.state, taken.read);
  };
}

/** Events taken from the native queue per crossing. */
const EVENT_BATCH = 1024;

/** Wraps a native server owned by another object (set by RpcServer's static block). */
let adopt: (n: Native.NativeServer) => RpcServer;

/**
 * An RpcServer over the user port of a cluster worker, which owns the native server.
 * @internal
 */
export function serverOver(n: Native.NativeServer): RpcServer {
  return adopt(n);
}

/**
 * An rpcnet server.
 *
 * ```ts
 * const server = await RpcServer.listen({ port: 0 });
 * server.unary('echo', async (req) => req);
 * server.serverStreaming('count', async function* (req, ctx) { yield Buffer.from('1'); });
 * ```
 */
export class RpcServer {
  readonly #native: Native.NativeServer;
  readonly #handlers = new Map<string, Handler>();
  readonly #calls = new Map<number, AbortController>();
  readonly #interceptors: ServerInterceptor[] = [];
  readonly #loop: Promise<void>;
  #closed = false;
  #admin: AdminEndpoint | undefined;
  /** Calls whose handler stopped because the call goes on elsewhere (migrated, kept for a resume). */
  readonly #moved = new Set<number>();

  private constructor(n: Native.NativeServer) {
    this.#native = n;
    this.#loop = this.#run();
  }

  static {
    adopt = (n) => new RpcServer(n);
  }

  /**
   * Binds a QUIC endpoint (TLS 1.3, ALPN `rpcnet/2`, also accepting `rpcnet/1` clients) and starts serving.
   * @throws {RpcError} `INVALID_ARGUMENT` for bad options (checked before binding: types,
   * ranges, unknown keys) or unreadable PEM files, `UNAVAILABLE` when the address cannot be bound.
   */
  static async listen(options: ServerOptions = {}): Promise<RpcServer> {
    const o = record('options', options, ['host', 'port', 'tls', 'maxFrameSize', 'streamWindow', 'idleTimeoutMs', 'keepAliveMs', 'interceptors', 'admin']);
    const admin = checkAdmin(o.admin);
    const interceptors = optionalFunctions<ServerInterceptor>('interceptors', o.interceptors);
    const tls = optionalPemFiles('tls', o.tls);
    const window = record('streamWindow', o.streamWindow, ['items', 'bytes']);
    const checked: Native.NativeServerOptions = {
      host: optionalString('host', o.host),
      port: optionalPort('port', o.port),
      certPath: tls?.certPath,
      keyPath: tls?.keyPath,
      maxFrameSize: optionalInteger('maxFrameSize', o.maxFrameSize, 1, U32_MAX, 'bytes'),
      streamWindowItems: optionalInteger('streamWindow.items', window.items, 1, U32_MAX, 'items'),
      streamWindowBytes: optionalInteger('streamWindow.bytes', window.bytes, 1, U32_MAX, 'bytes'),
      ...connectionTimers(o.idleTimeoutMs, o.keepAliveMs),
    };
    let server: RpcServer;
    try {
      server = new RpcServer(await native.listen(checked));
    } catch (e) {
      throw fromBinding(e);
    }
    server.#interceptors.push(...interceptors);
    if (admin) {
      try {
        server.#admin = await AdminEndpoint.start(admin, { notReady: () => (server.#closed ? 'closing' : undefined) });
      } catch (e) {
        await server.close();
        throw e;
      }
    }
    return server;
  }

  /** The bound address, `ip:port`; pass it to {@link RpcClient.connect}. */
  get address(): string {
    return this.#native.address;
  }

  /** The bound UDP port. */
  get port(): number {
    return Number(this.address.slice(this.address.lastIndexOf(':') + 1));
  }

  /** SHA-256 fingerprint of the server certificate (64 lowercase hex digits), for `tls.pin`. */
  get certFingerprint(): string {
    return this.#native.certFingerprint;
  }

  /** The admin endpoint's address (`host:port`), `undefined` without the `admin` option. */
  get adminAddress(): string | undefined {
    return this.#admin?.address;
  }

  /** Calls currently in progress. */
  get openCalls(): number {
    return this.#native.openCalls();
  }

  /**
   * Adds server middleware after the ones given to {@link RpcServer.listen} (inside them); it
   * applies to calls that start from now on, of every registered method, unary and
   * server-streaming. Used by {@link RpcWorker}'s server too.
   * @returns this server, for chaining
   * @throws {RpcError} `INVALID_ARGUMENT` when `interceptor` is not a function.
   */
  use(interceptor: ServerInterceptor): this {
    this.#interceptors.push(func('interceptor', interceptor));
    return this;
  }

  /**
   * Registers a unary method (replacing any handler of that name).
   * @throws {RpcError} `INVALID_ARGUMENT` for an empty or too long name, or a handler that is not
   * a function.
   */
  unary(method: string, handler: UnaryHandler): this {
    return this.#register(method, { streaming: false, client: false, fn: handler });
  }

  /**
   * Registers a server-streaming method (replacing any handler of that name).
   * @throws {RpcError} `INVALID_ARGUMENT` for an empty or too long name, or a handler that is not
   * a function.
   */
  serverStreaming(method: string, handler: ServerStreamingHandler): this {
    return this.#register(method, { streaming: true, client: false, fn: handler });
  }

  /**
   * Registers a client-streaming method (PROTOCOL.md section 3.4): the handler gets the
   * client's requests as an async iterable and returns one response. Clients of protocol
   * version 2 only; not through a director yet.
   * @throws {RpcError} `INVALID_ARGUMENT` as {@link RpcServer.unary}.
   */
  clientStreaming(method: string, handler: ClientStreamingHandler): this {
    return this.#register(method, { streaming: false, client: true, fn: handler });
  }

  /**
   * Registers a bidi method (PROTOCOL.md section 3.4): the handler gets the client's requests
   * as an async iterable and yields its items. Clients of protocol version 2 only; not through
   * a director yet.
   * @throws {RpcError} `INVALID_ARGUMENT` as {@link RpcServer.unary}.
   */
  bidiStreaming(method: string, handler: BidiStreamingHandler): this {
    return this.#register(method, { streaming: true, client: true, fn: handler });
  }

  #register(method: string, handler: Handler): this {
    if (typeof method !== 'string' || method.length === 0 || Buffer.byteLength(method) > 65535) {
      throw invalid('method', '1..65535 bytes of UTF-8', method);
    }
    func('handler', handler.fn);
    this.#handlers.set(method, handler);
    this.#native.register(method, handler.streaming, handler.client);
    return this;
  }

  /**
   * Stops accepting calls, aborts running handlers and closes all connections. Resolves once the
   * UDP port is released, so the same port can be bound again at once.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const released = this.#native.close();
    for (const c of this.#calls.values()) c.abort(new RpcError('UNAVAILABLE', 'server closed'));
    await this.#admin?.close();
    await released;
    await this.#loop;
  }

  async #run(): Promise<void> {
    for (;;) {
      const events = await this.#native.nextEvents(EVENT_BATCH);
      if (events.length === 0) return;
      for (const event of events) {
        switch (event.kind) {
          case 'call':
            this.#start(event);
            break;
          case 'cancel':
            if (event.moved) this.#moved.add(event.id);
            this.#calls.get(event.id)?.abort(new RpcError(event.code, event.message));
            break;
          default:
            reportInternal(unknownKind('server event', event));
        }
      }
    }
  }

  #start(event: CallEvent): void {
    const { id, method } = event;
    const handler = this.#handlers.get(method);
    const controller = new AbortController();
    this.#calls.set(id, controller);
    const n = this.#native;
    const connectionId = event.connectionId;
    // A resumed bidi handler reads the requests from where its checkpoint says (the runtime
    // skips the ones below it).
    const count: ReadCount = { read: event.resume?.read ?? 0 };
    const checkpoints = handler?.streaming ? new Checkpoints(n, id, count) : undefined;
    const ctx: CallContext = {
      checkpoint: checkpoints ? (state: Uint8Array) => checkpoints.record(state) : () => {},
      method,
      deadlineMs: event.deadlineMs,
      signal: controller.signal,
      connection: {
        id: connectionId,
        remoteAddress: event.remoteAddress,
        stats: () => n.connectionStats(connectionId) ?? undefined,
      },
      resume: event.resume ? { seq: event.resume.seq, read: event.resume.read, state: event.resume.state } : undefined,
      metadata: fromEntries(event.metadata),
      responseHeader: new Headers(),
      responseTrailer: new Headers(),
    };
    const done = () => this.#calls.delete(id);
    if (!handler) {
      // A fixed label: clients must not be able to create label values.
      recordCall('(unknown)', 'UNIMPLEMENTED', 0);
      n.fail(id, 'UNIMPLEMENTED', `no such method: ${method}`, undefined, undefined);
      done();
      return;
    }
    let call: ServerCallFn;
    try {
      // The interceptors' outer functions run for every call.
      call = chain(this.#interceptors, async (req): Promise<ServerResponse> => {
        const input = req.requests ?? clientRequests(n, id, count, controller.signal);
        if (handler.client) {
          return handler.streaming ? { message: handler.fn(input, req.context) } : { message: await handler.fn(input, req.context) };
        }
        return handler.streaming ? { message: handler.fn(req.message, req.context) } : { message: await handler.fn(req.message, req.context) };
      });
    } catch (e) {
      fail(n, id, e, ctx, true);
      done();
      return;
    }
    // OpenTelemetry (a no-op without an SDK): the handler runs in a server span whose parent is
    // the trace context of the request headers, the same after a migration or a resume.
    const { span, context: spanContext } = startServerSpan(method, ctx.metadata, {
      'rpcnet.connection.id': connectionId,
      'rpcnet.resumed': event.resume !== null && event.resume !== undefined,
    });
    const inSpan = <T>(f: () => T): T => otelContext.with(spanContext, f);
    const arrived = performance.now();
    const finish = (failure: unknown) => {
      if (this.#moved.delete(id)) {
        // Not an outcome: another run of the handler continues the call and records it.
        endMovedSpan(span);
      } else {
        endSpan(span, failure);
        recordCall(method, failure === undefined ? 'OK' : asRpcError(failure, 'the handler failed').code, (performance.now() - arrived) / 1000);
      }
      done();
    };
    const requests = handler.client ? clientRequests(n, id, count, controller.signal) : undefined;
    if (!handler.streaming) {
      const fn: UnaryHandler = async (message, context) =>
        (await call({ stream: false, method, message, context, header: context.metadata, requests })).message as Uint8Array;
      void inSpan(() => runUnary(n, id, fn, event.payload, ctx)).then(finish, finish);
    } else {
      const fn: ServerStreamingHandler = (message, context) => intercepted(call({ stream: true, method, message, context, header: context.metadata, requests }));
      void runStreaming(n, id, fn, event.payload, ctx, checkpoints!, inSpan).then(finish, finish);
    }
  }
}

/** The items of a streaming call's (intercepted) response, as the call loop reads them. */
async function* intercepted(response: Promise<{ message: unknown }>): AsyncGenerator<Uint8Array> {
  const { message } = await response;
  if (message !== null && typeof message === 'object' && (Symbol.asyncIterator in message || Symbol.iterator in message)) {
    yield* message as AsyncIterable<Uint8Array>;
    return;
  }
  throw new RpcError('INTERNAL', `a streaming call's handler or interceptor answered ${describe(message)}, not an iterable of items`);
}

/** A handler's response or item as a Buffer; anything else is the handler's bug (`INTERNAL`). */
function handlerBytes(method: string, value: unknown): Buffer {
  if (value instanceof Uint8Array) return bytes('value', value);
  throw new RpcError('INTERNAL', `the handler of ${JSON.stringify(method)} returned or yielded ${describe(value)}, not a Uint8Array`);
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Runs a unary handler and answers; resolves with the failure it reported, if any. */
async function runUnary(n: Native.NativeServer, id: number, fn: UnaryHandler, request: Buffer, ctx: CallContext): Promise<unknown> {
  try {
    const response = await fn(request, ctx);
    if (ctx.signal.aborted) return ctx.signal.reason;
    n.respond(id, handlerBytes(ctx.method, response), toEntries(ctx.responseHeader), toEntries(ctx.responseTrailer));
    return undefined;
  } catch (e) {
    if (ctx.signal.aborted) return ctx.signal.reason;
    fail(n, id, e, ctx, true);
    return e;
  }
}

/**
 * Fails a call with what `e` says (code, message; an {@link RpcError}'s `metadata` joins the
 * trailers), sending the response headers too if `headerUnsent`.
 */
function fail(n: Native.NativeServer, id: number, e: unknown, ctx: CallContext, headerUnsent: boolean): void {
  const { code, message } = toWire(e);
  if (e instanceof RpcError) appendAll(ctx.responseTrailer, e.metadata);
  n.fail(id, code, message, headerUnsent ? toEntries(ctx.responseHeader) : undefined, toEntries(ctx.responseTrailer));
}

async function runStreaming(
  n: Native.NativeServer,
  id: number,
  fn: ServerStreamingHandler,
  request: Buffer,
  ctx: CallContext,
  checkpoints: Checkpoints,
  inSpan: <T>(f: () => T) => T,
): Promise<unknown> {
  let iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array> | undefined;
  let finished = false;
  let headerUnsent = true;
  try {
    const iterable = inSpan(() => fn(request, ctx));
    iterator =
      Symbol.asyncIterator in iterable
        ? (iterable as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
        : (iterable as Iterable<Uint8Array>)[Symbol.iterator]();
    for (;;) {
      if (ctx.signal.aborted) return ctx.signal.reason;
      const it = iterator;
      const step = await inSpan(() => it.next());
      if (step.done) break;
      const header = headerUnsent ? toEntries(ctx.responseHeader) : undefined;
      headerUnsent = false;
      const checkpoint = checkpoints.take();
      const status = n.push(id, handlerBytes(ctx.method, step.value), checkpoint?.state, header, checkpoint?.read);
      if (status === 'ready') continue;
      if (status === 'full') {
        if (await n.writable(id)) continue;
      }
      // Closed: cancelled, deadline or connection lost. The runtime's cancel event, which carries
      // the reason, is on its way; wait for it so ctx.signal aborts before the iterator is closed.
      await untilAborted(ctx.signal);
      return ctx.signal.reason;
    }
    finished = true;
    checkpoints.take(); // the call is complete: nothing will resume it
    n.end(id, headerUnsent ? toEntries(ctx.responseHeader) : undefined, toEntries(ctx.responseTrailer));
    return undefined;
  } catch (e) {
    finished = true;
    if (ctx.signal.aborted) return ctx.signal.reason;
    fail(n, id, e, ctx, headerUnsent);
    return e;
  } finally {
    if (!finished && iterator?.return) {
      try {
        await iterator.return();
      } catch {
        // the call is already over; nothing can report this error
      }
    }
  }
}
