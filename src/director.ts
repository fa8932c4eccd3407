/**
 * {@link Director}: the client-facing front of a cluster (README "Topology"). Clients connect to
 * it as to any rpcnet server; it relays each call to the worker that owns the client's session
 * (in Rust) and moves sessions between workers: admin migration, graceful drain and failover.
 * It reports what happens as events.
 * @module
 */
import { EventEmitter, on } from 'node:events';

import { native, type Native } from './binding.js';
import { fromNative } from './errors.js';
import { defaultClusterDir } from './worker.js';

/** Options of {@link Director.start}. */
export interface DirectorOptions {
  /** Directory of the cluster CA and secret (see {@link WorkerOptions.clusterDir}). */
  clusterDir?: string;
  /** IP to bind. Default `127.0.0.1`. */
  host?: string;
  /** User port for clients (0 = any). */
  port?: number;
  /** Management port for workers (0 = any). */
  mgmtPort?: number;
  /** PEM certificate and key shown to clients; default: self-signed ({@link Director.certFingerprint}). */
  tls?: { certPath: string; keyPath: string };
  /** A worker silent for this long is declared dead and its sessions fail over, ms. Default 500. */
  failoverAfterMs?: number;
  /** Skip the Confirmation phase (RFC-001 phase 2). Default false: the target's hook is asked. */
  autoConfirm?: boolean;
  /** Longest single phase before the Pivot, ms. Default 2000. */
  phaseTimeoutMs?: number;
  /** Longest migration before the Pivot, ms. Default 5000 (RFC-001). */
  totalTimeoutMs?: number;
}

/** What one migration did. */
export interface MigrationReport {
  /** Migration id. */
  migrationId: number;
  /** Session id (16 hex digits). */
  sessionId: string;
  /** Source worker. */
  source: string;
  /** Target worker. */
  target: string;
  /** `drain`, `admin`, ... */
  reason: string;
  /** True if the session now lives on the target; false when rolled back (MigrationAbort). */
  completed: boolean;
  /** For an abort: `CODE: message` (e.g. `TOKEN_REPLAYED: ...`). */
  error?: string;
  /** For an abort: the RFC-001 phase that was running. */
  abortedIn?: string;
  /** Time per phase, ms, in order (`Initiation`, `Confirmation`, ...). */
  phases: { phase: string; ms: number }[];
  /** Total duration, ms. */
  durationMs: number;
  /** How long the session's calls were frozen (State Capture to Pivot), ms. */
  frozenMs: number;
  /** Sealed snapshot size, bytes. */
  snapshotBytes: number;
}

/** Events of a {@link Director} (also delivered by `for await (const e of director.events())`). */
export type DirectorEvent =
  | { kind: 'worker-joined'; worker: string }
  | { kind: 'worker-lost'; worker: string }
  | { kind: 'session-opened'; sessionId: string; connectionId: string; worker: string }
  | { kind: 'session-closed'; sessionId: string }
  | { kind: 'migration-started'; migrationId: number; sessionId: string; source: string; target: string; reason: string }
  | { kind: 'migration-completed'; report: MigrationReport }
  | { kind: 'migration-aborted'; report: MigrationReport }
  | { kind: 'failover'; sessionId: string; from: string; to: string; detectedAfterMs: number };

function toReport(r: Native.NativeMigrationReport): MigrationReport {
  return {
    migrationId: r.migrationId,
    sessionId: r.sessionId,
    source: r.source,
    target: r.target,
    reason: r.reason,
    completed: r.completed,
    error: r.error ?? undefined,
    abortedIn: r.abortedIn ?? undefined,
    phases: r.phaseNames.map((phase, i) => ({ phase, ms: r.phaseMs[i] ?? 0 })),
    durationMs: r.durationMs,
    frozenMs: r.frozenMs,
    snapshotBytes: r.snapshotBytes,
  };
}

function toEvent(e: Native.NativeDirectorEvent): DirectorEvent {
  switch (e.kind) {
    case 'worker-joined':
    case 'worker-lost':
      return { kind: e.kind, worker: e.worker! };
    case 'session-opened':
      return { kind: e.kind, sessionId: e.sessionId!, connectionId: e.connectionId!, worker: e.worker! };
    case 'session-closed':
      return { kind: e.kind, sessionId: e.sessionId! };
    case 'migration-started':
      return { kind: e.kind, migrationId: e.migrationId!, sessionId: e.sessionId!, source: e.from!, target: e.to!, reason: e.reason! };
    case 'migration-finished': {
      const report = toReport(e.migration!);
      return { kind: report.completed ? 'migration-completed' : 'migration-aborted', report };
    }
    default:
      return { kind: 'failover', sessionId: e.sessionId!, from: e.from!, to: e.to!, detectedAfterMs: e.detectedAfterMs ?? 0 };
  }
}

/** A worker as the placement policy sees it. */
export interface WorkerInfo {
  /** Worker id. */
  id: string;
  /** Sessions it owns now. */
  sessions: number;
}

/** Placement policy hooks of a {@link Director}. */
export interface DirectorPolicy {
  /**
   * Chooses the worker for a session: a new session, a migration target (its owner is not
   * offered) or a failover (the dead owner is not offered). `workers` are the live, non-draining
   * candidates, fewest sessions first. Return one of their ids, or `undefined` for the default
   * (the first: fewest sessions). An answer that is not a candidate, a throw, or no answer
   * within 1000 ms also falls back to the default.
   */
  selectTarget?: (session: { sessionId: string }, workers: WorkerInfo[]) => string | undefined | Promise<string | undefined>;
}

/**
 * A running director. It is an `EventEmitter`: every {@link DirectorEvent} is emitted under its
 * `kind` and under `'event'`.
 */
export class Director extends EventEmitter {
  readonly #native: Native.NativeDirector;
  readonly #loop: Promise<void>;
  #policy: DirectorPolicy = {};
  #policyLoop: Promise<void> | undefined;

  private constructor(n: Native.NativeDirector) {
    super();
    this.#native = n;
    this.#loop = this.#run();
  }

  /** Sets the placement policy hooks (replacing earlier ones). */
  setPolicy(policy: DirectorPolicy): this {
    this.#policy = { ...policy };
    this.#native.setSelectHook(!!policy.selectTarget);
    if (policy.selectTarget && !this.#policyLoop) this.#policyLoop = this.#answerPolicy();
    return this;
  }

  async #answerPolicy(): Promise<void> {
    for (;;) {
      const questions = await this.#native.nextSelectQuestions(64);
      if (questions.length === 0) return;
      for (const q of questions) {
        void (async () => {
          let choice: string | undefined;
          try {
            choice = await this.#policy.selectTarget?.({ sessionId: q.sessionId }, q.workers);
          } catch {
            choice = undefined;
          }
          this.#native.answerSelect(q.id, choice);
        })();
      }
    }
  }

  /**
   * Binds the user and management ports.
   * @throws {RpcError} `UNAVAILABLE` if a port cannot be bound, `INVALID_ARGUMENT` for bad options.
   */
  static async start(options: DirectorOptions = {}): Promise<Director> {
    try {
      const n = await native.startDirector({
        clusterDir: options.clusterDir ?? defaultClusterDir(),
        host: options.host,
        port: options.port,
        mgmtPort: options.mgmtPort,
        certPath: options.tls?.certPath,
        keyPath: options.tls?.keyPath,
        failoverAfterMs: options.failoverAfterMs,
        autoConfirm: options.autoConfirm,
        phaseTimeoutMs: options.phaseTimeoutMs,
        totalTimeoutMs: options.totalTimeoutMs,
      });
      return new Director(n);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The user port's address, `ip:port`: clients connect here. */
  get address(): string {
    return this.#native.address;
  }

  /** The management port's address, `ip:port`: workers register here. */
  get mgmtAddress(): string {
    return this.#native.mgmtAddress;
  }

  /** SHA-256 fingerprint of the certificate clients see (for `tls.pin`). */
  get certFingerprint(): string {
    return this.#native.certFingerprint;
  }

  /** Live workers and how many sessions each owns. */
  workers(): WorkerInfo[] {
    return this.#native.workers();
  }

  /** Open sessions and their owners. */
  sessions(): { sessionId: string; connectionId: string; worker: string }[] {
    return this.#native.sessions();
  }

  /** Resolves true once `n` workers are registered (false after `timeoutMs`). */
  waitForWorkers(n: number, timeoutMs = 10_000): Promise<boolean> {
    return this.#native.waitForWorkers(n, timeoutMs);
  }

  /**
   * Admin migration: moves a session to `target` (default: the live worker with the fewest
   * sessions other than its owner), through every RFC-001 phase.
   * @throws {RpcError} `NOT_FOUND` (session or worker), `UNAVAILABLE` (aborted: the session
   * stays where it was and nothing is lost; the message names the phase and cause).
   */
  async migrate(sessionId: string, target?: string): Promise<MigrationReport> {
    try {
      return toReport(await this.#native.migrate(sessionId, target));
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Moves every session off `worker` and stops placing new ones there. */
  async drain(worker: string): Promise<MigrationReport[]> {
    try {
      return (await this.#native.drain(worker)).map(toReport);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The events as an async iterator (ends when the iterating loop breaks). */
  async *events(): AsyncGenerator<DirectorEvent> {
    for await (const [e] of on(this, 'event')) yield e as DirectorEvent;
  }

  /**
   * Closes both ports and all client connections. Resolves once both UDP ports are released, so
   * they can be bound again at once.
   */
  async close(): Promise<void> {
    await this.#native.close();
    await this.#loop;
    await this.#policyLoop;
  }

  async #run(): Promise<void> {
    for (;;) {
      const batch = await this.#native.nextEvents(256);
      if (batch.length === 0) return;
      for (const raw of batch) {
        const e = toEvent(raw);
        this.emit(e.kind, e);
        this.emit('event', e);
      }
    }
  }
}
