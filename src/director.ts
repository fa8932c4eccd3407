/**
 * {@link Director}: the client-facing front of a cluster (README "Topology"). Clients connect to
 * it as to any rpcnet server; it relays each call to the worker that owns the client's session
 * (in Rust) and moves sessions between workers: admin migration, graceful drain and failover.
 * It reports what happens as events.
 * @module
 */
import { EventEmitter, on } from 'node:events';
import { join } from 'node:path';

import { native, type Native } from './binding.js';
import { directorEvent, migrationReport } from './director-events.js';
import { fromBinding, reportInternal, RpcError } from './errors.js';
import { connectionTimers, integer, invalid, optionalBoolean, optionalFunc, optionalInteger, optionalPemFiles, optionalPort, optionalString, record, string, stringList, U32_MAX } from './options.js';
import { defaultClusterDir, existingClusterDir } from './worker.js';
import { recordMigration } from './tracing.js';
import { AdminEndpoint, checkAdmin, type AdminOptions } from './admin.js';
import { addGaugeSource, recordFailover, recordMigrationMetrics } from './metrics.js';

/** Options of {@link Director.start}. */
export interface DirectorOptions {
  /** Directory of the cluster CA and secret (see {@link WorkerOptions.clusterDir}). */
  clusterDir?: string;
  /**
   * Host to bind both ports on: an IP address (`0.0.0.0` or `::` for every interface) or a DNS
   * name. Default `127.0.0.1`.
   */
  host?: string;
  /** User port for clients, an integer in 0..65535 (0 = any, the default). */
  port?: number;
  /** Management port for workers, an integer in 0..65535 (0 = any, the default). */
  mgmtPort?: number;
  /**
   * The management address to give workers ({@link Director.advertisedMgmtAddress}):
   * `host:port`, or a host alone for the bound port; an IP address or a DNS name. Default: the
   * bound address, or, for a wildcard `host`, the host's first non-loopback interface address.
   */
  advertiseMgmtAddress?: string;
  /**
   * PEM certificate and key shown to clients (both required). Default: a certificate issued at
   * start by the cluster CA for `localhost`, `127.0.0.1`, `::1`, the bound IP (for a wildcard
   * `host`, the host's first non-loopback interface address) and
   * {@link DirectorOptions.serverNames}, so that clients trusting the cluster CA
   * (`tls: { caFile: '<clusterDir>/ca.pem' }`) accept every director of the cluster, restart
   * after restart. Its {@link Director.certFingerprint} changes at every start: a client that
   * pins needs these files.
   */
  tls?: { certPath: string; keyPath: string };
  /**
   * More names the cluster-issued certificate is valid for, one or an array: DNS names
   * (`rpc.example.com`) or IP address literals, as clients give them in `tls.serverName`. Default none; a `host` given as
   * a DNS name is added. Ignored with `tls`.
   */
  serverNames?: string | string[];
  /**
   * A worker silent for this long is declared dead and its sessions fail over; ms, a positive
   * integer. Default 500.
   */
  failoverAfterMs?: number;
  /**
   * QUIC idle timeout the user port offers clients, ms, a positive integer (RFC 9000 section 10.1): a
   * connection silent that long is closed and its calls fail with `UNAVAILABLE`. A connection
   * uses the smaller of its two ends' offers, so a client whose `lossDetectionMs` is lower
   * decides. Default 30000.
   */
  idleTimeoutMs?: number;
  /**
   * Interval between the user port's keep-alive PINGs on a quiet connection, ms, an integer below
   * `idleTimeoutMs`; 0 for none. Default 5000, or a third of `idleTimeoutMs` if that is less.
   */
  keepAliveMs?: number;
  /**
   * Serve the HTTP admin endpoint (`/metrics`, `/health/live`, `/health/ready`: a live worker is
   * registered, `/migrations`) on this address; see the `admin` module. Default: none.
   */
  admin?: AdminOptions;

  /** Skip the Confirmation phase (RFC-001 phase 2). Default false: the target's hook is asked. */
  autoConfirm?: boolean;
  /** Longest single phase before the Pivot; ms, a positive integer. Default 2000. */
  phaseTimeoutMs?: number;
  /** Longest migration before the Pivot; ms, a positive integer. Default 5000 (RFC-001). */
  totalTimeoutMs?: number;
  /**
   * Migrations that run at once at most, a positive integer (RFC-001 Appendix B
   * `max_concurrent`); a drain of more sessions queues the rest. Default 100.
   */
  maxConcurrentMigrations?: number;
  /**
   * Shut down on SIGTERM, a boolean. Default true: while the director is open, a SIGTERM to the
   * process runs {@link Director.shutdown} (clients of resumable sessions move to another
   * director of the cluster, waited for up to 10 s) and then exits the process with code 0 once
   * no such director of the process is left open. Give false to handle SIGTERM yourself.
   */
  shutdownOnSigterm?: boolean;
}

/** The open directors started with `shutdownOnSigterm` (the default). */
const sigtermDirectors = new Set<Director>();
/** Whether the SIGTERM handler is shutting directors down. */
let sigtermShuttingDown = false;

/** The process's SIGTERM handler while a director shuts down on SIGTERM. */
function onDirectorSigterm(): void {
  if (sigtermShuttingDown) return;
  sigtermShuttingDown = true;
  void Promise.all([...sigtermDirectors].map((d) => d.shutdown(SIGTERM_SHUTDOWN_MS))).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(`rpcnet: director shutdown on SIGTERM failed: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}

/** How long a SIGTERM waits for resumable clients to move, ms. */
const SIGTERM_SHUTDOWN_MS = 10_000;

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

/** A worker registered with the director. */
export interface WorkerJoinedEvent {
  /** Event name. */
  kind: 'worker-joined';
  /** Worker id. */
  worker: string;
}

/** A worker missed its heartbeats for `failoverAfterMs` or closed; its sessions fail over. */
export interface WorkerLostEvent {
  /** Event name. */
  kind: 'worker-lost';
  /** Worker id. */
  worker: string;
}

/**
 * A new session, placed on `worker`: a client opened its connection's first stream (its first
 * call, or the HELLO of a resumable session, PROTOCOL.md section 15.2). A resumed session is not
 * a new one and emits nothing here.
 */
export interface SessionOpenedEvent {
  /** Event name. */
  kind: 'session-opened';
  /** Session id (16 hex digits). */
  sessionId: string;
  /** The client connection's `connectionId`. */
  connectionId: string;
  /** The session's owner. */
  worker: string;
}

/** A client connection ended; its owner freed the session. */
export interface SessionClosedEvent {
  /** Event name. */
  kind: 'session-closed';
  /** Session id (16 hex digits). */
  sessionId: string;
}

/** A migration began (Initiation). */
export interface MigrationStartedEvent {
  /** Event name. */
  kind: 'migration-started';
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
}

/** A migration completed: the session lives on the target (`report.completed` is true). */
export interface MigrationCompletedEvent {
  /** Event name. */
  kind: 'migration-completed';
  /** What the migration did. */
  report: MigrationReport;
}

/** A migration was rolled back (MigrationAbort): the session stays on the source. */
export interface MigrationAbortedEvent {
  /** Event name. */
  kind: 'migration-aborted';
  /** What the migration did, with `error` and `abortedIn`. */
  report: MigrationReport;
}

/** A session was re-opened on a new worker from its last checkpoint after its owner died. */
export interface FailoverEvent {
  /** Event name. */
  kind: 'failover';
  /** Session id (16 hex digits). */
  sessionId: string;
  /** The dead owner. */
  from: string;
  /** The new owner. */
  to: string;
  /** Time between the owner's last heartbeat and the failover, ms. */
  detectedAfterMs: number;
}

/**
 * Events of a {@link Director}, tagged by `kind` (also delivered by
 * `for await (const e of director.events())`).
 */
export type DirectorEvent =
  | WorkerJoinedEvent
  | WorkerLostEvent
  | SessionOpenedEvent
  | SessionClosedEvent
  | MigrationStartedEvent
  | MigrationCompletedEvent
  | MigrationAbortedEvent
  | FailoverEvent;

/**
 * The events a {@link Director} emits, by name: each {@link DirectorEvent} under its `kind`, and
 * every one of them under `event`. `director.on(name, listener)` takes only these names and
 * gives the listener the matching type.
 */
export interface DirectorEventMap {
  /** {@link WorkerJoinedEvent}. */
  'worker-joined': WorkerJoinedEvent;
  /** {@link WorkerLostEvent}. */
  'worker-lost': WorkerLostEvent;
  /** {@link SessionOpenedEvent}. */
  'session-opened': SessionOpenedEvent;
  /** {@link SessionClosedEvent}. */
  'session-closed': SessionClosedEvent;
  /** {@link MigrationStartedEvent}. */
  'migration-started': MigrationStartedEvent;
  /** {@link MigrationCompletedEvent}. */
  'migration-completed': MigrationCompletedEvent;
  /** {@link MigrationAbortedEvent}. */
  'migration-aborted': MigrationAbortedEvent;
  /** {@link FailoverEvent}. */
  failover: FailoverEvent;
  /** Every event. */
  event: DirectorEvent;
}

/** A listener of the director event `K`. */
export type DirectorListener<K extends keyof DirectorEventMap> = (event: DirectorEventMap[K]) => void;

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
 * The event methods of {@link Director}, typed per event name (see {@link DirectorEventMap}): a
 * name that is not an event of the director is a compile error, and each listener gets its
 * event's type. They behave as `EventEmitter`'s.
 */
export interface Director {
  /** Adds `listener` for event `name`. */
  on<K extends keyof DirectorEventMap>(name: K, listener: DirectorListener<K>): this;
  /** Same as {@link Director.on}. */
  addListener<K extends keyof DirectorEventMap>(name: K, listener: DirectorListener<K>): this;
  /** Adds `listener` for the next event `name` only. */
  once<K extends keyof DirectorEventMap>(name: K, listener: DirectorListener<K>): this;
  /** Adds `listener` for event `name` before the others. */
  prependListener<K extends keyof DirectorEventMap>(name: K, listener: DirectorListener<K>): this;
  /** Adds `listener` for the next event `name` only, before the others. */
  prependOnceListener<K extends keyof DirectorEventMap>(name: K, listener: DirectorListener<K>): this;
  /** Removes `listener` from event `name`. */
  off<K extends keyof DirectorEventMap>(name: K, listener: DirectorListener<K>): this;
  /** Same as {@link Director.off}. */
  removeListener<K extends keyof DirectorEventMap>(name: K, listener: DirectorListener<K>): this;
  /** Calls the listeners of event `name` with `event`; true if it had listeners. */
  emit<K extends keyof DirectorEventMap>(name: K, event: DirectorEventMap[K]): boolean;
}

/**
 * A running director. It is an `EventEmitter`: every {@link DirectorEvent} is emitted under its
 * `kind` and under `'event'` ({@link DirectorEventMap}).
 */
export class Director extends EventEmitter {
  readonly #native: Native.NativeDirector;
  readonly #loop: Promise<void>;
  /** Migrations in progress, by id (for `/migrations` and `rpcnet_active_migrations`). */
  readonly #migrations = new Map<number, { migrationId: number; sessionId: string; source: string; target: string; reason: string; startedAt: string }>();
  /** Removes this director from the metrics' gauges. */
  readonly #gauges: () => void;
  #admin: AdminEndpoint | undefined;
  /** Set by shutdown() and close(): `/health/ready` answers 503 from then on. */
  #stopping = false;
  #policy: DirectorPolicy = {};
  #policyLoop: Promise<void> | undefined;

  readonly #caFile: string;

  private constructor(n: Native.NativeDirector, caFile: string) {
    super();
    this.#native = n;
    this.#caFile = caFile;
    this.#loop = this.#run();
    this.#gauges = addGaugeSource({
      sessions: () => this.#native.sessions().length,
      workers: () => this.workers().length,
      activeMigrations: () => this.#migrations.size,
    });
  }

  /**
   * Sets the placement policy hooks (replacing earlier ones).
   * @throws {RpcError} `INVALID_ARGUMENT` when `selectTarget` is given but is not a function, or
   * for an unknown key.
   */
  setPolicy(policy: DirectorPolicy): this {
    const p = record('policy', policy, ['selectTarget']);
    const selectTarget = optionalFunc('selectTarget', p.selectTarget);
    this.#policy = { selectTarget };
    this.#native.setSelectHook(!!selectTarget);
    if (selectTarget && !this.#policyLoop) this.#policyLoop = this.#answerPolicy();
    return this;
  }

  async #answerPolicy(): Promise<void> {
    for (;;) {
      const questions = await this.#native.nextSelectQuestions(64);
      if (questions.length === 0) return;
      for (const q of questions) {
        void (async () => {
          let choice: unknown;
          try {
            const workers = q.workers.map(({ id, sessions }) => ({ id, sessions }));
            choice = await this.#policy.selectTarget?.({ sessionId: q.sessionId }, workers);
          } catch {
            choice = undefined;
          }
          // Anything but a worker id (a string) is the default, like an id that is no candidate.
          this.#native.answerSelect(q.id, typeof choice === 'string' ? choice : undefined);
        })();
      }
    }
  }

  /**
   * Binds the user and management ports.
   * @throws {RpcError} `INVALID_ARGUMENT` for bad options (checked before binding: types,
   * ranges, unknown keys), PEM files, cluster directory, or a server name that is neither a DNS
   * name nor an IP address; `UNAVAILABLE` if a port cannot be bound.
   */
  static async start(options: DirectorOptions = {}): Promise<Director> {
    const o = record('options', options, [
      'clusterDir',
      'host',
      'port',
      'mgmtPort',
      'advertiseMgmtAddress',
      'tls',
      'serverNames',
      'failoverAfterMs',
      'autoConfirm',
      'phaseTimeoutMs',
      'totalTimeoutMs',
      'maxConcurrentMigrations',
      'shutdownOnSigterm',
      'idleTimeoutMs',
      'keepAliveMs',
      'admin',
    ]);
    const admin = checkAdmin(o.admin);
    const shutdownOnSigterm = optionalBoolean('shutdownOnSigterm', o.shutdownOnSigterm) ?? true;
    const tls = optionalPemFiles('tls', o.tls);
    const checked: Native.NativeDirectorOptions = {
      clusterDir: existingClusterDir(optionalString('clusterDir', o.clusterDir) ?? defaultClusterDir()),
      host: optionalString('host', o.host),
      port: optionalPort('port', o.port),
      mgmtPort: optionalPort('mgmtPort', o.mgmtPort),
      advertiseMgmtAddress: optionalString('advertiseMgmtAddress', o.advertiseMgmtAddress),
      certPath: tls?.certPath,
      keyPath: tls?.keyPath,
      serverNames: o.serverNames === undefined ? undefined : stringList('serverNames', o.serverNames, 'a DNS name or an IP address'),
      failoverAfterMs: optionalInteger('failoverAfterMs', o.failoverAfterMs, 1, U32_MAX, 'ms'),
      autoConfirm: optionalBoolean('autoConfirm', o.autoConfirm),
      phaseTimeoutMs: optionalInteger('phaseTimeoutMs', o.phaseTimeoutMs, 1, U32_MAX, 'ms'),
      totalTimeoutMs: optionalInteger('totalTimeoutMs', o.totalTimeoutMs, 1, U32_MAX, 'ms'),
      maxConcurrentMigrations: optionalInteger('maxConcurrentMigrations', o.maxConcurrentMigrations, 1, U32_MAX, 'migrations'),
      ...connectionTimers(o.idleTimeoutMs, o.keepAliveMs),
    };
    let director: Director;
    try {
      director = new Director(await native.startDirector(checked), join(checked.clusterDir, 'ca.pem'));
    } catch (e) {
      throw fromBinding(e);
    }
    if (admin) {
      try {
        director.#admin = await AdminEndpoint.start(admin, {
          notReady: () => (director.#stopping ? 'shutting down' : director.workers().length === 0 ? 'no live worker is registered' : undefined),
          migrations: () => [...director.#migrations.values()],
        });
      } catch (e) {
        await director.close();
        throw e;
      }
    }
    if (shutdownOnSigterm) {
      if (sigtermDirectors.size === 0) process.on('SIGTERM', onDirectorSigterm);
      sigtermDirectors.add(director);
    }
    return director;
  }

  /** The admin endpoint's address (`host:port`), `undefined` without the `admin` option. */
  get adminAddress(): string | undefined {
    return this.#admin?.address;
  }

  /** The user port's address, `ip:port`: clients connect here. */
  get address(): string {
    return this.#native.address;
  }

  /** The management port's bound address, `ip:port`: workers register here. */
  get mgmtAddress(): string {
    return this.#native.mgmtAddress;
  }

  /**
   * The management address to give workers (their `director` option), `host:port`: the
   * `advertiseMgmtAddress` option, or the bound address (an interface address for a wildcard
   * `host`).
   */
  get advertisedMgmtAddress(): string {
    return this.#native.advertisedMgmtAddress;
  }

  /**
   * Path of the cluster CA certificate, `ca.pem` in the cluster directory: what clients give as
   * `tls.caFile` to accept every director of the cluster (each presents a certificate this CA
   * issued, unless {@link DirectorOptions.tls} gave it its own).
   */
  get caFile(): string {
    return this.#caFile;
  }

  /**
   * SHA-256 fingerprint of the certificate clients see (for `tls.pin`). With the default,
   * cluster-issued certificate it changes at every start; trust {@link Director.caFile} instead.
   */
  get certFingerprint(): string {
    return this.#native.certFingerprint;
  }

  /** Live workers and how many sessions each owns. */
  workers(): WorkerInfo[] {
    return this.#native.workers().map(({ id, sessions }) => ({ id, sessions }));
  }

  /** Open sessions (ids of 16 hex digits) and their owners. */
  sessions(): { sessionId: string; connectionId: string; worker: string }[] {
    return this.#native.sessions().map(({ sessionId, connectionId, worker }) => ({ sessionId, connectionId, worker }));
  }

  /**
   * Resolves true once `n` workers are registered (false after `timeoutMs`).
   * @param n - a non-negative integer
   * @param timeoutMs - ms, a positive integer (default 10000)
   * @throws {RpcError} `INVALID_ARGUMENT` for a bad `n` or `timeoutMs`.
   */
  async waitForWorkers(n: number, timeoutMs = 10_000): Promise<boolean> {
    const count = integer('n', n, 0, U32_MAX);
    const ms = integer('timeoutMs', timeoutMs, 1, U32_MAX, 'ms');
    return this.#native.waitForWorkers(count, ms);
  }

  /**
   * Admin migration: moves a session to `target` (default: the live worker with the fewest
   * sessions other than its owner), through every RFC-001 phase.
   * @param sessionId - 16 hex digits ({@link Director.sessions}, `session-opened`)
   * @param target - a worker id
   * @throws {RpcError} `INVALID_ARGUMENT` (a malformed session id or target), `NOT_FOUND`
   * (session or worker), `UNAVAILABLE` (aborted: the session stays where it was and nothing is
   * lost; the message names the phase and cause).
   */
  async migrate(sessionId: string, target?: string): Promise<MigrationReport> {
    const id = sessionIdOf(sessionId);
    const to = optionalString('target', target);
    try {
      return migrationReport(await this.#native.migrate(id, to));
    } catch (e) {
      throw fromBinding(e);
    }
  }

  /**
   * Moves every session off `worker` and stops placing new ones there.
   * @throws {RpcError} `INVALID_ARGUMENT` for a `worker` that is not a non-empty string,
   * `NOT_FOUND`, or a migration's failure.
   */
  async drain(worker: string): Promise<MigrationReport[]> {
    const w = string('worker', worker);
    try {
      return (await this.#native.drain(w)).map(migrationReport);
    } catch (e) {
      throw fromBinding(e);
    }
  }

  /** The events as an async iterator (ends when the iterating loop breaks). */
  async *events(): AsyncGenerator<DirectorEvent, void, undefined> {
    for await (const [e] of on(this, 'event')) yield e as DirectorEvent;
  }

  /**
   * Client TLS handshakes completed on the user port so far. `resumed` ones used a session
   * ticket of the cluster (every director of a cluster opens the others' tickets), as a client
   * resuming its session here after its director went away does; `full` ones did not.
   */
  handshakes(): { full: number; resumed: number } {
    return this.#native.handshakes();
  }

  /**
   * Shutdown for an upgrade (what SIGTERM does, {@link DirectorOptions.shutdownOnSigterm}):
   * accepts no new connection, tells every client of a resumable session to move (MOVE,
   * PROTOCOL.md section 15.5; the client resumes on another director of the cluster), waits
   * until they have left or `timeoutMs` (ms, default 10000) passed, then closes as
   * {@link Director.close}. Clients of plain sessions are closed with it.
   * @returns how many resumable clients had not left in time
   */
  async shutdown(timeoutMs = SIGTERM_SHUTDOWN_MS): Promise<number> {
    const t = optionalInteger('timeoutMs', timeoutMs, 0, U32_MAX, 'ms') ?? SIGTERM_SHUTDOWN_MS;
    this.#stopping = true;
    const stayed = await this.#native.shutdown(t); // closes both ports too
    await this.#closed();
    return stayed;
  }

  /**
   * Closes both ports and all client connections. Resolves once both UDP ports are released, so
   * they can be bound again at once.
   */
  async close(): Promise<void> {
    this.#stopping = true;
    await this.#native.close();
    await this.#closed();
  }

  /** After the native director closed: forgets the SIGTERM handler, ends the event loops. */
  async #closed(): Promise<void> {
    if (sigtermDirectors.delete(this) && sigtermDirectors.size === 0 && !sigtermShuttingDown) {
      process.off('SIGTERM', onDirectorSigterm);
    }
    this.#gauges();
    await this.#admin?.close();
    await this.#loop;
    await this.#policyLoop;
  }

  /** Metrics, traces and the list of migrations in progress, from an event. */
  #observe(e: DirectorEvent): void {
    switch (e.kind) {
      case 'migration-started':
        this.#migrations.set(e.migrationId, {
          migrationId: e.migrationId,
          sessionId: e.sessionId,
          source: e.source,
          target: e.target,
          reason: e.reason,
          startedAt: new Date().toISOString(),
        });
        break;
      case 'migration-completed':
      case 'migration-aborted':
        this.#migrations.delete(e.report.migrationId);
        recordMigrationMetrics(e.report);
        recordMigration(e.report); // an OpenTelemetry span (a no-op without an SDK)
        break;
      case 'failover':
        recordFailover();
        break;
      default:
    }
  }

  async #run(): Promise<void> {
    for (;;) {
      const batch = await this.#native.nextEvents(256);
      if (batch.length === 0) return;
      for (const raw of batch) {
        let e: DirectorEvent;
        try {
          e = directorEvent(raw);
        } catch (error) {
          // An event kind this version does not know: report it, keep delivering the others.
          reportInternal(error as RpcError);
          continue;
        }
        this.#observe(e);
        this.emit(e.kind, e as never);
        this.emit('event', e);
      }
    }
  }
}

/** A session id: 16 hex digits. */
function sessionIdOf(value: unknown): string {
  if (typeof value === 'string' && /^[0-9a-fA-F]{16}$/.test(value)) return value;
  throw invalid('sessionId', 'a session id of 16 hex digits', value);
}
