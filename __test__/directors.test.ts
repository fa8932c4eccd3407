/**
 * No single point of failure (issue 7), with real processes: two directors and two workers run
 * as separate OS processes (forked from dist/demo), the client runs here with a resumable session
 * (README "Resumable sessions") and every test asserts on the items it received: each exactly
 * once, in order, whatever happened to the director it was connected to.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { streamTokens, type StreamRecord } from '../dist/demo/client.js';
import { startDirector, startWorker, type DirectorProc, type Proc } from '../dist/demo/harness.js';
import { sleep } from './helpers.ts';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-directors-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

const COUNT = 120;
const INTERVAL_MS = 20;

/** Two directors and workers a and b registered with both. */
async function cluster(options: { restoreDelayMs?: number } = {}) {
  const directors = [
    await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 }),
    await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 }),
  ];
  const workers: Record<string, Proc> = {};
  for (const id of ['worker-a', 'worker-b']) {
    workers[id] = await startWorker(id, directors, clusterDir, { silent: true, restoreDelayMs: options.restoreDelayMs });
  }
  const stop = () => {
    for (const w of Object.values(workers)) w.kill('SIGKILL');
    for (const d of directors) d.proc.kill('SIGKILL');
  };
  return { directors, workers, stop };
}

/**
 * A resumable client of both directors (the first one first) streaming `tokens`, with the
 * default loss detection of a resumable session (400 ms).
 */
function stream(directors: DirectorProc[]): Promise<StreamRecord> {
  return streamTokens({
    address: directors.map((d) => d.address),
    caFile: join(clusterDir, 'ca.pem'),
    resume: true,
    count: COUNT,
    intervalMs: INTERVAL_MS,
  });
}

/** The session's owner as `director` lists it, once it does. */
async function ownerAt(director: DirectorProc): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const sessions = await director.proc.command<{ sessionId: string; worker: string }[]>({ cmd: 'sessions' });
    if (sessions.length > 0) return sessions[0]!.worker;
    await sleep(20);
  }
  throw new Error('the director lists no session');
}

function exactlyOnce(t: { is: (a: unknown, b: unknown, m?: string) => void }, r: StreamRecord) {
  t.is(r.items, COUNT, 'every item');
  t.is(r.gaps, 0, 'no gap');
  t.is(r.duplicates, 0, 'no duplicate');
  t.is(r.foreignConnection, 0, 'every item of this session');
  // Metadata across resumes (PROTOCOL.md 5.6): every handler saw the client's request headers
  // and the session id; the response headers came once, the trailer at the end.
  t.is(r.foreignMetadata, 0, 'every handler saw the same request headers');
  t.is(r.headers, 1, 'the response headers arrived once');
  t.is(r.stream, 'tokens');
  t.is(r.trailer, String(COUNT), 'the trailer arrived with the end');
}

test('a director upgraded with SIGTERM moves its client to the other director; the stream goes on exactly once', async (t) => {
  const { directors, stop } = await cluster();
  try {
    const record = stream(directors);
    await ownerAt(directors[0]!);
    await sleep(400);
    directors[0]!.proc.kill('SIGTERM');
    const exit = await directors[0]!.proc.exited;
    const r = await record;
    exactlyOnce(t, r);
    t.is(exit.code, 0, 'the director exits 0 once its client moved');
    t.is(r.resumptions.length, 1);
    t.is(r.resumptions[0]!.address, directors[1]!.address, 'resumed on the other director');
    t.true(r.resumptions[0]!.seenPauseMs < 200, `a move is not a loss: ${r.resumptions[0]!.seenPauseMs} ms`);
  } finally {
    stop();
  }
});

test('a director killed with SIGKILL: its client resumes on the other director, every item exactly once', async (t) => {
  const { directors, stop } = await cluster();
  try {
    const record = stream(directors);
    await ownerAt(directors[0]!);
    await sleep(400);
    directors[0]!.proc.kill('SIGKILL');
    const r = await record;
    exactlyOnce(t, r);
    t.is(r.resumptions.length, 1);
    t.is(r.resumptions[0]!.address, directors[1]!.address);
    t.true(r.resumptions[0]!.seenPauseMs < 1_500, `pause ${r.resumptions[0]!.seenPauseMs} ms`);
  } finally {
    stop();
  }
});

test('a director killed in the middle of a migration: the session continues exactly once on the other director', async (t) => {
  // The target's restoreState waits 400 ms, so the migration is in State Transfer (the source
  // frozen, the snapshot on its way) when the director dies.
  const { directors, stop } = await cluster({ restoreDelayMs: 400 });
  try {
    const record = stream(directors);
    const owner = await ownerAt(directors[0]!);
    await sleep(300);
    const sessions = await directors[0]!.proc.command<{ sessionId: string }[]>({ cmd: 'sessions' });
    const target = owner === 'worker-a' ? 'worker-b' : 'worker-a';
    directors[0]!.proc.command({ cmd: 'migrate', sessionId: sessions[0]!.sessionId, target }).catch(() => undefined);
    await sleep(200);
    const ended = directors[0]!.proc.messages.filter((m) => {
      const kind = (m.event as { kind?: string } | undefined)?.kind;
      return m.type === 'event' && (kind === 'migration-completed' || kind === 'migration-aborted');
    });
    t.is(ended.length, 0, 'the migration had not ended when its director died');
    directors[0]!.proc.kill('SIGKILL');
    const r = await record;
    exactlyOnce(t, r);
    t.is(r.resumptions.length, 1, 'resumed once');
    t.is(r.resumptions[0]!.address, directors[1]!.address);
  } finally {
    stop();
  }
});

test('a worker killed, then the director: failover, then resume, every item exactly once', async (t) => {
  const { directors, workers, stop } = await cluster();
  try {
    const record = stream(directors);
    const owner = await ownerAt(directors[0]!);
    await sleep(300);
    workers[owner]!.kill('SIGKILL');
    const other = owner === 'worker-a' ? 'worker-b' : 'worker-a';
    for (let i = 0; i < 100 && (await ownerAt(directors[0]!)) !== other; i++) await sleep(20);
    t.is(await ownerAt(directors[0]!), other, 'failed over first');
    await sleep(300);
    directors[0]!.proc.kill('SIGKILL');
    const r = await record;
    exactlyOnce(t, r);
    t.deepEqual(r.workers, [owner, other]);
    t.is(r.resumptions.length, 1);
  } finally {
    stop();
  }
});
