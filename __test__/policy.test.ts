/**
 * Policy hooks and events, with the director, two workers and the client in this process (over
 * real QUIC on loopback): selectTarget places sessions, onMigrationRequest can reject, and the
 * director reports what happened.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { Director, RpcClient, RpcError, RpcWorker, type DirectorEvent, type MigrationAbortedEvent } from '../dist/index.js';
import { tokensHandler } from '../dist/demo/tokens.js';
import { streamTokens } from '../dist/demo/client.js';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-policy-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

async function setup() {
  const director = await Director.start({ clusterDir });
  const events: DirectorEvent[] = [];
  director.on('event', (e: DirectorEvent) => events.push(e));
  const workers: RpcWorker[] = [];
  for (const id of ['worker-a', 'worker-b']) {
    const w = await RpcWorker.start({ id, director: director.mgmtAddress, clusterDir });
    w.serverStreaming('tokens', tokensHandler(id));
    w.unary('who', () => Buffer.from(id));
    workers.push(w);
  }
  const close = async () => {
    for (const w of workers) await w.close();
    await director.close();
  };
  return { director, workers, events, close };
}

test.serial('selectTarget places new sessions; its invalid answers fall back to the default', async (t) => {
  const { director, close } = await setup();
  const asked: string[][] = [];
  director.setPolicy({
    selectTarget: (_session, workers) => {
      asked.push(workers.map((w) => w.id));
      return asked.length === 1 ? 'worker-b' : 'no-such-worker';
    },
  });
  const c1 = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  t.is((await c1.call('who', Buffer.alloc(0))).toString(), 'worker-b', 'the hook chose worker-b');
  const c2 = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  t.is((await c2.call('who', Buffer.alloc(0))).toString(), 'worker-a', 'an unknown choice falls back to fewest sessions');
  t.deepEqual(asked[0], ['worker-a', 'worker-b']);
  await c1.close();
  await c2.close();
  await close();
});

test.serial('onMigrationRequest can reject: MigrationAbort, the stream stays on the source', async (t) => {
  const { director, workers, events, close } = await setup();
  workers[1]!.setHooks({ onMigrationRequest: (r) => ({ decision: 'reject', reason: `not taking ${r.sessionId}` }) });
  const record = streamTokens({ address: director.address, pin: director.certFingerprint, count: 40, intervalMs: 10 });
  let sessionId = '';
  while (!sessionId) {
    await new Promise((r) => setTimeout(r, 10));
    sessionId = director.sessions()[0]?.sessionId ?? '';
  }
  const e = await t.throwsAsync(director.migrate(sessionId, 'worker-b'), { instanceOf: RpcError });
  t.regex(e!.message, /MIGRATION_REJECTED/);
  const r = await record;
  t.is(r.items, 40);
  t.is(r.gaps + r.duplicates, 0);
  t.deepEqual(r.workers, ['worker-a']);
  const aborted = events.find((x) => x.kind === 'migration-aborted');
  t.truthy(aborted);
  if (aborted?.kind === 'migration-aborted') {
    t.is(aborted.report.abortedIn, 'Confirmation');
    t.false(aborted.report.completed);
  }
  const started = events.find((x) => x.kind === 'migration-started');
  t.like(started, { kind: 'migration-started', sessionId, source: 'worker-a', target: 'worker-b', reason: 'admin' });
  await close();
});

test.serial('captureState and restoreState carry the application state to the target', async (t) => {
  const { director, workers, events, close } = await setup();
  const restored: Buffer[] = [];
  workers[0]!.setHooks({ captureState: (id) => Buffer.from(`state of ${id}`) });
  workers[1]!.setHooks({ restoreState: (_id, state) => void restored.push(state) });
  const record = streamTokens({ address: director.address, pin: director.certFingerprint, count: 30, intervalMs: 10 });
  let sessionId = '';
  while (!sessionId) {
    await new Promise((r) => setTimeout(r, 10));
    sessionId = director.sessions()[0]?.sessionId ?? '';
  }
  const report = await director.migrate(sessionId);
  t.true(report.completed);
  t.is(report.target, 'worker-b');
  t.deepEqual(restored.map((b) => b.toString()), [`state of ${sessionId}`]);
  const r = await record;
  t.is(r.items, 30);
  t.is(r.gaps + r.duplicates, 0);
  t.true(events.some((x) => x.kind === 'migration-completed'));
  const iterator = director.events()[Symbol.asyncIterator]();
  const next = iterator.next();
  const c = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  await c.call('who', Buffer.alloc(0)); // the session opens at the connection's first stream
  const first = await next;
  t.is((first.value as DirectorEvent).kind, 'session-opened', 'events() yields as an async iterator');
  await iterator.return?.(undefined);
  await c.close();
  await close();
});

test.serial('onMigrationRequest can defer, and the director asks again', async (t) => {
  const { director, workers, close } = await setup();
  const asked: number[] = [];
  workers[1]!.setHooks({
    onMigrationRequest: () => {
      asked.push(Date.now());
      return asked.length === 1 ? { decision: 'defer', retryAfterMs: 150 } : { decision: 'accept' };
    },
  });
  const c = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  await c.call('who', Buffer.alloc(0));
  const sessionId = director.sessions()[0]!.sessionId;
  const report = await director.migrate(sessionId, 'worker-b');
  t.true(report.completed);
  t.is(asked.length, 2, 'asked twice');
  t.true(asked[1]! - asked[0]! >= 140, `retried after ${asked[1]! - asked[0]!} ms`);
  t.is((await c.call('who', Buffer.alloc(0))).toString(), 'worker-b', 'new calls go to the target');
  await c.close();
  await close();
});

test.serial('an onMigrationRequest answer that is no decision aborts the migration instead of accepting it', async (t) => {
  const { director, workers, close } = await setup();
  const c = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  try {
    // @ts-expect-error not a MigrationDecision
    workers[1]!.setHooks({ onMigrationRequest: () => ({ decision: 'maybe' }) });
    t.is((await c.call('who', Buffer.alloc(0))).toString(), 'worker-a');
    const sessionId = director.sessions()[0]!.sessionId;
    const aborted = new Promise<MigrationAbortedEvent>((resolve) => director.once('migration-aborted', resolve));
    const e = await t.throwsAsync(director.migrate(sessionId, 'worker-b'), { instanceOf: RpcError });
    t.regex(e!.message, /onMigrationRequest must answer \{ decision: 'accept' \| 'reject' \| 'defer' \}, got decision "maybe" \(string\)/);
    t.is((await aborted).report.abortedIn, 'Confirmation');
    t.is((await c.call('who', Buffer.alloc(0))).toString(), 'worker-a', 'the session stayed on the source');
  } finally {
    await c.close();
    await close();
  }
});
