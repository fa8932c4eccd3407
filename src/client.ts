/**
 * The client half of the public API: {@link RpcClient} holds one QUIC connection (in Rust) and
 * makes unary and server-streaming calls on it. Streaming items cross into JavaScript in batches.
 * @module
 */
import { asBuffer, native, type Native } from './binding.js';
import { fromNative, RpcError } from './errors.js';
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
  /** Largest accepted frame body in bytes (PROTOCOL.md). Default 16 MiB. */
  maxFrameSize?: number;
  /** Handshake time limit, ms. Default 10000. */
  connectTimeoutMs?: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Deadline in ms from now; enforced by client and server. Rejects with `DEADLINE_EXCEEDED`. */
  deadlineMs?: number;
  /** Aborting it cancels the call on both ends; the call rejects with `CANCELLED`. */
  signal?: AbortSignal;
}

/** Items taken from the native stream per crossing. */
const ITEM_BATCH = 1024;

function deadline(options: CallOptions | undefined): number {
  const d = options?.deadlineMs ?? 0;
  if (!Number.isFinite(d) || d < 0 || d > 0xffffffff) {
    throw new RpcError('INVALID_ARGUMENT', `deadlineMs must be a number of ms in 0..4294967295, got ${d}`);
  }
  return Math.ceil(d);
}

function checkMethod(method: string): void {
  if (typeof method !== 'string' || method.length === 0) {
    throw new RpcError('INVALID_ARGUMENT', `method must be a non-empty string, got ${JSON.stringify(method)}`);
  }
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
export class RpcClient {
  readonly #native: Native.NativeClient;

  private constructor(n: Native.NativeClient) {
    this.#native = n;
  }

  /**
   * Connects (QUIC + TLS 1.3, ALPN `rpcnet/1`) to `address` (`host:port`).
   * @throws {RpcError} `INVALID_ARGUMENT` for bad options; `UNAVAILABLE` when the server cannot be
   * reached or its certificate is refused (e.g. wrong pin); `DEADLINE_EXCEEDED` after `connectTimeoutMs`.
   */
  static async connect(address: string, options: ClientOptions): Promise<RpcClient> {
    if (!options?.tls) {
      throw new RpcError('INVALID_ARGUMENT', 'options.tls is required: give tls.pin, tls.caFile or tls.systemRoots');
    }
    try {
      const n = await native.connect(address, {
        pin: options.tls.pin,
        caFile: options.tls.caFile,
        systemRoots: options.tls.systemRoots,
        serverName: options.tls.serverName,
        maxFrameSize: options.maxFrameSize,
        connectTimeoutMs: options.connectTimeoutMs,
      });
      return new RpcClient(n);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The connection's id; the server sees the same value (`ctx.connection.id`). */
  get connectionId(): string {
    return this.#native.connectionId;
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
   * @throws {RpcError} the handler's code and message; `NOT_FOUND` for an unknown method;
   * `DEADLINE_EXCEEDED`; `CANCELLED`; `UNAVAILABLE` on connection loss; `PROTOCOL`.
   */
  async call(method: string, request: Uint8Array, options?: CallOptions): Promise<Buffer> {
    checkMethod(method);
    const d = deadline(options);
    const payload = asBuffer(request);
    const signal = options?.signal;
    try {
      if (!signal) return await this.#native.unary(method, payload, d);
      if (signal.aborted) throw aborted();
      const call = this.#native.newCall();
      const onAbort = () => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        return await call.unary(method, payload, d);
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * Makes a server-streaming call. Items arrive in order, exactly once; breaking out of the loop
   * cancels the call. The stream only reads as fast as you iterate (backpressure).
   * @throws {RpcError} from the iterator: as {@link RpcClient.call}.
   */
  callStreaming(method: string, request: Uint8Array, options?: CallOptions): AsyncIterable<Buffer> {
    checkMethod(method);
    const d = deadline(options);
    const payload = asBuffer(request);
    const n = this.#native;
    const signal = options?.signal;
    return {
      async *[Symbol.asyncIterator]() {
        if (signal?.aborted) throw aborted();
        let stream: Native.NativeStream;
        try {
          stream = await n.openStream(method, payload, d);
        } catch (e) {
          throw fromNative(e);
        }
        let ended = false;
        const onAbort = () => stream.cancel();
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
          if (signal?.aborted) stream.cancel();
          for (;;) {
            let batch: Buffer[] | null;
            try {
              batch = await stream.nextBatch(ITEM_BATCH);
            } catch (e) {
              ended = true;
              throw fromNative(e);
            }
            if (batch === null) {
              ended = true;
              return;
            }
            for (const item of batch) yield item;
          }
        } finally {
          signal?.removeEventListener('abort', onAbort);
          if (!ended) stream.cancel();
        }
      },
    };
  }

  /** Closes the connection (QUIC application code 0). Pending calls fail with `UNAVAILABLE`. */
  async close(): Promise<void> {
    await this.#native.close();
  }
}
