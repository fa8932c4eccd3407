/**
 * `rpcnet sessions`, `rpcnet workers`, `rpcnet migrate` and `rpcnet drain`: an operator's view of
 * one director and the moves it can make, through the director's admin methods
 * ({@link AdminClient}, PROTOCOL.md section 14.2) with an admin certificate.
 * @module
 */
import { AdminClient } from '../admin-client.js';
import type { MigrationReport } from '../director.js';
import { RpcError } from '../errors.js';
import { printJson, printTable } from './output.js';

/** Options every admin command takes (commander's parsed flags). */
export interface AdminFlags {
  /** `--director host:port`: the director's management address. */
  director?: string;
  /** `--cluster-dir DIR`: the admin credentials. */
  clusterDir?: string;
  /** `--timeout-ms MS`, as typed (checked here). */
  timeoutMs?: string;
  /** `--json`: one JSON document instead of a table. */
  json?: boolean;
}

/** Environment variable naming the director's management address when `--director` is absent. */
export const DIRECTOR_ENV = 'RPCNET_DIRECTOR';

/**
 * The client the flags describe.
 * @throws {RpcError} `INVALID_ARGUMENT` without a director address or with a bad timeout.
 */
function client(flags: AdminFlags): AdminClient {
  const director = flags.director ?? (process.env[DIRECTOR_ENV] || undefined);
  if (director === undefined) {
    throw new RpcError('INVALID_ARGUMENT', `which director? give its management address with --director host:port, or set ${DIRECTOR_ENV}`);
  }
  if (flags.timeoutMs !== undefined && !/^[1-9][0-9]*$/.test(flags.timeoutMs)) {
    throw new RpcError('INVALID_ARGUMENT', `--timeout-ms must be a positive integer (ms), got ${JSON.stringify(flags.timeoutMs)}`);
  }
  const timeoutMs = flags.timeoutMs === undefined ? undefined : Number(flags.timeoutMs);
  return new AdminClient({ director, clusterDir: flags.clusterDir, timeoutMs });
}

function ms(value: number): string {
  return value.toFixed(1);
}

/** Completed migrations, one row each (a rolled-back one is an error, thrown before this). */
function printMigrations(reports: MigrationReport[]): void {
  printTable(
    ['SESSION', 'FROM', 'TO', 'MS', 'FROZEN MS', 'SNAPSHOT BYTES'],
    reports.map((r) => [r.sessionId, r.source, r.target, ms(r.durationMs), ms(r.frozenMs), String(r.snapshotBytes)]),
  );
}

/**
 * `rpcnet sessions`.
 * @throws {RpcError} those of {@link AdminClient.sessions}, and `INVALID_ARGUMENT` for bad flags.
 */
export async function sessions(flags: AdminFlags): Promise<void> {
  const list = await client(flags).sessions();
  if (flags.json) return printJson({ sessions: list });
  printTable(['SESSION', 'WORKER', 'CONNECTION'], list.map((s) => [s.sessionId, s.worker, s.connectionId]));
}

/**
 * `rpcnet workers`.
 * @throws {RpcError} those of {@link AdminClient.workers}, and `INVALID_ARGUMENT` for bad flags.
 */
export async function workers(flags: AdminFlags): Promise<void> {
  const list = await client(flags).workers();
  if (flags.json) return printJson({ workers: list });
  printTable(
    ['WORKER', 'SESSIONS', 'DRAINING', 'USER ADDRESS', 'MGMT ADDRESS'],
    list.map((w) => [w.id, String(w.sessions), w.draining ? 'yes' : 'no', w.userAddress, w.mgmtAddress]),
  );
}

/**
 * `rpcnet migrate SESSION [--to WORKER]`.
 * @throws {RpcError} those of {@link AdminClient.migrate} (`UNAVAILABLE` when it was rolled
 * back), and `INVALID_ARGUMENT` for bad flags.
 */
export async function migrate(session: string, flags: AdminFlags & { to?: string }): Promise<void> {
  const report = await client(flags).migrate(session, flags.to);
  if (flags.json) printJson(report);
  else printMigrations([report]);
}

/**
 * `rpcnet drain WORKER`.
 * @throws {RpcError} those of {@link AdminClient.drain} (a rolled-back migration's error, once
 * every session was tried), and `INVALID_ARGUMENT` for bad flags.
 */
export async function drain(worker: string, flags: AdminFlags): Promise<void> {
  const reports = await client(flags).drain(worker);
  if (flags.json) printJson({ migrations: reports });
  else if (reports.length === 0) console.log(`rpcnet: ${worker} owned no session; it is draining`);
  else printMigrations(reports);
}
