/**
 * Client-streaming and bidi calls across moves (PROTOCOL.md 13.6): a director and workers run as
 * separate OS processes (forked from dist/demo), the client runs here, and every test asserts on
 * what both sides received. The bidi `tally` answers request i with the running total of
 * requests 0..i, so a request the handler read twice, skipped or out of order shows in every
 * later answer; the client checks every answer it got, once each, in order.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test, { type ExecutionContext } from 'ava';
import { RpcClient, RpcError } from '../dist/index.js';
import type { MigrationReport } from '../dist/index.js';
import type { TallyItem } from '../dist/demo/tally.js';
import { startDirector, startWorker, type DirectorProc, type Proc } from '../dist/demo/harness.js';
import { sessionOf, sleep } from './helpers.ts';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-bidi-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

async function cluster(ids: string[]) {
  const director = await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 });
  const workers: Record<string, Proc> = {};
  for (const id of ids) workers[id] = await startWorker(id, director, clusterDir, { silent: true });
  const stop = async () => {
    for (const w of Object.values(workers)) w.kill('SIGKILL');
    director.proc.kill('SIGKILL');
  };
  return { director, workers, stop };
}

/** Request i's number. */
const nOf = (i: number) => ((i * 37) % 101) + 1;

/** The client's requests: `count` of them, one every `intervalMs`. */
async function* requests(count: number, intervalMs: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < count; i++) {
    if (i > 0) await sleep(intervalMs);
    yield Buffer.from(JSON.stringify({ n: nOf(i) }));
  }
}

/**
 * Runs a `tally` call of `count` requests through `director` (or, with several, a resumable
 * session of all of them, the first one first); resolves with its answers.
 */
async function tally(director: DirectorProc | DirectorProc[], count: number, intervalMs: number): Promise<TallyItem[]> {
  const client = Array.isArray(director)
    ? await RpcClient.connect(
        director.map((d) => d.address),
        { tls: { caFile: join(clusterDir, 'ca.pem') }, resume: true },
      )
    : await RpcClient.connect(director.address, { tls: { pin: director.fingerprint } });
  try {
    const answers: TallyItem[] = [];
    for await (const raw of client.callBidiStreaming('tally', requests(count, intervalMs))) answers.push(JSON.parse(raw.toString()) as TallyItem);
    return answers;
  } finally {
    await client.close();
  }
}

/** Every request answered once, in order, with the total of exactly the requests before it. */
function exactlyOnce(t: ExecutionContext, answers: TallyItem[], count: number): string[] {
  t.is(answers.length, count, 'one answer per request');
  let sum = 0;
  let wrong = 0;
  for (let i = 0; i < answers.length; i++) {
    sum += nOf(i);
    const a = answers[i]!;
    if (a.i !== i || a.n !== nOf(i) || a.sum !== sum) wrong++;
  }
  t.is(wrong, 0, 'every answer names its request and the total of the requests up to it');
  return [...new Set(answers.map((a) => a.worker))];
}

function events(director: DirectorProc, kind: string) {
  return director.proc.messages.filter((m) => m.type === 'event' && (m.event as { kind: string }).kind === kind);
}

test.serial('bidi across a drain: SIGTERM moves the call, every request read once, every answer received once', async (t) => {
  const { director, workers, stop } = await cluster(['worker-a', 'worker-b']);
  try {
    const answers = tally(director, 80, 20);
    await sessionOf(director);
    await sleep(500);
    workers['worker-a']!.kill('SIGTERM');
    t.is((await workers['worker-a']!.exited).code, 0, 'the drained worker exits 0');
    t.deepEqual(exactlyOnce(t, await answers, 80), ['worker-a', 'worker-b']);
    t.is(events(director, 'migration-completed').length, 1);
    t.is(events(director, 'failover').length, 0);
  } finally {
    await stop();
  }
});

test.serial('bidi across admin migrate there and back, exactly once both ways', async (t) => {
  const { director, stop } = await cluster(['worker-a', 'worker-b']);
  try {
    const answers = tally(director, 100, 10);
    const session = await sessionOf(director);
    await sleep(250);
    const there = await director.proc.command<MigrationReport>({ cmd: 'migrate', sessionId: session, target: 'worker-b' });
    t.true(there.completed);
    await sleep(250);
    const back = await director.proc.command<MigrationReport>({ cmd: 'migrate', sessionId: session });
    t.true(back.completed);
    t.is(back.target, 'worker-a');
    t.deepEqual(exactlyOnce(t, await answers, 100).sort(), ['worker-a', 'worker-b']);
  } finally {
    await stop();
  }
});

test.serial('bidi across a SIGKILL failover: the director gives the next worker the requests its checkpoint had not read', async (t) => {
  const { director, workers, stop } = await cluster(['worker-a', 'worker-b']);
  try {
    const answers = tally(director, 80, 20);
    await sessionOf(director);
    await sleep(600);
    workers['worker-a']!.kill('SIGKILL');
    t.deepEqual(exactlyOnce(t, await answers, 80), ['worker-a', 'worker-b']);
    t.truthy(events(director, 'failover').length >= 1, 'the director reported the failover');
  } finally {
    await stop();
  }
});

test.serial('client-streaming across a SIGKILL failover: the handler runs again on every request, the response arrives once', async (t) => {
  const { director, workers, stop } = await cluster(['worker-a', 'worker-b']);
  const client = await RpcClient.connect(director.address, { tls: { pin: director.fingerprint } });
  try {
    const count = 60;
    const answer = client.callClientStreaming('sum', requests(count, 20));
    await sessionOf(director);
    await sleep(600);
    workers['worker-a']!.kill('SIGKILL');
    const result = JSON.parse((await answer).toString()) as { count: number; sum: number; worker: string };
    let sum = 0;
    for (let i = 0; i < count; i++) sum += nOf(i);
    t.deepEqual(result, { count, sum, worker: 'worker-b' });
  } finally {
    await client.close();
    await stop();
  }
});

/** Two directors and workers a and b registered with both (README "Resumable sessions"). */
async function twoDirectors() {
  const directors = [
    await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 }),
    await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 }),
  ];
  const workers: Record<string, Proc> = {};
  for (const id of ['worker-a', 'worker-b']) workers[id] = await startWorker(id, directors, clusterDir, { silent: true });
  const stop = () => {
    for (const w of Object.values(workers)) w.kill('SIGKILL');
    for (const d of directors) d.proc.kill('SIGKILL');
  };
  return { directors, workers, stop };
}

test.serial('bidi in a resumable session across a director SIGKILL: the client sends its requests again, every one read once', async (t) => {
  const { directors, stop } = await twoDirectors();
  try {
    const answers = tally(directors, 100, 20);
    await sessionOf(directors[0]!);
    await sleep(700);
    directors[0]!.proc.kill('SIGKILL');
    exactlyOnce(t, await answers, 100);
  } finally {
    stop();
  }
});

test.serial('bidi in a resumable session across a director SIGTERM and a worker drain, exactly once', async (t) => {
  const { directors, workers, stop } = await twoDirectors();
  try {
    const answers = tally(directors, 120, 20);
    await sessionOf(directors[0]!);
    await sleep(500);
    directors[0]!.proc.kill('SIGTERM');
    await sleep(800);
    workers['worker-a']!.kill('SIGTERM');
    const got = await answers;
    t.deepEqual(exactlyOnce(t, got, 120).sort(), ['worker-a', 'worker-b']);
  } finally {
    stop();
  }
});

test.serial('client-streaming in a resumable session across a director SIGKILL: sent again with its requests when idempotent, else UNAVAILABLE', async (t) => {
  const { directors, stop } = await twoDirectors();
  const client = await RpcClient.connect(
    directors.map((d) => d.address),
    { tls: { caFile: join(clusterDir, 'ca.pem') }, resume: true },
  );
  try {
    const count = 60;
    const again = client.callClientStreaming('sum', requests(count, 20), { idempotent: true });
    const once = client.callClientStreaming('sum', requests(count, 20));
    await sessionOf(directors[0]!);
    await sleep(500);
    directors[0]!.proc.kill('SIGKILL');
    const result = JSON.parse((await again).toString()) as { count: number; sum: number };
    let sum = 0;
    for (let i = 0; i < count; i++) sum += nOf(i);
    t.deepEqual({ count: result.count, sum: result.sum }, { count, sum }, 'the handler ran again on every request');
    const e = await t.throwsAsync(once, { instanceOf: RpcError });
    t.is(e?.code, 'UNAVAILABLE');
    t.regex(e?.message ?? '', /not marked idempotent/);
  } finally {
    await client.close();
    stop();
  }
});
