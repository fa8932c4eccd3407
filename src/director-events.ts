/**
 * Conversion of the director's tagged values from the native binding into the public types of
 * director.ts. Kept apart from director.ts so its declarations (which name the binding's types)
 * are not reachable from the package's public declarations.
 *
 * Internal: not re-exported from index.ts, and no public declaration refers to it.
 * @module
 */
import type { Native } from './binding.js';
import type { DirectorEvent, MigrationReport } from './director.js';
import { unknownKind } from './errors.js';

/** A migration report as the public API shows it. */
export function migrationReport(r: Native.NativeMigrationReport): MigrationReport {
  return {
    migrationId: r.migrationId,
    sessionId: r.sessionId,
    source: r.source,
    target: r.target,
    reason: r.reason,
    completed: r.completed,
    error: r.error ?? undefined,
    abortedIn: r.abortedIn ?? undefined,
    phases: r.phases.map(({ phase, ms }) => ({ phase, ms })),
    durationMs: r.durationMs,
    frozenMs: r.frozenMs,
    snapshotBytes: r.snapshotBytes,
  };
}

/**
 * A director event as the public API shows it. `migration-finished` becomes
 * `migration-completed` or `migration-aborted` by its report.
 * @throws {RpcError} `INTERNAL` naming the kind, for a kind this version does not know.
 */
export function directorEvent(e: Native.NativeDirectorEvent): DirectorEvent {
  switch (e.kind) {
    case 'worker-joined':
    case 'worker-lost':
      return { kind: e.kind, worker: e.worker };
    case 'session-opened':
      return { kind: e.kind, sessionId: e.sessionId, connectionId: e.connectionId, worker: e.worker };
    case 'session-closed':
      return { kind: e.kind, sessionId: e.sessionId };
    case 'migration-started':
      return { kind: e.kind, migrationId: e.migrationId, sessionId: e.sessionId, source: e.source, target: e.target, reason: e.reason };
    case 'migration-finished': {
      const report = migrationReport(e.report);
      return report.completed ? { kind: 'migration-completed', report } : { kind: 'migration-aborted', report };
    }
    case 'failover':
      return { kind: e.kind, sessionId: e.sessionId, from: e.from, to: e.to, detectedAfterMs: e.detectedAfterMs };
    default:
      throw unknownKind('director event', e);
  }
}
