/**
 * Multi-process migration tests: a director and workers run as separate OS processes (forked
 * from dist/demo), the client runs here, and every test asserts on the items it received.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { RpcClient, RpcError, RpcWorker } from '../dist/index.js';
import type { MigrationReport } from '../dist/index.js';
import { streamTokens, type StreamRecord } from '../dist/demo/client.js';
import { startDirector, startWorker, type DirectorProc, type Proc } from '../dist/demo/harness.js';
import { sessionOf, sleep } from './helpers.ts';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-cluster-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

async function cluster(
  ids: string[],
  options: { confirmDelayMs?: Record<string, number>; restoreDelayMs?: Record<string, number>; defaultSigterm?: string[] } = {},
) {
  const director = await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 });
  const workers: Record<string, Proc> = {};
  for (const id of ids) {
    workers[id] = await startWorker(id, director, clusterDir, {
      silent: true,
      confirmDelayMs: options.confirmDelayMs?.[id],
      restoreDelayMs: options.restoreDelayMs?.[id],
      defaultSigterm: options.defaultSigterm?.includes(id),
    });
  }
  const stop = async () => {
    for (const w of Object.values(workers)) w.kill('SIGKILL');
    director.proc.kill('SIGKILL');
  };
  return { director, workers, stop };
}

function stream(director: DirectorProc, count: number, intervalMs: number) {
  return streamTokens({ address: director.address, pin: director.fingerprint, count, intervalMs });
}

/**
 * Metadata across the moves (PROTOCOL.md 5.6): every handler, on every worker, saw the client's
 * request headers and the director's `rpcnet-session-id`; the response headers reached the
 * client once, the trailer with the end.
 */
function metadataOnce(t: { is: (a: unknown, b: unknown, m?: string) => void }, r: StreamRecord, count: number) {
  t.is(r.foreignMetadata, 0, 'every handler saw the same request headers');
  t.is(r.headers, 1, 'the response headers arrived once');
  t.is(r.stream, 'tokens');
  t.is(r.trailer, String(count), 'the trailer arrived with the end');
}

test.serial('graceful drain: SIGTERM moves the session, the worker exits 0, nothing lost', async (t) => {
  const { director, workers, stop } = await cluster(['worker-a', 'worker-b']);
  try {
    const record = stream(director, 80, 20);
    await sleep(500);
    workers['worker-a']!.kill('SIGTERM');
    const exit = await workers['worker-a']!.exited;
    t.is(exit.code, 0, 'the drained worker exits 0');
    const r = await record;
    t.is(r.items, 80);
    t.is(r.gaps, 0);
    t.is(r.duplicates, 0);
    t.is(r.foreignConnection, 0, 'every item names the one client connection');
    metadataOnce(t, r, 80);
    t.deepEqual(r.workers, ['worker-a', 'worker-b']);
    const done = director.proc.messages.filter((m) => m.type === 'event' && (m.event as { kind: string }).kind === 'migration-completed');
    t.is(done.length, 1);
    t.is(((done[0]!.event as { report: MigrationReport }).report).reason, 'drain');
    const opened = director.proc.messages.filter((m) => m.type === 'event' && (m.event as { kind: string }).kind === 'session-opened');
    t.is(opened.length, 1, 'one client handshake: the connection survived the migration');
  } finally {
    await stop();
  }
});

test.serial('a worker without a SIGTERM handler of its own drains by default: exactly once, a drain migration, no failover', async (t) => {
  const { director, workers, stop } = await cluster(['worker-a', 'worker-b'], { defaultSigterm: ['worker-a'] });
  try {
    const record = stream(director, 80, 20);
    await sessionOf(director);
    await sleep(500);
    workers['worker-a']!.kill('SIGTERM');
    const exit = await workers['worker-a']!.exited;
    t.deepEqual(exit, { code: 0, signal: null }, 'RpcWorker drained, closed and exited 0');
    t.false(workers['worker-a']!.messages.some((m) => m.type === 'drained'), 'the demo worker installed no handler of its own');
    const r = await record;
    t.is(r.items, 80);
    t.is(r.gaps, 0, 'no item lost');
    t.is(r.duplicates, 0, 'no item repeated');
    t.is(r.foreignConnection, 0);
    t.deepEqual(r.workers, ['worker-a', 'worker-b']);
    const kinds = director.proc.messages.filter((m) => m.type === 'event').map((m) => (m.event as { kind: string }).kind);
    const done = director.proc.messages.filter((m) => m.type === 'event' && (m.event as { kind: string }).kind === 'migration-completed');
    t.is(done.length, 1, kinds.join(', '));
    t.is((done[0]!.event as { report: MigrationReport }).report.reason, 'drain');
    t.false(kinds.includes('failover'), `no failover: ${kinds.join(', ')}`);
    t.false(kinds.includes('migration-aborted'), kinds.join(', '));
  } finally {
    await stop();
  }
});

test.serial('a client of a SIGKILLed director fails with UNAVAILABLE within 1.5 s (lossDetectionMs 750 by default), not 30 s', async (t) => {
  const { director, stop } = await cluster(['worker-a']);
  try {
    // Trusting only the cluster CA: the director presents a certificate the CA issued.
    const client = await RpcClient.connect(director.address, { tls: { caFile: join(clusterDir, 'ca.pem') } });
    const request = Buffer.from(JSON.stringify({ count: 100_000, intervalMs: 10 }));
    let items = 0;
    let killedAt = 0;
    const failed = (async () => {
      for await (const _ of client.callStreaming('tokens', request)) {
        if (++items === 10) {
          director.proc.kill('SIGKILL');
          killedAt = performance.now();
        }
      }
    })();
    const e = await t.throwsAsync(failed, { instanceOf: RpcError });
    const detectedMs = performance.now() - killedAt;
    t.log(`the stream failed ${detectedMs.toFixed(0)} ms after the SIGKILL: ${e?.message}`);
    t.is(e?.code, 'UNAVAILABLE');
    t.true(detectedMs < 1500, `detected after ${detectedMs.toFixed(0)} ms`);
    const call = await t.throwsAsync(client.call('who', Buffer.alloc(0)), { instanceOf: RpcError });
    t.is(call?.code, 'UNAVAILABLE', 'later calls fail at once');
    await client.close();
  } finally {
    await stop();
  }
});

test.serial('admin migrate moves a live stream and back, exactly once', async (t) => {
  const { director, stop } = await cluster(['worker-a', 'worker-b']);
  try {
    const record = stream(director, 100, 10);
    const session = await sessionOf(director);
    await sleep(200);
    const there = await director.proc.command<MigrationReport>({ cmd: 'migrate', sessionId: session, target: 'worker-b' });
    t.true(there.completed);
    t.deepEqual(
      there.phases.map((p) => p.phase),
      ['Initiation', 'Confirmation', 'Preparation', 'StateCapture', 'StateTransfer', 'Pivot'],
    );
    t.true(there.snapshotBytes > 1024, 'the sealed snapshot carries the 1 KiB application state');
    await sleep(200);
    const back = await director.proc.command<MigrationReport>({ cmd: 'migrate', sessionId: session });
    t.is(back.target, 'worker-a');
    const r = await record;
    t.is(r.items, 100);
    t.is(r.gaps + r.duplicates, 0);
    t.deepEqual(r.workers, ['worker-a', 'worker-b']);
    t.is(r.switches.length, 2);
    metadataOnce(t, r, 100);
    const restored = director.proc.messages.filter((m) => m.type === 'event' && (m.event as { kind: string }).kind === 'migration-completed');
    t.is(restored.length, 2, 'the director reported both migrations');
  } finally {
    await stop();
  }
});

test.serial('failover after SIGKILL resumes from the checkpoint without loss or repeats', async (t) => {
  const { director, workers, stop } = await cluster(['worker-a', 'worker-b']);
  try {
    const record = stream(director, 80, 20);
    await sleep(600);
    workers['worker-a']!.kill('SIGKILL');
    const r = await record;
    t.is(r.items, 80);
    t.is(r.gaps, 0);
    t.is(r.duplicates, 0);
    t.deepEqual(r.workers, ['worker-a', 'worker-b']);
    t.is(r.switches.length, 1);
    t.true(r.switches[0]!.pauseMs < 3000, `pause ${r.switches[0]!.pauseMs} ms`);
    metadataOnce(t, r, 80);
    const failover = director.proc.messages.find((m) => m.type === 'event' && (m.event as { kind: string }).kind === 'failover');
    t.truthy(failover, 'the director reported the failover');
  } finally {
    await stop();
  }
});

test.serial('the target killed mid-migration: MigrationAbort, the session stays, nothing lost', async (t) => {
  const { director, workers, stop } = await cluster(['worker-a', 'worker-b'], { confirmDelayMs: { 'worker-b': 1500 } });
  try {
    const record = stream(director, 100, 20);
    const session = await sessionOf(director);
    await sleep(200);
    const migration = director.proc.command<MigrationReport>({ cmd: 'migrate', sessionId: session, target: 'worker-b' });
    await sleep(300);
    workers['worker-b']!.kill('SIGKILL');
    const e = await t.throwsAsync(migration);
    t.is((e as RpcError).code, 'UNAVAILABLE');
    t.regex(e!.message, /aborted in Confirmation/);
    const r = await record;
    t.is(r.items, 100);
    t.is(r.gaps + r.duplicates, 0);
    t.deepEqual(r.workers, ['worker-a'], 'the session never left the source');
  } finally {
    await stop();
  }
});

test.serial('the source killed at the Pivot and the target 300 ms later: the session ends on the third worker', async (t) => {
  // Defect 8: the MigrationComplete to the dead source used to hold the session's migration
  // lock for 2 s, and the failover of the target skipped the locked session: orphaned.
  const { director, workers, stop } = await cluster(['worker-a', 'worker-b', 'worker-c'], {
    restoreDelayMs: { 'worker-b': 150 },
  });
  try {
    const record = stream(director, 120, 20);
    const session = await sessionOf(director);
    await sleep(300);
    const restored = workers['worker-b']!.waitFor((m) => m.type === 'restored');
    const migration = director.proc.command<MigrationReport>({ cmd: 'migrate', sessionId: session, target: 'worker-b' });
    await restored;
    workers['worker-a']!.kill('SIGKILL'); // the source, between State Transfer and the Pivot
    const report = await migration.catch((e: unknown) => e);
    await sleep(300);
    workers['worker-b']!.kill('SIGKILL');
    const r = await record;
    t.is(r.items, 120, `migration: ${JSON.stringify(report)}`);
    t.is(r.gaps, 0);
    t.is(r.duplicates, 0);
    t.is(r.workers.at(-1), 'worker-c', `route: ${r.workers.join(' -> ')}`);
    t.true(r.switches.every((s) => s.pauseMs < 3000), JSON.stringify(r.switches));
  } finally {
    await stop();
  }
});

test.serial('100 back-and-forth migrations of one streaming call under load: no gap, no duplicate', async (t) => {
  const { director, stop } = await cluster(['worker-a', 'worker-b']);
  try {
    const record = stream(director, 4000, 1);
    const session = await sessionOf(director);
    await sleep(100);
    const reports = await director.proc.command<MigrationReport[]>({ cmd: 'migrate-many', sessionId: session, count: 100, pauseMs: 15 }, 120_000);
    t.is(reports.length, 100);
    t.true(reports.every((r) => r.completed));
    t.true(reports.every((r, i) => r.target === (i % 2 === 0 ? 'worker-b' : 'worker-a')), 'back and forth');
    const r = await record;
    t.is(r.items, 4000);
    t.is(r.gaps, 0);
    t.is(r.duplicates, 0);
    t.is(r.foreignConnection, 0);
    metadataOnce(t, r, 4000);
    t.true(r.switches.length >= 90, `the client saw ${r.switches.length} changes of worker`);
    const frozen = reports.map((x) => x.frozenMs).sort((a, b) => a - b);
    t.log(`frozen p50 ${frozen[50]!.toFixed(2)} ms, max ${frozen[99]!.toFixed(2)} ms`);
  } finally {
    await stop();
  }
});

test.serial('a worker without a cluster certificate cannot register', async (t) => {
  const { director, stop } = await cluster([]);
  const foreign = mkdtempSync(join(tmpdir(), 'rpcnet-foreign-'));
  try {
    const e = await t.throwsAsync(RpcWorker.start({ id: 'intruder', director: director.mgmtAddress, clusterDir: foreign }), {
      instanceOf: RpcError,
    });
    t.is(e?.code, 'UNAVAILABLE');
    const workers = await director.proc.command<unknown[]>({ cmd: 'workers' });
    t.deepEqual(workers, [], 'the director registered nobody');
  } finally {
    rmSync(foreign, { recursive: true, force: true });
    await stop();
  }
});
