/**
 * {@link RpcWorker}: a cluster worker. It serves calls that the director relays to it (user
 * port) and takes part in migrations (management port, mutual TLS under the cluster CA). Its
 * handlers are registered exactly as on an {@link RpcServer}; the migration hooks decide whether
 * a session may move here and carry the application's per-session state.
 * @module
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { native, type Native } from './binding.js';
import { fromBinding, reportInternal, RpcError, unknownKind } from './errors.js';
import { bytes, describe, integer, invalid, optionalBoolean, optionalFunc, optionalInteger, optionalPort, optionalString, record, string, stringList, U32_MAX } from './options.js';
import type { ServerInterceptor } from './interceptor.js';
import { serverOver, type BidiStreamingHandler, type ClientStreamingHandler, type RpcServer, type ServerStreamingHandler, type UnaryHandler } from './server.js';
import { AdminEndpoint, checkAdmin, type AdminOptions } from './admin.js';

/** Options of {@link RpcWorker.start}. */
export interface WorkerOptions {
  /**
   * The worker's id in the cluster, e.g. `worker-a` (1..253 of `A-Za-z0-9._-`). With issued
   * credentials (`rpcnet cluster issue NAME --role worker`) it is the certificate's name: leave it
   * out, or give that name; with a certificate for a pattern `PREFIX*` it is required and must
   * start with `PREFIX`. Required with a development CA directory.
   */
  id?: string;
  /**
   * The management address of the director to register with, `host:port` (an IP address, IPv6
   * in brackets, or a DNS name; {@link Director.advertisedMgmtAddress}), or an array of them to
   * register with several directors. A DNS name that resolves to several addresses names
   * several directors. The worker registers with every director and heartbeats each on its own,
   * with a lease from each: when one director is lost, only the calls it relays are suspended,
   * and it is reconnected in the background. Required.
   */
  director: string | string[];
  /**
   * Directory of the cluster CA and secret; created on first use and shared by every process of
   * the cluster. Default: `$RPCNET_CLUSTER_DIR` or `.rpcnet/cluster`.
   */
  clusterDir?: string;
  /**
   * Host to bind both ports on: an IP address (`0.0.0.0` or `::` for every interface) or a DNS
   * name. Default `127.0.0.1`.
   */
  host?: string;
  /** User port, an integer in 0..65535 (0 = any, the default). */
  port?: number;
  /** Management port, an integer in 0..65535 (0 = any, the default). */
  mgmtPort?: number;
  /**
   * The user address the directors relay calls to (`host:port`, or a host alone for the bound
   * port; an IP address or a DNS name the directors resolve). Default: the bound address, or,
   * for a wildcard `host`, the host's first non-loopback interface address.
   */
  advertiseAddress?: string;
  /** The management address the directors drive migrations at, as {@link WorkerOptions.advertiseAddress}. */
  advertiseMgmtAddress?: string;
  /**
   * Heartbeat interval, ms, a positive integer. Default 100. The director's `failoverAfterMs`
   * must be several times larger.
   */
  heartbeatMs?: number;
  /**
   * How long {@link RpcWorker.start} keeps trying to register before it fails with
   * `UNAVAILABLE`, ms, a positive integer. Default 10000. A director that does not run yet is
   * retried with backoff (50 ms doubling to 2 s) until then; with several directors, one that
   * accepts the worker is enough.
   */
  connectTimeoutMs?: number;
  /**
   * Drain on SIGTERM, a boolean. Default true: while the worker is open, a SIGTERM to the
   * process runs {@link RpcWorker.drain} (its sessions migrate to other workers, nothing lost)
   * and then {@link RpcWorker.close}; once no worker of the process is left open, the process
   * exits 0, or 1 when a drain failed (the error is printed on stderr; sessions a failed drain
   * did not move fail over when the worker is gone). The first worker started with it
   * installs one `process.on('SIGTERM')` handler for all of them; closing the last of them
   * removes it, and SIGTERMs while it runs are ignored. Give false to handle SIGTERM yourself,
   * since both handlers would run.
   */
  drainOnSigterm?: boolean;
  /**
   * Serve the HTTP admin endpoint (`/metrics`, `/health/live`, `/health/ready`: a director
   * accepted this worker and it is not draining) on this address; see the `admin` module.
   * Default: none.
   */
  admin?: AdminOptions;
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

/**
 * The policy hook's answer (RFC-001 MigrationConfirmation). `reason` is at most 65535 bytes of
 * UTF-8; `retryAfterMs` is a positive integer (ms). Any other answer fails the hook, which
 * aborts the migration.
 */
export type MigrationDecision =
  | { decision: 'accept' }
  | { decision: 'reject'; reason: string }
  | { decision: 'defer'; retryAfterMs: number };

/** Hooks of a worker; each is optional. */
export interface WorkerHooks {
  /**
   * Confirmation (RFC-001 phase 2) on the target. Default: accept. A throw, or an answer that is
   * not a {@link MigrationDecision}, aborts the migration (the session stays on the source).
   */
  onMigrationRequest?: (request: MigrationRequestInfo) => MigrationDecision | Promise<MigrationDecision>;
  /** State Capture on the source: the session's application state. Default: empty. */
  captureState?: (sessionId: string) => Uint8Array | Promise<Uint8Array>;
  /** Restore on the target, before the session's calls resume. Default: nothing. */
  restoreState?: (sessionId: string, state: Buffer) => void | Promise<void>;
}

/** The development cluster directory, made on first start when it does not exist. */
const DEVELOPMENT_CLUSTER_DIR = '.rpcnet/cluster';

/**
 * A director's or worker's cluster directory, checked: it must exist, unless it is the default
 * development directory `.rpcnet/cluster`, which the first process creates (with a development
 * CA). So a mistyped path stops the process instead of starting it on a CA of its own that no
 * peer trusts.
 * @throws {RpcError} `INVALID_ARGUMENT` naming the directory and the ways to fix it.
 * @internal
 */
export function existingClusterDir(dir: string): string {
  if (existsSync(dir) || resolve(dir) === resolve(DEVELOPMENT_CLUSTER_DIR)) return dir;
  throw new RpcError(
    'INVALID_ARGUMENT',
    `cluster directory ${resolve(dir)} does not exist: give the host's credentials directory (clusterDir, cluster_dir, RPCNET_CLUSTER_DIR, --cluster-dir), ` +
      'issue one with `rpcnet cluster issue NAME --role ROLE --out DIR`, or, for development on one machine, create an empty directory (a development CA is made in it)',
  );
}

/** The cluster directory used when none is given: `$RPCNET_CLUSTER_DIR` or `.rpcnet/cluster`. */
export function defaultClusterDir(): string {
  return process.env.RPCNET_CLUSTER_DIR || DEVELOPMENT_CLUSTER_DIR;
}

/** Workers of this process not closed yet. */
const openWorkers = new Set<RpcWorker>();
/** The open workers started with `drainOnSigterm` (the default). */
const sigtermWorkers = new Set<RpcWorker>();
/** Whether the SIGTERM handler is draining. */
let sigtermDraining = false;

/**
 * The process's SIGTERM handler while a worker drains on SIGTERM: drains and closes each such
 * worker, then exits (0, or 1 if a drain failed) when no worker of the process is open.
 */
function onSigterm(): void {
  if (sigtermDraining) return;
  sigtermDraining = true;
  let failed = false;
  const workers = [...sigtermWorkers];
  void Promise.all(
    workers.map(async (w) => {
      try {
        await w.drain();
      } catch (e) {
        failed = true;
        console.error(`rpcnet: worker ${w.id}: drain on SIGTERM failed: ${(e as Error).message}`);
      }
      await w.close();
    }),
  ).then(
    () => {
      sigtermDraining = false;
      if (sigtermWorkers.size === 0) process.off('SIGTERM', onSigterm);
      if (openWorkers.size === 0) process.exit(failed ? 1 : 0);
    },
    (e: unknown) => {
      console.error(`rpcnet: closing workers on SIGTERM failed: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}

/**
 * A worker process's endpoint. By default a SIGTERM drains and closes it and exits the process
 * ({@link WorkerOptions.drainOnSigterm}).
 *
 * ```ts
 * const worker = await RpcWorker.start({ id: 'worker-a', director: ['director-1:7001', 'director-2:7001'] });
 * worker.serverStreaming('tokens', async function* (req, ctx) { ... ctx.checkpoint(state) ... });
 * ```
 */
export class RpcWorker {
  readonly #native: Native.NativeWorker;
  #admin: AdminEndpoint | undefined;
  /** Set once {@link RpcWorker.drain} started: no longer ready for new sessions. */
  #draining = false;
  readonly #server: RpcServer;
  #hooks: WorkerHooks = {};
  readonly #loop: Promise<void>;

  private constructor(n: Native.NativeWorker) {
    this.#native = n;
    this.#server = serverOver(n.server());
    this.#loop = this.#run();
  }

  /**
   * Binds the user and management ports and registers with the director(s). Resolves once one
   * director accepted the worker; the others are retried in the background.
   * @throws {RpcError} `INVALID_ARGUMENT` for bad options (checked before anything starts:
   * required `director`, types, ranges, unknown keys), a bad id, an id that is not the name in
   * the worker's issued certificate, a missing id with a development CA directory, credentials
   * that are missing or for another role (naming the file and the command that makes it), a bad
   * address (a `director` entry that is not `host:port`, an advertised address that does not
   * resolve), or an id that a live worker (one the director has not declared dead) already
   * holds; `PERMISSION_DENIED` if the director refuses the worker's certificate (another name or
   * role); `UNAVAILABLE` if a director's TLS handshake fails (a certificate of another cluster:
   * at once) or no director accepted the worker within `connectTimeoutMs` (the message names
   * each director address and why).
   */
  static async start(options: WorkerOptions): Promise<RpcWorker> {
    const o = record('options', options, [
      'id',
      'director',
      'clusterDir',
      'host',
      'port',
      'mgmtPort',
      'advertiseAddress',
      'advertiseMgmtAddress',
      'heartbeatMs',
      'connectTimeoutMs',
      'drainOnSigterm',
      'admin',
    ]);
    const admin = checkAdmin(o.admin);
    const drainOnSigterm = optionalBoolean('drainOnSigterm', o.drainOnSigterm) ?? true;
    const checked: Native.NativeWorkerOptions = {
      id: optionalString('id', o.id),
      director: stringList('director', o.director, 'host:port'),
      clusterDir: existingClusterDir(optionalString('clusterDir', o.clusterDir) ?? defaultClusterDir()),
      host: optionalString('host', o.host),
      userPort: optionalPort('port', o.port),
      mgmtPort: optionalPort('mgmtPort', o.mgmtPort),
      advertiseAddress: optionalString('advertiseAddress', o.advertiseAddress),
      advertiseMgmtAddress: optionalString('advertiseMgmtAddress', o.advertiseMgmtAddress),
      heartbeatMs: optionalInteger('heartbeatMs', o.heartbeatMs, 1, U32_MAX, 'ms'),
      connectTimeoutMs: optionalInteger('connectTimeoutMs', o.connectTimeoutMs, 1, U32_MAX, 'ms'),
    };
    let worker: RpcWorker;
    try {
      worker = new RpcWorker(await native.startWorker(checked));
    } catch (e) {
      throw fromBinding(e);
    }
    if (admin) {
      try {
        worker.#admin = await AdminEndpoint.start(admin, { notReady: () => worker.#notReady() });
      } catch (e) {
        await worker.close();
        throw e;
      }
    }
    openWorkers.add(worker);
    if (drainOnSigterm) {
      if (sigtermWorkers.size === 0) process.on('SIGTERM', onSigterm);
      sigtermWorkers.add(worker);
    }
    return worker;
  }

  /** The admin endpoint's address (`host:port`), `undefined` without the `admin` option. */
  get adminAddress(): string | undefined {
    return this.#admin?.address;
  }

  /** Why the worker is not ready (`/health/ready`), `undefined` when it is. */
  #notReady(): string | undefined {
    if (this.#draining) return 'draining';
    if (this.directors.length === 0) return 'no director has accepted this worker';
    return undefined;
  }

  /** The worker's id. */
  get id(): string {
    return this.#native.id;
  }

  /** The user port's bound address, `ip:port`. */
  get address(): string {
    return this.#server.address;
  }

  /** The management port's bound address, `ip:port`. */
  get mgmtAddress(): string {
    return this.#native.mgmtAddress;
  }

  /** The user address told to the directors, `host:port`: they relay calls here. */
  get advertisedAddress(): string {
    return this.#native.advertisedAddress;
  }

  /** The management address told to the directors, `host:port`: they drive migrations here. */
  get advertisedMgmtAddress(): string {
    return this.#native.advertisedMgmtAddress;
  }

  /**
   * The directors that accepted this worker and were not lost since (`host:port` as given,
   * followed by the address in parentheses when it was a DNS name).
   */
  get directors(): string[] {
    return this.#native.directors;
  }

  /**
   * Adds server middleware for this worker's calls (see {@link RpcServer.use}).
   * @returns this worker, for chaining
   * @throws {RpcError} `INVALID_ARGUMENT` when `interceptor` is not a function.
   */
  use(interceptor: ServerInterceptor): this {
    this.#server.use(interceptor);
    return this;
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

  /**
   * Registers a client-streaming handler (see {@link RpcServer.clientStreaming}). A migration
   * or failover runs it again from the first request (a unary handler has no checkpoint), which
   * the director replays (README "Resumable handlers").
   */
  clientStreaming(method: string, handler: ClientStreamingHandler): this {
    this.#server.clientStreaming(method, handler);
    return this;
  }

  /**
   * Registers a bidi handler (see {@link RpcServer.bidiStreaming}). To resume exactly after a
   * migration or failover, continue from `ctx.resume` (`seq` for the items, `read` for the
   * requests) and call `ctx.checkpoint`.
   */
  bidiStreaming(method: string, handler: BidiStreamingHandler): this {
    this.#server.bidiStreaming(method, handler);
    return this;
  }

  /**
   * Sets the migration hooks (replacing earlier ones).
   * @throws {RpcError} `INVALID_ARGUMENT` when a hook is given but is not a function, or for an
   * unknown key.
   */
  setHooks(hooks: WorkerHooks): this {
    const h = record('hooks', hooks, ['onMigrationRequest', 'captureState', 'restoreState']);
    const checked: WorkerHooks = {
      onMigrationRequest: optionalFunc('onMigrationRequest', h.onMigrationRequest),
      captureState: optionalFunc('captureState', h.captureState),
      restoreState: optionalFunc('restoreState', h.restoreState),
    };
    this.#hooks = checked;
    this.#native.setHooks(!!checked.onMigrationRequest, !!checked.captureState, !!checked.restoreState);
    return this;
  }

  /**
   * Graceful drain (rolling update, hot reload): asks every director the worker is registered
   * with to migrate the sessions it relays to other workers, and resolves once none is left.
   * Then {@link RpcWorker.close} and exit.
   * @param timeoutMs - upper bound, ms, a positive integer (default 30000)
   * @throws {RpcError} `INVALID_ARGUMENT` for a bad `timeoutMs`; `DEADLINE_EXCEEDED`,
   * `UNAVAILABLE`, or the migration's failure.
   */
  async drain(timeoutMs = 30_000): Promise<void> {
    const ms = integer('timeoutMs', timeoutMs, 1, U32_MAX, 'ms');
    this.#draining = true;
    try {
      await this.#native.drain(ms);
    } catch (e) {
      throw fromBinding(e);
    }
  }

  /**
   * Closes both ports; running handlers are aborted. Resolves once both UDP ports are released,
   * so they can be bound again at once. Removes the SIGTERM handler when this was the last
   * worker of the process that drains on SIGTERM.
   */
  async close(): Promise<void> {
    openWorkers.delete(this);
    // While the handler runs it stays installed (further SIGTERMs are ignored); it removes itself.
    if (sigtermWorkers.delete(this) && sigtermWorkers.size === 0 && !sigtermDraining) process.off('SIGTERM', onSigterm);
    await Promise.all([this.#native.close(), this.#server.close(), this.#admin?.close()]);
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
      switch (h.kind) {
        case 'migration-request': {
          const hook = this.#hooks.onMigrationRequest;
          n.answerDecision(h.id, hook ? decisionOf(await hook({ ...h.request })) : { decision: 'accept' });
          return;
        }
        case 'capture': {
          const hook = this.#hooks.captureState;
          n.answerState(h.id, hook ? bytes("captureState's answer", await hook(h.sessionId)) : Buffer.alloc(0));
          return;
        }
        case 'restore':
          await this.#hooks.restoreState?.(h.sessionId, h.state);
          n.answerState(h.id, Buffer.alloc(0));
          return;
        default: {
          const e = unknownKind('worker hook', h);
          reportInternal(e);
          n.failHook((h as { id: number }).id, e.message);
        }
      }
    } catch (e) {
      n.failHook(h.id, e instanceof Error ? e.message : String(e));
    }
  }
}

/**
 * Checks what `onMigrationRequest` answered and converts it for the binding.
 * @throws {RpcError} `INVALID_ARGUMENT` naming what is wrong.
 */
function decisionOf(d: unknown): Native.NativeDecision {
  const decision = typeof d === 'object' && d !== null ? (d as { decision?: unknown }).decision : undefined;
  switch (decision) {
    case 'accept':
      return { decision: 'accept' };
    case 'reject': {
      const reason = (d as { reason?: unknown }).reason;
      if (typeof reason !== 'string' || Buffer.byteLength(reason) > 65535) {
        throw invalid('a reject decision\'s reason', 'a string of at most 65535 bytes', reason);
      }
      return { decision: 'reject', reason };
    }
    case 'defer':
      return { decision: 'defer', retryAfterMs: integer('retryAfterMs', (d as { retryAfterMs?: unknown }).retryAfterMs, 1, U32_MAX, 'ms') };
    default: {
      const got = typeof d === 'object' && d !== null ? `decision ${describe(decision)}` : describe(d);
      throw new RpcError('INVALID_ARGUMENT', `onMigrationRequest must answer { decision: 'accept' | 'reject' | 'defer' }, got ${got}`);
    }
  }
}
