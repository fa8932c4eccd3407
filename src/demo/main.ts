/**
 * `npm run demo`: the connection swap, for real. A director, worker-a, worker-b and a client run
 * as separate OS processes on loopback. The client streams tokens; at ~3 s worker-a is drained
 * (SIGTERM: graceful migration to worker-b); at ~4 s a fresh worker-c starts; at ~6 s worker-b is
 * killed with SIGKILL and worker-c takes the session over (failover); at ~9 s the client
 * finishes. Prints a summary (`--json`: as one JSON object on the last line) and exits 0 only if
 * every item arrived exactly once, in order, over one connection, with both kinds of migration.
 * @module
 */
import { parseArgs } from 'node:util';

import type { DirectorEvent } from '../director.js';
import type { StreamRecord } from './client.js';
import { Proc, startDirector, startWorker } from './harness.js';

const { values } = parseArgs({
  options: {
    'duration-ms': { type: 'string', default: '9000' },
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

const director = await startDirector(clusterDir);
say(`demo: director on ${director.address} (management ${director.mgmtAddress}), cluster CA in ${clusterDir}`);
const events: DirectorEvent[] = [];
director.proc.child.on('message', (m: { type: string; event?: DirectorEvent }) => {
  if (m.type !== 'event' || !m.event) return;
  const e = m.event;
  events.push(e);
  if (e.kind === 'migration-completed' || e.kind === 'migration-aborted') {
    const r = e.report;
    say(
      `director: migration ${r.migrationId} (${r.reason}) ${r.source} -> ${r.target} ${r.completed ? 'completed' : `ABORTED in ${r.abortedIn}: ${r.error}`}` +
        ` in ${r.durationMs.toFixed(2)} ms, calls frozen ${r.frozenMs.toFixed(2)} ms, snapshot ${r.snapshotBytes} B; phases ${r.phases.map((p) => `${p.phase} ${p.ms.toFixed(2)}ms`).join(', ')}`,
    );
  } else if (e.kind === 'failover') {
    say(`director: failover of session ${e.sessionId} from ${e.from} to ${e.to}, ${e.detectedAfterMs} ms after its last heartbeat`);
  } else if (e.kind === 'worker-lost' || e.kind === 'worker-joined') {
    say(`director: ${e.kind} ${e.worker}`);
  }
});
const workers: Record<string, Proc> = {};
for (const id of ['worker-a', 'worker-b']) {
  workers[id] = await startWorker(id, director, clusterDir, { stateBytes });
  say(`demo: ${id} registered`);
}

const client = new Proc('client-process', [
  '--address', director.address,
  '--pin', director.fingerprint,
  '--count', String(count),
  '--interval-ms', String(intervalMs),
  ...(values.quiet ? ['--quiet'] : []),
]);
const record = client.waitFor((m) => m.type === 'record', durationMs + 30_000);
const t0 = Date.now();
const at = (ms: number) => sleep(t0 + ms - Date.now());

await at(durationMs / 3);
say('demo: SIGTERM worker-a (graceful drain)');
workers['worker-a']!.kill('SIGTERM');
const aExit = await workers['worker-a']!.exited;
say(`demo: worker-a exited with code ${aExit.code}`);
await at((durationMs * 4) / 9);
workers['worker-c'] = await startWorker('worker-c', director, clusterDir, { stateBytes });
say('demo: worker-c registered');
await at((durationMs * 2) / 3);
say('demo: SIGKILL worker-b (crash)');
workers['worker-b']!.kill('SIGKILL');

const rec = (await record).record as StreamRecord;
const completed = events.filter((e) => e.kind === 'migration-completed');
const failovers = events.filter((e) => e.kind === 'failover');
const summary = {
  items: rec.items,
  expectedItems: count,
  gaps: rec.gaps,
  duplicates: rec.duplicates,
  // Client handshakes as the director saw them: one session-opened event per accepted connection.
  handshakes: events.filter((e) => e.kind === 'session-opened').length,
  connectionId: rec.connectionId,
  itemsFromOtherConnections: rec.foreignConnection,
  workers: rec.workers,
  migrations: { graceful: completed.filter((e) => e.kind === 'migration-completed' && e.report.reason === 'drain').length, admin: 0, failover: failovers.length },
  aborted: events.filter((e) => e.kind === 'migration-aborted').length,
  pauses: rec.switches.map((s) => ({ from: s.from, to: s.to, atSeq: s.seq, pauseMs: Number(s.pauseMs.toFixed(2)) })),
  workerAExitCode: aExit.code,
  stateBytes,
  intervalMs,
};
summary.migrations.admin = completed.length - summary.migrations.graceful;
const ok =
  summary.items === count &&
  summary.gaps === 0 &&
  summary.duplicates === 0 &&
  summary.handshakes === 1 &&
  summary.itemsFromOtherConnections === 0 &&
  summary.migrations.graceful >= 1 &&
  summary.migrations.failover >= 1 &&
  aExit.code === 0;

for (const w of Object.values(workers)) w.kill('SIGKILL');
await director.proc.command({ cmd: 'close' }).catch(() => undefined);
director.proc.kill('SIGKILL');

say('');
say(`summary: ${summary.items}/${count} items, ${summary.gaps} gaps, ${summary.duplicates} duplicates, ${summary.handshakes} handshake, connectionId ${summary.connectionId}`);
say(`summary: migrations: ${summary.migrations.graceful} graceful, ${summary.migrations.failover} failover, ${summary.migrations.admin} admin, ${summary.aborted} aborted`);
for (const p of summary.pauses) say(`summary: ${p.from} -> ${p.to} at seq ${p.atSeq}: pause ${p.pauseMs} ms`);
say(`summary: ${ok ? 'OK' : 'FAILED'}`);
if (values.json) console.log(JSON.stringify({ ok, ...summary }));
process.exit(ok ? 0 : 1);
