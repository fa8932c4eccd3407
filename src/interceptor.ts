/**
 * Interceptors: client and server middleware in the style of connect-es (`(next) => async (req)
 * => ...`). This module holds their types and how a list of them becomes one function; the
 * client and the server apply them to every call, unary and server-streaming alike.
 *
 * Order: interceptors run in the order given, the first one outermost. With `[a, b]`, `a` sees
 * the request first and the response (or error) last, and `b` calls the call itself. An
 * interceptor may change the request it passes on (spread it and replace fields), call `next`
 * more than once (a retry), not call it at all (throw an {@link RpcError} with the code the
 * caller should get), and change or wrap the response.
 * @module
 */
import type { CallContext } from './server.js';

/** A client call as interceptors see it. */
export interface ClientRequest {
  /** `false` for a unary call, `true` for a server-streaming one. */
  readonly stream: boolean;
  /** The method name. */
  readonly method: string;
  /** The request bytes (empty for a client-streaming or bidi call: see `requests`). */
  readonly message: Uint8Array;
  /**
   * A client-streaming or bidi call's requests, sent as they are iterated (PROTOCOL.md
   * section 3.4); absent for unary and server-streaming calls. They can be iterated once, so
   * an interceptor that calls `next` again (a retry) must pass a new iterable.
   */
  readonly requests?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  /** The call's deadline, ms; 0 = none. */
  readonly deadlineMs: number;
  /** The caller's AbortSignal, if any. */
  readonly signal?: AbortSignal;
  /** Unary calls: whether the call may be sent again after a resume. */
  readonly idempotent: boolean;
  /**
   * The request headers (PROTOCOL.md section 5.6). An interceptor may add to them
   * (`req.header.set('authorization', ...)`) before calling `next`.
   */
  readonly header: Headers;
}

/** A unary call's response: the response bytes. */
export interface ClientUnaryResponse {
  /** Always `false`. */
  readonly stream: false;
  /** The method name. */
  readonly method: string;
  /** The response bytes. */
  readonly message: Buffer;
  /** The response headers. */
  readonly header: Headers;
  /** The response trailers. */
  readonly trailer: Headers;
}

/** A server-streaming call's response: its items, read as the caller iterates. */
export interface ClientStreamResponse {
  /** Always `true`. */
  readonly stream: true;
  /** The method name. */
  readonly method: string;
  /** The items, in order, exactly once. */
  readonly message: AsyncIterable<Buffer>;
  /** The response headers (they arrive before the first item). */
  readonly header: Headers;
  /** The response trailers: filled in once the items have all been read. */
  readonly trailer: Headers;
}

/** What a client call returns through the interceptors. */
export type ClientResponse = ClientUnaryResponse | ClientStreamResponse;

/** A client call, or the rest of the chain, as an interceptor calls it. */
export type ClientCallFn = (request: ClientRequest) => Promise<ClientResponse>;

/** Client middleware: given the rest of the chain, the function that handles a call. */
export type ClientInterceptor = (next: ClientCallFn) => ClientCallFn;

/** A call a server received, as interceptors see it. */
export interface ServerRequest {
  /** `false` for a unary method, `true` for a server-streaming one. */
  readonly stream: boolean;
  /** The method name. */
  readonly method: string;
  /** The request bytes (empty for a client-streaming or bidi call: see `requests`). */
  readonly message: Buffer;
  /** A client-streaming or bidi call's requests, as the client sends them (read them once). */
  readonly requests?: AsyncIterable<Buffer>;
  /** The call's context (deadline, AbortSignal, connection, checkpoint, resume), as handlers get it. */
  readonly context: CallContext;
  /**
   * The request headers: `context.metadata`. Response headers and trailers are set on
   * `context.responseHeader` and `context.responseTrailer`.
   */
  readonly header: Headers;
}

/** What a handler answered: the response bytes (unary) or the items (server-streaming). */
export interface ServerResponse {
  /** The response bytes of a unary call, or the items of a streaming call. */
  readonly message: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

/** A handler, or the rest of the chain, as a server interceptor calls it. */
export type ServerCallFn = (request: ServerRequest) => Promise<ServerResponse>;

/** Server middleware: given the rest of the chain, the function that handles a call. */
export type ServerInterceptor = (next: ServerCallFn) => ServerCallFn;

/** `interceptors` around `call`, the first one outermost. */
export function chain<F>(interceptors: readonly ((next: F) => F)[], call: F): F {
  return interceptors.reduceRight((next, interceptor) => interceptor(next), call);
}
