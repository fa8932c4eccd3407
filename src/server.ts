/**
 * The server half of the public API: {@link RpcServer} binds a QUIC endpoint (in Rust) and runs
 * TypeScript handlers for the calls it receives. Framing, stream I/O, deadlines and backpressure
 * stay in Rust; this module only drives handlers, receiving calls in batches (one N-API crossing
 * per batch).
 * @module
 */
import { asBuffer, native, type Native } from './binding.js';
import { fromNative, RpcError, toWire } from './errors.js';
import type { ConnectionStats } from './stats.js';

/** Options of {@link RpcServer.listen}. */
export interface ServerOptions {
  /** IP address to bind. Default `127.0.0.1`. */
  host?: string;
  /** UDP port; 0 (default) picks a free one. */
  port?: number;
  /**
   * PEM certificate chain and private key. Without it the server generates a self-signed
   * certificate (rcgen) whose fingerprint is {@link RpcServer.certFingerprint}.
   */
  tls?: { certPath: string; keyPath: string };
  /** Largest accepted frame body in bytes (PROTOCOL.md). Default 16 MiB. */
  maxFrameSize?: number;
  /**
   * Per streaming call, how many items / bytes the server queues before the handler is paused
   * (backpressure). Defaults: 256 items, 1 MiB.
   */
  streamWindow?: { items?: number; bytes?: number };
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
   * Set when this call resumes elsewhere after a migration or a failover: continue producing
   * from item `seq` with the state saved by {@link CallContext.checkpoint} (README "Resumable
   * handlers"). Undefined for a fresh call, which starts at item 0.
   */
  readonly resume?: { readonly seq: number; readonly state: Buffer };
  /**
   * Streaming calls: records the handler's state after the items yielded so far. The bytes are
   * copied, and the latest checkpoint travels with the next yielded item (one crossing into
   * Rust per item). On a cluster worker it is relayed to the director, and a migration or
   * failover resumes the handler from the latest checkpoint that reached Rust (`ctx.resume`).
   * Items already delivered are never delivered again. On a plain server and for unary calls it
   * has no effect.
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

type Handler = { streaming: false; fn: UnaryHandler } | { streaming: true; fn: ServerStreamingHandler };

type NativeEvent = Native.NativeEvent;

/** A checkpoint recorded by the handler and not yet sent with an item. */
interface PendingCheckpoint {
  state?: Buffer;
}

const PUSH_READY = 0;
const PUSH_FULL = 1;

/** Events taken from the native queue per crossing. */
const EVENT_BATCH = 1024;

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
  readonly #loop: Promise<void>;
  #closed = false;

  private constructor(n: Native.NativeServer) {
    this.#native = n;
    this.#loop = this.#run();
  }

  /** Wraps a native server owned by another object (a cluster worker's user port). @internal */
  static fromNative(n: Native.NativeServer): RpcServer {
    return new RpcServer(n);
  }

  /**
   * Binds a QUIC endpoint (TLS 1.3, ALPN `rpcnet/1`) and starts serving.
   * @throws {RpcError} `INVALID_ARGUMENT` for bad options or unreadable PEM files, `UNAVAILABLE`
   * when the address cannot be bound.
   */
  static async listen(options: ServerOptions = {}): Promise<RpcServer> {
    if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)) {
      throw new RpcError('INVALID_ARGUMENT', `port must be an integer in 0..65535, got ${options.port}`);
    }
    try {
      const n = await native.listen({
        host: options.host,
        port: options.port,
        certPath: options.tls?.certPath,
        keyPath: options.tls?.keyPath,
        maxFrameSize: options.maxFrameSize,
        streamWindowItems: options.streamWindow?.items,
        streamWindowBytes: options.streamWindow?.bytes,
      });
      return new RpcServer(n);
    } catch (e) {
      throw fromNative(e);
    }
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

  /** Calls currently in progress. */
  get openCalls(): number {
    return this.#native.openCalls();
  }

  /**
   * Registers a unary method (replacing any handler of that name).
   * @throws {RpcError} `INVALID_ARGUMENT` for an empty name.
   */
  unary(method: string, handler: UnaryHandler): this {
    return this.#register(method, { streaming: false, fn: handler });
  }

  /**
   * Registers a server-streaming method (replacing any handler of that name).
   * @throws {RpcError} `INVALID_ARGUMENT` for an empty name.
   */
  serverStreaming(method: string, handler: ServerStreamingHandler): this {
    return this.#register(method, { streaming: true, fn: handler });
  }

  #register(method: string, handler: Handler): this {
    if (typeof method !== 'string' || method.length === 0 || Buffer.byteLength(method) > 65535) {
      throw new RpcError('INVALID_ARGUMENT', `method name must be 1..65535 bytes of UTF-8, got ${JSON.stringify(method)}`);
    }
    this.#handlers.set(method, handler);
    this.#native.register(method, handler.streaming);
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
    await released;
    await this.#loop;
  }

  async #run(): Promise<void> {
    for (;;) {
      const events = await this.#native.nextEvents(EVENT_BATCH);
      if (events.length === 0) return;
      for (const event of events) {
        if (event.kind === 'call') this.#start(event);
        else
          this.#calls
            .get(event.id)
            ?.abort(new RpcError((event.code as RpcError['code']) ?? 'CANCELLED', event.message ?? 'the call ended early'));
      }
    }
  }

  #start(event: NativeEvent): void {
    const id = event.id;
    const handler = this.#handlers.get(event.method!);
    const controller = new AbortController();
    this.#calls.set(id, controller);
    const n = this.#native;
    const connectionId = event.connectionId!;
    // The latest ctx.checkpoint since the last item; it crosses into Rust with the next item.
    const checkpoint: PendingCheckpoint = {};
    const ctx: CallContext = {
      checkpoint: handler?.streaming ? (state: Uint8Array) => void (checkpoint.state = Buffer.from(state)) : () => {},
      method: event.method!,
      deadlineMs: event.deadlineMs ?? 0,
      signal: controller.signal,
      connection: {
        id: connectionId,
        remoteAddress: event.remoteAddress!,
        stats: () => n.connectionStats(connectionId) ?? undefined,
      },
    };
    const request = event.payload!;
    if (event.resumeSeq != null) {
      (ctx as { resume?: CallContext['resume'] }).resume = { seq: event.resumeSeq, state: event.resumeState ?? Buffer.alloc(0) };
    }
    const done = () => this.#calls.delete(id);
    if (!handler) {
      n.fail(id, 'NOT_FOUND', `no such method: ${event.method}`);
      done();
      return;
    }
    if (!handler.streaming) {
      void runUnary(n, id, handler.fn, request, ctx).finally(done);
    } else {
      void runStreaming(n, id, handler.fn, request, ctx, checkpoint).finally(done);
    }
  }
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

async function runUnary(n: Native.NativeServer, id: number, fn: UnaryHandler, request: Buffer, ctx: CallContext) {
  try {
    const response = await fn(request, ctx);
    if (!ctx.signal.aborted) n.respond(id, asBuffer(response));
  } catch (e) {
    if (!ctx.signal.aborted) {
      const { code, message } = toWire(e);
      n.fail(id, code, message);
    }
  }
}

async function runStreaming(
  n: Native.NativeServer,
  id: number,
  fn: ServerStreamingHandler,
  request: Buffer,
  ctx: CallContext,
  checkpoint: PendingCheckpoint,
) {
  let iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array> | undefined;
  let finished = false;
  try {
    const iterable = fn(request, ctx);
    iterator =
      Symbol.asyncIterator in iterable
        ? (iterable as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]()
        : (iterable as Iterable<Uint8Array>)[Symbol.iterator]();
    for (;;) {
      if (ctx.signal.aborted) return;
      const step = await iterator.next();
      if (step.done) break;
      const state = checkpoint.state;
      checkpoint.state = undefined;
      const status = n.push(id, asBuffer(step.value), state);
      if (status === PUSH_READY) continue;
      if (status === PUSH_FULL) {
        if (await n.writable(id)) continue;
      }
      // Closed: cancelled, deadline or connection lost. The runtime's cancel event, which carries
      // the reason, is on its way; wait for it so ctx.signal aborts before the iterator is closed.
      await untilAborted(ctx.signal);
      return;
    }
    finished = true;
    n.end(id);
  } catch (e) {
    finished = true;
    if (!ctx.signal.aborted) {
      const { code, message } = toWire(e);
      n.fail(id, code, message);
    }
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
