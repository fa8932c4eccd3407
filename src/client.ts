/**
 * The client half of the public API: {@link RpcClient} holds one QUIC connection (in Rust) and
 * makes unary and server-streaming calls on it. Streaming items cross into JavaScript in batches.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Span } from '@opentelemetry/api';
import { native, type Native } from './binding.js';
import { asRpcError, fromBinding, RpcError } from './errors.js';
import { chain, type ClientInterceptor, type ClientRequest, type ClientResponse, type ClientStreamResponse } from './interceptor.js';
import { appendAll, fromEntries, headersOf, toEntries, type MetadataInit } from './metadata.js';
import { endSpan, startClientSpan } from './tracing.js';
import { bytes, invalid, optionalFunc, optionalBoolean, optionalFunctions, optionalInteger, optionalSignal, optionalString, record, string, stringList, U32_MAX } from './options.js';
import type { ConnectionStats } from './stats.js';

/**
 * How the client verifies the server. Exactly one of `pin`, `caFile`, `systemRoots` is required:
 * there is no insecure mode.
 */
export interface ClientTlsOptions {
  /**
   * SHA-256 fingerprint of the server's certificate (64 hex digits, `:` separators allowed), e.g.
   * {@link RpcServer.certFingerprint}. Chain and name are not checked; the TLS 1.3 handshake
   * signature is, so the server must hold the certificate's key.
   */
  pin?: string;
  /** PEM file of CA certificates; the server's chain and name are verified against it (WebPKI). */
  caFile?: string;
  /** Verify against the operating system's roots. */
  systemRoots?: boolean;
  /** TLS server name (SNI and the name checked against CA-issued certificates). Default `localhost`. */
  serverName?: string;
}

/** Options of {@link RpcClient.connect}. */
export interface ClientOptions {
  /** Server verification, required. */
  tls: ClientTlsOptions;
  /** Largest accepted frame body in bytes (PROTOCOL.md), a positive integer. Default 16 MiB. */
  maxFrameSize?: number;
  /** Handshake time limit, ms, a positive integer. Default 10000. */
  connectTimeoutMs?: number;
  /**
   * How long the server may stay silent before the connection is declared lost, ms, a positive
   * integer. Default 400 with `resume` (the session then resumes on another director, so a false
   * alarm costs only a resume), 750 without (every pending call then fails with `UNAVAILABLE`).
   * This bounds how long a client waits on a director that died without closing its connection
   * (SIGKILL, a lost host). It is the QUIC idle timeout the client offers (RFC 9000 section
   * 10.1), with a keep-alive PING every quarter of it (100 ms with `resume`); the idle timer
   * restarts at the first PING after the server's last packet, so the loss is noticed between
   * this and 5/4 of it after that packet (400 to 500 ms with `resume`). A connection uses the
   * smaller of its two ends' idle timeouts and rpcnet servers offer 30000, so this value
   * decides, for both ends: the server also drops the connection after that long without a
   * packet from the client. Raise it on lossy or congested links, or where either process can
   * stall for that long: four PINGs in a row without an answer end a healthy connection. A
   * director of the same cluster restarted on the same address ends the connection sooner, with
   * a stateless reset (README "Directors: restarts, identity and loss detection").
   */
  lossDetectionMs?: number;
  /**
   * Client middleware, applied to every call, unary and server-streaming, in this order (the
   * first one outermost; see the `interceptor` module). Default none.
   */
  interceptors?: ClientInterceptor[];
  /**
   * Open a resumable session (PROTOCOL.md section 15). Default false. When the connection to
   * the director is lost (its process died, the network failed) or the director is shutting
   * down (it sends MOVE), the client connects to a director of the cluster (any of the
   * addresses given to {@link RpcClient.connect}, trying the next one first, with jittered
   * backoff from 20 ms doubling to 1 s between attempts, ±50% jitter, for up to 30 s), presents the session's
   * credential and re-attaches every open call at the first item it lacks: streaming calls
   * continue exactly once, in order; a unary call in flight is sent again only if it was made
   * with `idempotent: true`, else it fails with `UNAVAILABLE`. The session id
   * ({@link RpcClient.sessionId}) stays the same; the QUIC connection and its
   * {@link RpcClient.connectionId} change. Emits `reconnecting`, `resumed` and `lost`
   * ({@link SessionEvents}). Connecting fails with `UNAVAILABLE` if the server is not a
   * director (it does not resume sessions).
   */
  resume?: boolean;
}

/** The events of a resumable client ({@link ClientOptions.resume}), by name. */
export interface SessionEvents {
  /** The connection was lost or the director said MOVE; the client is reconnecting. */
  reconnecting: [event: { reason: string }];
  /** The session continues on a new connection. */
  resumed: [event: { pauseMs: number; connectionId: string; address: string }];
  /** The session could not be resumed (`RESUME_*` from a director, or none reachable in 30 s); open calls fail with `error`. */
  lost: [event: { error: RpcError }];
}

/** Per-call options. */
export interface CallOptions {
  /**
   * Deadline in ms from now (a non-negative number, rounded up to whole ms; 0 = none); enforced
   * by client and server. Rejects with `DEADLINE_EXCEEDED`.
   */
  deadlineMs?: number;
  /** Aborting it cancels the call on both ends; the call rejects with `CANCELLED`. */
  signal?: AbortSignal;
  /**
   * Calls with one response (unary, client-streaming) of a resumable session: the handler may
   * run twice, so a call in flight when the connection is lost is sent again after the resume
   * (a client-streaming one with all its requests). Default false: such a call fails with
   * `UNAVAILABLE` (its message says why).
   */
  idempotent?: boolean;
  /**
   * Request headers (PROTOCOL.md section 5.6): a `Headers`, an array of `[key, value]` pairs
   * or a record. Keys are case-insensitive ASCII; a key ending in `-bin` carries bytes, given
   * as base64 ({@link encodeBinaryHeader}). At most 8 KiB in all. Through a director, keys
   * starting with `rpcnet-` are refused (`INVALID_ARGUMENT`): the director sets those.
   */
  headers?: MetadataInit;
  /**
   * Called with the response headers when the call succeeds: before the result is returned
   * (unary), or as soon as they arrive, before the first item (server-streaming). A failed
   * call calls neither callback (as connect-es): its {@link RpcError.metadata} holds the
   * headers and trailers that came.
   */
  onHeader?: (headers: Headers) => void;
  /** Called with the response trailers when the call ends successfully (see `onHeader`). */
  onTrailer?: (trailers: Headers) => void;
}

/**
 * Ends the span of a streaming response that was garbage-collected before it was read to its
 * end (no `return()` ran). The call itself is cancelled by the native stream's own finalizer:
 * dropping its QUIC streams sends STOP_SENDING, and the server's handler sees `CANCELLED`.
 */
const abandoned = new FinalizationRegistry<Span>((span) => endSpan(span, aborted()));

/** What a streaming response is read from: a server-streaming call's or a bidi call's handle. */
type ItemSource = Pick<Native.NativeStream, 'nextBatch' | 'responseMetadata' | 'cancel'>;

/** Items taken from the native stream per crossing. */
const ITEM_BATCH = 1024;

/** A call's method, request and options, checked. */
interface CheckedCall {
  method: string;
  payload: Buffer;
  deadlineMs: number;
  signal: AbortSignal | undefined;
  idempotent: boolean;
  header: Headers;
  onHeader: ((headers: Headers) => void) | undefined;
  onTrailer: ((trailers: Headers) => void) | undefined;
}

function checkCall(method: string, request: Uint8Array, options: CallOptions | undefined): CheckedCall {
  const o = record('options', options, ['deadlineMs', 'signal', 'idempotent', 'headers', 'onHeader', 'onTrailer']);
  const d = o.deadlineMs ?? 0;
  if (typeof d !== 'number' || !Number.isFinite(d) || d < 0 || d > U32_MAX) {
    throw invalid('deadlineMs', `a non-negative number (ms) no larger than ${U32_MAX}`, d);
  }
  return {
    method: string('method', method),
    payload: bytes('request', request),
    deadlineMs: Math.ceil(d),
    signal: optionalSignal('signal', o.signal),
    idempotent: optionalBoolean('idempotent', o.idempotent) ?? false,
    header: headersOf('headers', o.headers),
    onHeader: optionalFunc('onHeader', o.onHeader as CheckedCall['onHeader']),
    onTrailer: optionalFunc('onTrailer', o.onTrailer as CheckedCall['onTrailer']),
  };
}

/**
 * `requests` checked to be an (async) iterable.
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise.
 */
function iterableOf(requests: unknown): AsyncIterable<Uint8Array> | Iterable<Uint8Array> {
  if (requests !== null && typeof requests === 'object' && (Symbol.asyncIterator in requests || Symbol.iterator in requests)) {
    return requests as AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  }
  throw invalid('requests', 'an iterable or async iterable of Uint8Array', requests);
}

/** The interceptors' view of a checked call. */
function requestOf(stream: boolean, c: CheckedCall): ClientRequest {
  return { stream, method: c.method, message: c.payload, deadlineMs: c.deadlineMs, signal: c.signal, idempotent: c.idempotent, header: c.header };
}

function aborted(): RpcError {
  return new RpcError('CANCELLED', 'call cancelled by the client');
}

/**
 * An rpcnet client on one QUIC connection.
 *
 * ```ts
 * const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint } });
 * const reply = await client.call('echo', Buffer.from('hi'), { deadlineMs: 1000 });
 * for await (const item of client.callStreaming('count', Buffer.alloc(0))) console.log(item);
 * ```
 */
export class RpcClient extends EventEmitter<SessionEvents> {
  readonly #native: Native.NativeClient;
  readonly #interceptors: ClientInterceptor[];

  private constructor(n: Native.NativeClient, interceptors: ClientInterceptor[]) {
    super();
    this.#native = n;
    this.#interceptors = interceptors;
    if (n.sessionId !== null) void this.#relaySessionEvents();
  }

  /** Emits what the native session reports until the client is closed. */
  async #relaySessionEvents(): Promise<void> {
    for (;;) {
      const events = await this.#native.nextSessionEvents(16);
      if (events.length === 0) return;
      for (const e of events) {
        if (e.kind === 'reconnecting') this.emit('reconnecting', { reason: e.reason ?? '' });
        else if (e.kind === 'resumed') {
          this.emit('resumed', { pauseMs: e.pauseMs ?? 0, connectionId: e.connectionId ?? '', address: e.address ?? '' });
        } else this.emit('lost', { error: new RpcError(e.errorCode ?? 'UNAVAILABLE', e.errorMessage ?? 'session lost') });
      }
    }
  }

  /**
   * Connects (QUIC + TLS 1.3, ALPN `rpcnet/2` or `rpcnet/1`) to `address` (`host:port`), or to the first of
   * several that answers (the directors of a cluster; a DNS name may also resolve to several).
   * @throws {RpcError} `INVALID_ARGUMENT` for bad options (checked before connecting: types,
   * ranges, unknown keys) or a bad pin or address; `UNAVAILABLE` when the server cannot be
   * reached or its certificate is refused (e.g. wrong pin), or with `resume` when it does not
   * resume sessions; `DEADLINE_EXCEEDED` after `connectTimeoutMs`.
   */
  static async connect(address: string | string[], options: ClientOptions): Promise<RpcClient> {
    const addrs = stringList('address', address, 'host:port');
    const o = record('options', options, ['tls', 'maxFrameSize', 'connectTimeoutMs', 'lossDetectionMs', 'resume', 'interceptors']);
    const interceptors = optionalFunctions<ClientInterceptor>('interceptors', o.interceptors);
    if (o.tls === undefined) {
      throw invalid('tls', 'an object giving tls.pin, tls.caFile or tls.systemRoots (there is no insecure mode)', o.tls);
    }
    const tls = record('tls', o.tls, ['pin', 'caFile', 'systemRoots', 'serverName']);
    const checked: Native.NativeClientOptions = {
      pin: optionalString('tls.pin', tls.pin),
      caFile: optionalString('tls.caFile', tls.caFile),
      systemRoots: optionalBoolean('tls.systemRoots', tls.systemRoots),
      serverName: optionalString('tls.serverName', tls.serverName),
      maxFrameSize: optionalInteger('maxFrameSize', o.maxFrameSize, 1, U32_MAX, 'bytes'),
      connectTimeoutMs: optionalInteger('connectTimeoutMs', o.connectTimeoutMs, 1, U32_MAX, 'ms'),
      lossDetectionMs: optionalInteger('lossDetectionMs', o.lossDetectionMs, 1, U32_MAX, 'ms'),
      resume: optionalBoolean('resume', o.resume),
    };
    try {
      return new RpcClient(await native.connect(addrs, checked), interceptors);
    } catch (e) {
      throw fromBinding(e);
    }
  }

  /**
   * The connection's id; the server sees the same value (`ctx.connection.id`). With `resume`,
   * it is the connection's now: it changes when the session moves to a new connection.
   */
  get connectionId(): string {
    return this.#native.connectionId;
  }

  /**
   * The resumable session's id (16 hex digits; the director's `sessionId`), the same across
   * resumes; `null` without {@link ClientOptions.resume}.
   */
  get sessionId(): string | null {
    return this.#native.sessionId;
  }

  /** The server's UDP address, `ip:port`. */
  get remoteAddress(): string {
    return this.#native.remoteAddress;
  }

  /** quinn's statistics for this connection now. */
  stats(): ConnectionStats {
    return this.#native.stats();
  }

  /**
   * Makes a unary call.
   * @returns the response bytes
   * @param method - the method name, a non-empty string
   * @param request - the request bytes
   * @throws {RpcError} `INVALID_ARGUMENT` for a bad method, request or option (nothing is sent);
   * the handler's code and message; `UNIMPLEMENTED` for an unknown method;
   * `DEADLINE_EXCEEDED`; `CANCELLED`; `UNAVAILABLE` on connection loss; `PROTOCOL`.
   */
  async call(method: string, request: Uint8Array, options?: CallOptions): Promise<Buffer> {
    const checked = checkCall(method, request, options);
    const response = await this.#intercepted(requestOf(false, checked));
    if (response.stream) throw new RpcError('INTERNAL', `an interceptor answered the unary call ${method} with a stream`);
    checked.onHeader?.(response.header);
    checked.onTrailer?.(response.trailer);
    return response.message;
  }

  /**
   * Makes a server-streaming call. Items arrive in order, exactly once; breaking out of the loop
   * cancels the call. The stream only reads as fast as you iterate (backpressure).
   * @throws {RpcError} `INVALID_ARGUMENT` at once (not from the iterator) for a bad method,
   * request or option; from the iterator: as {@link RpcClient.call}.
   */
  callStreaming(method: string, request: Uint8Array, options?: CallOptions): AsyncIterable<Buffer> {
    const checked = checkCall(method, request, options);
    return this.#streamOf(method, checked, requestOf(true, checked));
  }

  /** The items of a server-streaming or bidi call `request`, through the interceptors. */
  #streamOf(method: string, checked: CheckedCall, request: ClientRequest): AsyncIterable<Buffer> {
    const intercepted = (r: ClientRequest) => this.#intercepted(r);
    return {
      async *[Symbol.asyncIterator]() {
        const response = await intercepted(request);
        if (!response.stream) throw new RpcError('INTERNAL', `an interceptor answered the streaming call ${method} with a unary response`);
        checked.onHeader?.(response.header);
        try {
          yield* response.message;
        } catch (e) {
          throw asRpcError(e, 'a streaming response failed');
        }
        checked.onTrailer?.(response.trailer);
      },
    };
  }

  /**
   * Makes a client-streaming call (PROTOCOL.md section 3.4): sends `requests` as they are
   * iterated (a slow handler slows the iteration: flow control), then returns the one response.
   * Needs a server of protocol version 2 and a client without `resume`; not through a director
   * yet.
   * @param requests - the request messages, an (async) iterable of bytes, read once
   * @throws {RpcError} as {@link RpcClient.call}; `UNIMPLEMENTED` with `resume`, on an `rpcnet/1`
   * connection or through a director; what the `requests` iterable threw (as an RpcError).
   */
  async callClientStreaming(method: string, requests: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: CallOptions): Promise<Buffer> {
    const checked = checkCall(method, new Uint8Array(), options);
    const response = await this.#intercepted({ ...requestOf(false, checked), requests: iterableOf(requests) });
    if (response.stream) throw new RpcError('INTERNAL', `an interceptor answered the client-streaming call ${method} with a stream`);
    checked.onHeader?.(response.header);
    checked.onTrailer?.(response.trailer);
    return response.message;
  }

  /**
   * Makes a bidi call (PROTOCOL.md section 3.4): sends `requests` as they are iterated and
   * yields the responses as they arrive, both in order and independent of each other. Breaking
   * out of the loop cancels the call. Same conditions as {@link RpcClient.callClientStreaming}.
   * @throws {RpcError} `INVALID_ARGUMENT` at once for bad arguments; from the iterator: as
   * {@link RpcClient.callClientStreaming}.
   */
  callBidiStreaming(method: string, requests: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: CallOptions): AsyncIterable<Buffer> {
    const checked = checkCall(method, new Uint8Array(), options);
    const source = iterableOf(requests);
    return this.#streamOf(method, checked, { ...requestOf(true, checked), requests: source });
  }

  /**
   * Runs `request` through the interceptors (their outer functions run for every call); what
   * they throw reaches the caller as an RpcError. The call's `deadlineMs` bounds the whole call,
   * interceptors and retries included: each attempt gets what is left of it.
   */
  async #intercepted(request: ClientRequest): Promise<ClientResponse> {
    const started = performance.now();
    try {
      const call = chain(this.#interceptors, (r: ClientRequest) => this.#send(r, started));
      return await call(request);
    } catch (e) {
      throw asRpcError(e, 'an interceptor failed');
    }
  }

  /**
   * The call itself, innermost in the interceptor chain: the request (as the interceptors left
   * it) is checked again, and a streaming call resolves once its first items, its response
   * headers or its end have arrived, so that an interceptor around it sees the call's failure
   * and its timing.
   */
  async #send(request: ClientRequest, started: number): Promise<ClientResponse> {
    const c = checkCall(request.method, request.message, {
      deadlineMs: request.deadlineMs,
      signal: request.signal,
      idempotent: request.idempotent,
      headers: request.header,
    });
    let deadlineMs = c.deadlineMs;
    if (deadlineMs > 0) {
      const left = Math.ceil(deadlineMs - (performance.now() - started));
      if (left <= 0) throw new RpcError('DEADLINE_EXCEEDED', `deadline of ${deadlineMs} ms exceeded before the call was sent`);
      deadlineMs = left;
    }
    // One client span per attempt; its context travels in the headers (`traceparent`).
    const span = startClientSpan(c.method, c.header);
    const entries = toEntries(c.header);
    if (request.requests) return this.#duplex(c, request.requests, request.stream, deadlineMs, entries, span);
    if (request.stream) return this.#stream(c.method, c.payload, deadlineMs, c.signal, entries, span);
    let reply: Native.NativeReply;
    try {
      reply = await this.#unary(c.method, c.payload, deadlineMs, c.signal, c.idempotent, entries);
    } catch (e) {
      endSpan(span, e);
      throw e;
    }
    endSpan(span);
    const header = fromEntries(reply.metadata?.header);
    const trailer = fromEntries(reply.metadata?.trailer);
    return { stream: false, method: c.method, message: reply.payload, header, trailer };
  }

  async #unary(
    m: string,
    payload: Buffer,
    d: number,
    signal: AbortSignal | undefined,
    idempotent: boolean,
    entries: Native.NativeMetadataEntry[] | undefined,
  ): Promise<Native.NativeReply> {
    try {
      if (!signal) return await this.#native.unary(m, payload, d, idempotent, entries);
      if (signal.aborted) throw aborted();
      const call = this.#native.newCall();
      const onAbort = () => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        return await call.unary(m, payload, d, idempotent, entries);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } catch (e) {
      throw fromBinding(e);
    }
  }

  /**
   * Opens a server-streaming call and waits for its first batch of items, its response headers
   * or its end, then returns the items as an iterable that reads the rest as the caller
   * iterates; breaking out of it (or the signal) cancels the call.
   */
  async #stream(
    m: string,
    payload: Buffer,
    d: number,
    signal: AbortSignal | undefined,
    entries: Native.NativeMetadataEntry[] | undefined,
    span: Span,
  ): Promise<ClientStreamResponse> {
    let stream: Native.NativeStream;
    try {
      if (signal?.aborted) throw aborted();
      stream = await this.#native.openStream(m, payload, d, entries);
    } catch (e) {
      const error = fromBinding(e);
      endSpan(span, error);
      throw error;
    }
    return this.#items(m, stream, signal, span);
  }

  /**
   * The items of an open server-streaming or bidi call: waits for the first batch, the response
   * headers or the end, then returns the rest as an iterable read as the caller iterates.
   */
  async #items(
    m: string,
    stream: ItemSource,
    signal: AbortSignal | undefined,
    span: Span,
    why: () => RpcError | undefined = () => undefined,
  ): Promise<ClientStreamResponse> {
    const header = new Headers();
    const trailer = new Headers();
    /** Fills `header` (once) and `trailer` from what the stream received. */
    const readMetadata = (final: boolean) => {
      const got = stream.responseMetadata();
      if ([...header.keys()].length === 0) appendAll(header, fromEntries(got.header));
      if (final) appendAll(trailer, fromEntries(got.trailer));
    };
    const onAbort = () => stream.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) stream.cancel();
    const next = async (): Promise<Buffer[] | null> => {
      try {
        const batch = await stream.nextBatch(ITEM_BATCH);
        if (batch === null) readMetadata(true);
        return batch;
      } catch (e) {
        readMetadata(true);
        const error = why() ?? fromBinding(e);
        appendAll(error.metadata, header);
        appendAll(error.metadata, trailer);
        throw error;
      }
    };
    let first: Buffer[] | null;
    try {
      first = await next();
      readMetadata(false);
    } catch (e) {
      signal?.removeEventListener('abort', onAbort);
      endSpan(span, e);
      throw e;
    }
    const dropped = {};
    const message = {
      async *[Symbol.asyncIterator]() {
        let ended = false;
        let failure: unknown;
        try {
          for (let batch = first; ; batch = await next()) {
            if (batch === null) {
              ended = true;
              return;
            }
            for (const item of batch) yield item;
          }
        } catch (e) {
          ended = true;
          failure = e;
          throw e;
        } finally {
          abandoned.unregister(dropped);
          signal?.removeEventListener('abort', onAbort);
          if (!ended) {
            stream.cancel();
            failure = aborted();
          }
          endSpan(span, failure);
        }
      },
    };
    // An interceptor (or a caller) may drop the items without reading them to the end.
    abandoned.register(message, span, dropped);
    return { stream: true, method: m, message, header, trailer };
  }

  /**
   * A client-streaming (`serverStreaming` false) or bidi call: opens it, sends `requests` as the
   * caller's iterable yields them (flow control applies: a slow handler slows the iteration),
   * half-closes at their end, and answers like a unary or a streaming call. A failure of the
   * requests (the iterable throws, an item is not bytes) cancels the call and is what the
   * caller gets.
   */
  async #duplex(
    c: CheckedCall,
    requests: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    serverStreaming: boolean,
    d: number,
    entries: Native.NativeMetadataEntry[] | undefined,
    span: Span,
  ): Promise<ClientResponse> {
    let call: Native.NativeDuplex;
    try {
      if (c.signal?.aborted) throw aborted();
      call = await this.#native.openDuplex(c.method, d, entries, serverStreaming, c.idempotent);
    } catch (e) {
      const error = fromBinding(e);
      endSpan(span, error);
      throw error;
    }
    let failure: RpcError | undefined;
    void (async () => {
      try {
        await sendRequests(call, requests);
        await call.closeSend();
      } catch (e) {
        // A send that failed because the call ended reports nothing: the call's outcome does.
        if (e instanceof RpcError) {
          failure = e;
          call.cancel();
        } else if (!(e instanceof Error && typeof (e as { code?: unknown }).code === 'string')) {
          failure = asRpcError(e, 'the requests failed');
          call.cancel();
        }
      }
    })();
    if (serverStreaming) return this.#items(c.method, call, c.signal, span, () => failure);
    const onAbort = () => call.cancel();
    c.signal?.addEventListener('abort', onAbort, { once: true });
    if (c.signal?.aborted) call.cancel(); // aborted while the call was being opened
    try {
      const reply = await call.response();
      endSpan(span);
      return { stream: false, method: c.method, message: reply.payload, header: fromEntries(reply.metadata?.header), trailer: fromEntries(reply.metadata?.trailer) };
    } catch (e) {
      const error = failure ?? fromBinding(e);
      endSpan(span, error);
      throw error;
    } finally {
      c.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Closes the connection (QUIC application code 0; a resumable session ends and its director
   * tells the owner to drop it). Pending calls fail with `UNAVAILABLE`.
   */
  async close(): Promise<void> {
    await this.#native.close();
  }
}

/** Requests taken into one crossing at most (the rest wait for the next one)… */
const REQUEST_BATCH = 256;
/** …and their bytes: what the client gathers ahead of QUIC's flow control stays small. */
const REQUEST_BATCH_BYTES = 256 * 1024;

/**
 * Sends `requests` in order, one crossing into Rust per batch: while a batch is on its way (QUIC
 * took it when the crossing resolves, so flow control applies), the requests the iterable yields
 * meanwhile gather into the next one, up to {@link REQUEST_BATCH} requests or
 * {@link REQUEST_BATCH_BYTES} bytes, after which the iterable is not read until the batch in
 * flight is taken.
 * @throws what the iterable throws, `INVALID_ARGUMENT` for a request that is not bytes, and the
 * crossing's rejection (the call is over).
 */
async function sendRequests(call: Native.NativeDuplex, requests: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
  let gathered: Buffer[] = [];
  let gatheredBytes = 0;
  let inFlight: Promise<void> | undefined;
  let failed: { error: unknown } | undefined;
  const flush = (): Promise<void> =>
    (async () => {
      while (gathered.length > 0) {
        const batch = gathered;
        gathered = [];
        gatheredBytes = 0;
        await (batch.length === 1 ? call.send(batch[0]!) : call.sendMany(batch));
      }
    })().then(
      () => {
        inFlight = undefined;
      },
      (error: unknown) => {
        inFlight = undefined;
        failed = { error };
      },
    );
  for await (const r of requests) {
    if (failed) throw failed.error;
    const request = bytes('request', r);
    gathered.push(request);
    gatheredBytes += request.length;
    inFlight ??= flush();
    if (gathered.length >= REQUEST_BATCH || gatheredBytes >= REQUEST_BATCH_BYTES) await inFlight;
  }
  await inFlight;
  if (gathered.length > 0) await flush();
  if (failed) throw failed.error;
}
