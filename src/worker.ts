/**
 * {@link RpcWorker}: a cluster worker. It serves calls that the director relays to it (user
 * port) and takes part in migrations (management port, mutual TLS under the cluster CA). Its
 * handlers are registered exactly as on an {@link RpcServer}; the migration hooks decide whether
 * a session may move here and carry the application's per-session state.
 * @module
 */
import { asBuffer, native, type Native } from './binding.js';
import { fromNative, RpcError } from './errors.js';
import { RpcServer, type ServerStreamingHandler, type UnaryHandler } from './server.js';

/** Options of {@link RpcWorker.start}. */
export interface WorkerOptions {
  /** The worker's id in the cluster, e.g. `worker-a` (1..253 of `A-Za-z0-9._-`). */
  id: string;
  /** The director's management address, `ip:port` ({@link Director.mgmtAddress}). */
  director: string;
  /**
   * Directory of the cluster CA and secret; created on first use and shared by every process of
   * the cluster. Default: `$RPCNET_CLUSTER_DIR` or `.rpcnet/cluster`.
   */
  clusterDir?: string;
  /** IP to bind both ports on. Default `127.0.0.1`. */
  host?: string;
  /** Heartbeat interval, ms. Default 100. The director's `failoverAfterMs` must be several times larger. */
  heartbeatMs?: number;
}

/** A migration request as the target's policy hook sees it (RFC-001 MigrationRequest). */
export interface MigrationRequestInfo {
  /** Migration id. */
  migrationId: number;
  /** The session (16 hex digits). */
  sessionId: string;
  /** Source worker id. */
  source: string;
  /** Target worker id (this worker). */
  target: string;
  /** `drain`, `admin`, `load-balancing`, ... */
  reason: string;
}

/** The policy hook's answer (RFC-001 MigrationConfirmation). */
export type MigrationDecision =
  | { decision: 'accept' }
  | { decision: 'reject'; reason: string }
  | { decision: 'defer'; retryAfterMs: number };

/** Hooks of a worker; each is optional. */
export interface WorkerHooks {
  /** Confirmation (RFC-001 phase 2) on the target. Default: accept. A throw rejects. */
  onMigrationRequest?: (request: MigrationRequestInfo) => MigrationDecision | Promise<MigrationDecision>;
  /** State Capture on the source: the session's application state. Default: empty. */
  captureState?: (sessionId: string) => Uint8Array | Promise<Uint8Array>;
  /** Restore on the target, before the session's calls resume. Default: nothing. */
  restoreState?: (sessionId: string, state: Buffer) => void | Promise<void>;
}

/** The cluster directory used when none is given: `$RPCNET_CLUSTER_DIR` or `.rpcnet/cluster`. */
export function defaultClusterDir(): string {
  return process.env.RPCNET_CLUSTER_DIR || '.rpcnet/cluster';
}

/**
 * A worker process's endpoint.
 *
 * ```ts
 * const worker = await RpcWorker.start({ id: 'worker-a', director: '127.0.0.1:7001' });
 * worker.serverStreaming('tokens', async function* (req, ctx) { ... ctx.checkpoint(state) ... });
 * process.on('SIGTERM', () => worker.drain().then(() => process.exit(0)));
 * ```
 */
export class RpcWorker {
  readonly #native: Native.NativeWorker;
  readonly #server: RpcServer;
  #hooks: WorkerHooks = {};
  readonly #loop: Promise<void>;

  private constructor(n: Native.NativeWorker) {
    this.#native = n;
    this.#server = RpcServer.fromNative(n.server());
    this.#loop = this.#run();
  }

  /**
   * Binds the user and management ports and registers with the director.
   * @throws {RpcError} `UNAVAILABLE` if the director cannot be reached or refuses the worker;
   * `INVALID_ARGUMENT` for a bad id, address or cluster directory, or for an id that a live
   * worker (one the director has not declared dead) already holds.
   */
  static async start(options: WorkerOptions): Promise<RpcWorker> {
    try {
      const n = await native.startWorker({
        id: options.id,
        director: options.director,
        clusterDir: options.clusterDir ?? defaultClusterDir(),
        host: options.host,
        heartbeatMs: options.heartbeatMs,
      });
      return new RpcWorker(n);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The worker's id. */
  get id(): string {
    return this.#native.id;
  }

  /** The user port's address, `ip:port`: the director relays calls here. */
  get address(): string {
    return this.#server.address;
  }

  /** The management port's address, `ip:port`: the director drives migrations here. */
  get mgmtAddress(): string {
    return this.#native.mgmtAddress;
  }

  /** Registers a unary handler (see {@link RpcServer.unary}). */
  unary(method: string, handler: UnaryHandler): this {
    this.#server.unary(method, handler);
    return this;
  }

  /**
   * Registers a server-streaming handler (see {@link RpcServer.serverStreaming}). To resume
   * exactly after a migration or failover, continue from `ctx.resume` and call `ctx.checkpoint`.
   */
  serverStreaming(method: string, handler: ServerStreamingHandler): this {
    this.#server.serverStreaming(method, handler);
    return this;
  }

  /** Sets the migration hooks (replacing earlier ones). */
  setHooks(hooks: WorkerHooks): this {
    this.#hooks = { ...hooks };
    this.#native.setHooks(!!hooks.onMigrationRequest, !!hooks.captureState, !!hooks.restoreState);
    return this;
  }

  /**
   * Graceful drain (rolling update, hot reload): asks the director to migrate every session to
   * other workers and resolves once none is left here. Then {@link RpcWorker.close} and exit.
   * @param timeoutMs - upper bound, ms (default 30000)
   * @throws {RpcError} `DEADLINE_EXCEEDED`, `UNAVAILABLE`, or the migration's failure.
   */
  async drain(timeoutMs = 30_000): Promise<void> {
    try {
      await this.#native.drain(timeoutMs);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * Closes both ports; running handlers are aborted. Resolves once both UDP ports are released,
   * so they can be bound again at once.
   */
  async close(): Promise<void> {
    await Promise.all([this.#native.close(), this.#server.close()]);
    await this.#loop;
  }

  async #run(): Promise<void> {
    for (;;) {
      const hooks = await this.#native.nextHooks(64);
      if (hooks.length === 0) return;
      for (const h of hooks) void this.#answer(h);
    }
  }

  async #answer(h: Native.NativeHook): Promise<void> {
    const n = this.#native;
    try {
      if (h.kind === 'migration-request') {
        const hook = this.#hooks.onMigrationRequest;
        const d: MigrationDecision = hook
          ? await hook({
              migrationId: h.migrationId ?? 0,
              sessionId: h.sessionId,
              source: h.source ?? '',
              target: h.target ?? '',
              reason: h.reason ?? '',
            })
          : { decision: 'accept' };
        n.answerDecision(
          h.id,
          d.decision,
          d.decision === 'reject' ? d.reason : undefined,
          d.decision === 'defer' ? d.retryAfterMs : undefined,
        );
      } else if (h.kind === 'capture') {
        const state = this.#hooks.captureState ? await this.#hooks.captureState(h.sessionId) : new Uint8Array(0);
        n.answerState(h.id, asBuffer(state));
      } else {
        await this.#hooks.restoreState?.(h.sessionId, h.state ?? Buffer.alloc(0));
        n.answerState(h.id, Buffer.alloc(0));
      }
    } catch (e) {
      n.failHook(h.id, e instanceof Error ? e.message : String(e));
    }
  }
}
