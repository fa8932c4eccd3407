/**
 * `npm run demo`: no single point of failure, for real. Two directors (director-1, director-2),
 * worker-a and worker-b (registered with both) and a client run as separate OS processes on
 * loopback. The client holds a resumable session (README "Resumable sessions") and streams
 * tokens while, in order:
 * 1. worker-a is drained (SIGTERM: graceful migration) and worker-c joins;
 * 2. the client's director is upgraded (SIGTERM: it tells its clients to move, they resume on
 *    the other director) and started again on the same ports;
 * 3. the worker serving the session is killed (SIGKILL: failover);
 * 4. the client's director is killed (SIGKILL: crash; the client resumes on the upgraded one).
 * Prints a summary (`--json`: as one JSON object on the last line) and exits 0 only if every item
 * arrived exactly once, in order, with at least one of each event.
 * @module
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import type { DirectorEvent } from '../director.js';
import type { StreamRecord } from './client.js';
import { Proc, startDirector, startWorker, type DirectorProc } from './harness.js';
const { values } = parseArgs({
  options: {
    'duration-ms': { type: 'string', default: '12000' },
    'interval-ms': { type: 'string', default: '50' },
    'state-bytes': { type: 'string', default: '1024' },
    'cluster-dir': { type: 'string', default: process.env.RPCNET_CLUSTER_DIR || '.rpcnet/cluster' },
    json: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});
const durationMs = Number(values['duration-ms']);
const intervalMs = Number(values['interval-ms']);
const stateBytes = Number(values['state-bytes']);
const clusterDir = values['cluster-dir']!;
if (!(durationMs >= 3000 && intervalMs > 0 && stateBytes >= 0)) {
  console.error('demo: need --duration-ms >= 3000, --interval-ms > 0, --state-bytes >= 0');
  process.exit(2);
}
const count = Math.floor(durationMs / intervalMs);
const say = (line: string) => console.log(line);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const events: DirectorEvent[] = [];
/** Starts director `name` (on `ports` for a restart), printing and keeping its events. */
async function director(name: string, ports: { port?: number; mgmtPort?: number } = {}): Promise<DirectorProc> {
  const d = await startDirector(clusterDir, ports);
  say(`demo: ${name} on ${d.address} (management ${d.mgmtAddress})`);
  d.proc.child.on('message', (m: { type: string; event?: DirectorEvent }) => {
    if (m.type !== 'event' || !m.event) return;
    const e = m.event;
    events.push(e);
    if (e.kind === 'migration-completed' || e.kind === 'migration-aborted') {
      const r = e.report;
      say(
        `${name}: migration ${r.migrationId} (${r.reason}) ${r.source} -> ${r.target} ${r.completed ? 'completed' : `ABORTED in ${r.abortedIn}: ${r.error}`}` +
          ` in ${r.durationMs.toFixed(2)} ms, calls frozen ${r.frozenMs.toFixed(2)} ms, snapshot ${r.snapshotBytes} B`,
      );
    } else if (e.kind === 'failover') {
      say(`${name}: failover of session ${e.sessionId} from ${e.from} to ${e.to}, ${e.detectedAfterMs} ms after its last heartbeat`);
    } else if (e.kind === 'worker-lost' || e.kind === 'worker-joined') {
      say(`${name}: ${e.kind} ${e.worker}`);
    }
  });
  return d;
}

const directors: Record<string, DirectorProc> = {
  'director-1': await director('director-1'),
  'director-2': await director('director-2'),
};
const addresses = Object.values(directors).map((d) => d.address);
say(`demo: cluster CA in ${clusterDir}`);
const workers: Record<string, Proc> = {};
for (const id of ['worker-a', 'worker-b']) {
  workers[id] = await startWorker(id, Object.values(directors), clusterDir, { stateBytes });
  say(`demo: ${id} registered with both directors`);
}

const client = new Proc('client-process', [
  '--address', addresses.join(','),
  '--ca-file', join(clusterDir, 'ca.pem'),
  '--resume',
  '--count', String(count),
  '--interval-ms', String(intervalMs),
  ...(values.quiet ? ['--quiet'] : []),
]);
const record = client.waitFor((m) => m.type === 'record', durationMs + 30_000);
const t0 = Date.now();
const at = (ms: number) => sleep(t0 + ms - Date.now());

/** TLS handshakes counted by directors that are gone (asked just before they went). */
const handshakes = { full: 0, resumed: 0 };
async function countHandshakes(name: string): Promise<void> {
  const h = await directors[name]!.proc.command<{ full: number; resumed: number }>({ cmd: 'handshakes' });
  handshakes.full += h.full;
  handshakes.resumed += h.resumed;
}

/** The name of the director whose session the client holds now (the one that lists it). */
async function clientsDirector(): Promise<string> {
  for (let i = 0; i < 200; i++) {
    for (const [name, d] of Object.entries(directors)) {
      if (d.proc.child.exitCode !== null || d.proc.child.signalCode !== null) continue;
      const sessions = await d.proc.command<{ sessionId: string }[]>({ cmd: 'sessions' }).catch(() => []);
      if (sessions.length > 0) return name;
    }
    await sleep(25);
  }
  throw new Error('no director holds the session');
}

/** The worker serving the session now, as the client's director reports it. */
async function owner(name: string): Promise<string> {
  const sessions = await directors[name]!.proc.command<{ worker: string }[]>({ cmd: 'sessions' });
  return sessions[0]!.worker;
}

await at(durationMs / 6);
say('demo: SIGTERM worker-a (graceful drain)');
workers['worker-a']!.kill('SIGTERM');
const aExit = await workers['worker-a']!.exited;
say(`demo: worker-a exited with code ${aExit.code}`);
workers['worker-c'] = await startWorker('worker-c', Object.values(directors), clusterDir, { stateBytes });
say('demo: worker-c registered with both directors');

await at((durationMs * 2) / 6);
const upgraded = await clientsDirector();
const { address: upAddr, mgmtAddress: upMgmt } = directors[upgraded]!;
await countHandshakes(upgraded);
say(`demo: SIGTERM ${upgraded} (rolling upgrade: it tells its clients to move)`);
directors[upgraded]!.proc.kill('SIGTERM');
const upExit = await directors[upgraded]!.proc.exited;
say(`demo: ${upgraded} exited with code ${upExit.code}; starting its new version on the same ports`);
const port = (a: string) => Number(a.slice(a.lastIndexOf(':') + 1));
directors[upgraded] = await director(upgraded, { port: port(upAddr), mgmtPort: port(upMgmt) });

await at((durationMs * 3) / 6);
const serving = await clientsDirector();
const victim = await owner(serving);
say(`demo: SIGKILL ${victim} (crash of the worker serving the session)`);
workers[victim]!.kill('SIGKILL');

await at((durationMs * 4) / 6);
const crashed = await clientsDirector();
await countHandshakes(crashed);
say(`demo: SIGKILL ${crashed} (crash of the client's director)`);
directors[crashed]!.proc.kill('SIGKILL');

const rec = (await record).record as StreamRecord;
for (const name of Object.keys(directors)) if (name !== crashed) await countHandshakes(name);
const completed = events.filter((e) => e.kind === 'migration-completed');
const failovers = events.filter((e) => e.kind === 'failover');
const summary = {
  items: rec.items,
  expectedItems: count,
  gaps: rec.gaps,
  duplicates: rec.duplicates,
  sessionId: rec.connectionId,
  itemsFromOtherSessions: rec.foreignConnection,
  // Request headers every handler saw (x-tenant, the director's rpcnet-session-id) and the
  // response metadata the client got: headers once, the trailer at the end.
  metadata: { itemsWithOtherHeaders: rec.foreignMetadata, responseHeaders: rec.headers, trailer: rec.trailer },
  workers: rec.workers,
  migrations: { graceful: completed.filter((e) => e.kind === 'migration-completed' && e.report.reason === 'drain').length, admin: 0, failover: failovers.length },
  aborted: events.filter((e) => e.kind === 'migration-aborted').length,
  directorUpgrades: upExit.code === 0 ? 1 : 0,
  directorCrashes: 1,
  resumptions: rec.resumptions.length,
  // As the directors counted them: a resume presents a session ticket of the cluster.
  fullHandshakes: handshakes.full,
  resumedHandshakes: handshakes.resumed,
  clientConnections: rec.connections,
  resumes: rec.resumptions.map((r) => ({
    director: r.address,
    atSeq: r.seq,
    resumeMs: Number(r.pauseMs.toFixed(2)),
    pauseMs: Number(r.seenPauseMs.toFixed(2)),
  })),
  pauses: rec.switches.map((s) => ({ from: s.from, to: s.to, atSeq: s.seq, pauseMs: Number(s.pauseMs.toFixed(2)) })),
  workerAExitCode: aExit.code,
  upgradedDirectorExitCode: upExit.code,
  stateBytes,
  intervalMs,
};
summary.migrations.admin = completed.length - summary.migrations.graceful;
const ok =
  summary.items === count &&
  summary.gaps === 0 &&
  summary.duplicates === 0 &&
  summary.itemsFromOtherSessions === 0 &&
  summary.metadata.itemsWithOtherHeaders === 0 &&
  summary.metadata.responseHeaders === 1 &&
  summary.metadata.trailer === String(count) &&
  summary.migrations.graceful >= 1 &&
  summary.migrations.failover >= 1 &&
  summary.directorUpgrades >= 1 &&
  summary.resumptions >= 2 &&
  summary.resumedHandshakes === summary.resumptions &&
  aExit.code === 0;

for (const w of Object.values(workers)) w.kill('SIGKILL');
for (const d of Object.values(directors)) d.proc.kill('SIGKILL');

say('');
say(`summary: ${summary.items}/${count} items, ${summary.gaps} gaps, ${summary.duplicates} duplicates, session ${summary.sessionId}`);
say(
  `summary: metadata: ${summary.metadata.itemsWithOtherHeaders} items with other request headers, response headers ${summary.metadata.responseHeaders}x, trailer x-items=${summary.metadata.trailer}`,
);
say(`summary: migrations: ${summary.migrations.graceful} graceful, ${summary.migrations.failover} failover, ${summary.migrations.admin} admin, ${summary.aborted} aborted`);
say(`summary: directors: ${summary.directorUpgrades} upgrade (SIGTERM, exit ${upExit.code}), ${summary.directorCrashes} crash (SIGKILL); ${summary.resumptions} resumptions; TLS handshakes: ${summary.fullHandshakes} full, ${summary.resumedHandshakes} resumed`);
for (const r of summary.resumes) {
  say(`summary: resumed on ${r.director} at seq ${r.atSeq}: pause ${r.pauseMs} ms (the resume itself ${r.resumeMs} ms)`);
}
for (const p of summary.pauses) say(`summary: ${p.from} -> ${p.to} at seq ${p.atSeq}: pause ${p.pauseMs} ms`);
say(`summary: ${ok ? 'OK' : 'FAILED'}`);
if (values.json) console.log(JSON.stringify({ ok, ...summary }));
process.exit(ok ? 0 : 1);
