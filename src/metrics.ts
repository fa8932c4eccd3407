/**
 * Prometheus metrics of this process (RFC-001 section 8.1), with prom-client, the Prometheus
 * client for Node.js that Prometheus's own documentation lists. The TypeScript layer already sees
 * every call's outcome and every director event, so counting here costs no extra crossing into
 * Rust. One registry per process ({@link registry}); the admin endpoint (src/admin.ts) serves it.
 *
 * Gauges (`rpcnet_sessions`, `rpcnet_workers`, `rpcnet_active_migrations`) are read when scraped,
 * from the directors of this process; counters and histograms are updated as things happen.
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MigrationReport } from './director.js';

/** The process's registry of rpcnet metrics (served at `/metrics` by the admin endpoint). */
export const registry = new Registry();

/** What a director contributes to the gauges. @internal */
export interface GaugeSource {
  sessions(): number;
  workers(): number;
  activeMigrations(): number;
}

const sources = new Set<GaugeSource>();

/**
 * Adds `source` to the gauges until the returned function is called.
 * @internal
 */
export function addGaugeSource(source: GaugeSource): () => void {
  sources.add(source);
  return () => sources.delete(source);
}

const sum = (f: (s: GaugeSource) => number) => [...sources].reduce((n, s) => n + f(s), 0);

const migrations = new Counter({
  name: 'rpcnet_migrations_total',
  help: 'Finished migrations, by outcome (completed, aborted).',
  labelNames: ['outcome'] as const,
  registers: [registry],
});
const migrationDuration = new Histogram({
  name: 'rpcnet_migration_duration_seconds',
  help: 'Duration of finished migrations, Initiation to Pivot or abort, seconds.',
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});
const migrationPause = new Histogram({
  name: 'rpcnet_migration_pause_seconds',
  help: "How long a migrated session's calls were frozen (State Capture to Pivot), seconds.",
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  registers: [registry],
});
const snapshotBytes = new Histogram({
  name: 'rpcnet_snapshot_bytes',
  help: 'Size of sealed session snapshots moved by migrations, bytes.',
  buckets: [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216],
  registers: [registry],
});
new Gauge({
  name: 'rpcnet_active_migrations',
  help: 'Migrations in progress at the directors of this process.',
  registers: [registry],
  collect() {
    this.set(sum((s) => s.activeMigrations()));
  },
});
new Gauge({
  name: 'rpcnet_sessions',
  help: 'Sessions the directors of this process relay.',
  registers: [registry],
  collect() {
    this.set(sum((s) => s.sessions()));
  },
});
new Gauge({
  name: 'rpcnet_workers',
  help: 'Live workers registered with the directors of this process.',
  registers: [registry],
  collect() {
    this.set(sum((s) => s.workers()));
  },
});
const calls = new Counter({
  name: 'rpcnet_calls_total',
  help: 'Calls served by the handlers of this process, by method and code (OK or an rpcnet error code).',
  labelNames: ['method', 'code'] as const,
  registers: [registry],
});
const callDuration = new Histogram({
  name: 'rpcnet_call_duration_seconds',
  help: "Time from a call's arrival to its handler's answer, by method, seconds.",
  labelNames: ['method'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});
const failovers = new Counter({
  name: 'rpcnet_failovers_total',
  help: 'Sessions re-opened on another worker after their owner died.',
  registers: [registry],
});

/**
 * Counts a finished migration.
 * @internal
 */
export function recordMigrationMetrics(report: MigrationReport): void {
  migrations.inc({ outcome: report.completed ? 'completed' : 'aborted' });
  migrationDuration.observe(report.durationMs / 1000);
  if (report.completed) {
    migrationPause.observe(report.frozenMs / 1000);
    snapshotBytes.observe(report.snapshotBytes);
  }
}

/**
 * Counts a failover.
 * @internal
 */
export function recordFailover(): void {
  failovers.inc();
}

/**
 * Counts a call a handler answered: `method` is a registered method (or `(unknown)` for an
 * unknown one, so that clients cannot create label values), `code` `OK` or the error's code.
 * @internal
 */
export function recordCall(method: string, code: string, seconds: number): void {
  calls.inc({ method, code });
  callDuration.observe({ method }, seconds);
}
