/**
 * A client for a director's admin methods (PROTOCOL.md section 14.2): list its sessions and
 * workers, migrate a session, drain a worker, from another process, as `rpcnet sessions`,
 * `workers`, `migrate` and `drain` do. It connects to the director's management port with an
 * admin certificate (`rpcnet cluster issue NAME --role admin`); the director refuses every other
 * certificate with `PERMISSION_DENIED`.
 * @module
 */
import { native } from './binding.js';
import type { MigrationReport, WorkerInfo } from './director.js';
import { fromBinding, RpcError } from './errors.js';
import { integer, optionalInteger, string, U32_MAX } from './options.js';
import { defaultClusterDir } from './worker.js';

/** Options of {@link AdminClient}. */
export interface AdminClientOptions {
  /** The director's management address, `host:port` (its `mgmtAddress`). */
  director: string;
  /**
   * The admin tool's credentials: a directory issued with `rpcnet cluster issue NAME --role
   * admin` (or, in development, the cluster's CA directory). Default: `$RPCNET_CLUSTER_DIR` or
   * `.rpcnet/cluster`.
   */
  clusterDir?: string;
  /** How long one request may take, ms; default 60000 (a drain moves every session first). */
  timeoutMs?: number;
}

/** One open session, as {@link AdminClient.sessions} lists it. */
export interface SessionInfo {
  /** 16 hex digits. */
  sessionId: string;
  /** The client connection's id, as handlers see it. */
  connectionId: string;
  /** The worker that owns it. */
  worker: string;
}

/** One live worker, as {@link AdminClient.workers} lists it. */
export interface AdminWorkerInfo extends WorkerInfo {
  /** Whether it is draining (no new sessions are placed on it). */
  draining: boolean;
  /** Its user port, as the director resolved it. */
  userAddress: string;
  /** Its management port. */
  mgmtAddress: string;
}

const SESSION_ID = /^[0-9a-fA-F]{16}$/;

/**
 * Talks to one director's admin methods. Each request opens its own connection (admin calls are
 * rare), so an instance holds nothing to close.
 *
 * ```ts
 * const admin = new AdminClient({ director: '10.0.0.1:7001', clusterDir: './ops' });
 * for (const s of await admin.sessions()) console.log(s.sessionId, s.worker);
 * await admin.drain('worker-a');
 * ```
 */
export class AdminClient {
  readonly #director: string;
  readonly #clusterDir: string;
  readonly #timeoutMs: number;

  /** @throws {RpcError} `INVALID_ARGUMENT` for a missing `director` or a bad `timeoutMs`. */
  constructor(options: AdminClientOptions) {
    this.#director = string('director', options.director);
    this.#clusterDir = options.clusterDir === undefined ? defaultClusterDir() : string('clusterDir', options.clusterDir);
    this.#timeoutMs = optionalInteger('timeoutMs', options.timeoutMs, 1, U32_MAX, 'ms') ?? 60_000;
  }

  /**
   * The director's open sessions, sorted by id.
   * @throws {RpcError} `UNAVAILABLE` (director unreachable), `PERMISSION_DENIED` (not an admin
   * certificate), `INVALID_ARGUMENT` (credentials missing or wrong, naming the file).
   */
  async sessions(): Promise<SessionInfo[]> {
    return ((await this.#call('rpcnet.admin/sessions', {})) as { sessions: SessionInfo[] }).sessions;
  }

  /**
   * The director's live workers, sorted by id.
   * @throws {RpcError} as {@link AdminClient.sessions}.
   */
  async workers(): Promise<AdminWorkerInfo[]> {
    return ((await this.#call('rpcnet.admin/workers', {})) as { workers: AdminWorkerInfo[] }).workers;
  }

  /**
   * Moves session `sessionId` to worker `to` (default: the live worker with the fewest sessions
   * other than its owner) through every RFC-001 phase; resolves when it ended.
   * @throws {RpcError} `INVALID_ARGUMENT` (not 16 hex digits), `NOT_FOUND` (session or worker),
   * `UNAVAILABLE` (aborted: the session stays where it was), and those of
   * {@link AdminClient.sessions}.
   */
  async migrate(sessionId: string, to?: string): Promise<MigrationReport> {
    if (typeof sessionId !== 'string' || !SESSION_ID.test(sessionId)) {
      throw new RpcError('INVALID_ARGUMENT', `session id ${JSON.stringify(sessionId)} is not 16 hex digits`);
    }
    const target = to === undefined ? null : string('to', to);
    return (await this.#call('rpcnet.admin/migrate', { session: sessionId.toLowerCase(), to: target })) as MigrationReport;
  }

  /**
   * Drains worker `worker`: no new sessions are placed on it, and every session it owns is
   * migrated away. Resolves with one report per session once all moved.
   * @throws {RpcError} `NOT_FOUND` (no such live worker), the first rolled-back migration's error
   * (`UNAVAILABLE`, once every session was tried; the worker stays draining), and those of
   * {@link AdminClient.sessions}.
   */
  async drain(worker: string): Promise<MigrationReport[]> {
    return ((await this.#call('rpcnet.admin/drain', { worker: string('worker', worker) })) as { migrations: MigrationReport[] }).migrations;
  }

  async #call(method: string, request: object): Promise<unknown> {
    let reply: string;
    try {
      reply = await native.adminCall(this.#clusterDir, this.#director, method, JSON.stringify(request), integer('timeoutMs', this.#timeoutMs, 1, U32_MAX, 'ms'));
    } catch (e) {
      throw fromBinding(e);
    }
    try {
      return JSON.parse(reply) as unknown;
    } catch (e) {
      throw new RpcError('PROTOCOL', `the director's reply to ${method} is not JSON: ${(e as Error).message}`);
    }
  }
}
