/**
 * Worker membership with directors that die and come back, and several directors (issue 7, "no
 * single point of failure"). Directors and workers run as separate OS processes (forked from
 * dist/demo) and are killed with SIGKILL, so no goodbye reaches anyone; the clients run here
 * and every test asserts on the items they received.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { RpcError, RpcWorker, type RpcClient } from '../dist/index.js';
import { streamTokens } from '../dist/demo/client.js';
import { startDirector, startWorker, type DirectorProc, type Proc } from '../dist/demo/harness.js';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-members-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

const port = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

/** Streams `count` tokens from `director`, one every `intervalMs`, noting the longest wait between two items. */
function stream(director: DirectorProc, count: number, intervalMs: number) {
  let last = 0;
  let longestWaitMs = 0;
  let client: RpcClient | undefined;
  const record = streamTokens({
    address: director.address,
    pin: director.fingerprint,
    count,
    intervalMs,
    onConnected: (c) => (client = c),
    onItem: () => {
      const now = performance.now();
      if (last > 0) longestWaitMs = Math.max(longestWaitMs, now - last);
      last = now;
    },
  });
  return { record, longestWaitMs: () => longestWaitMs, close: () => client?.close() };
}

test('a director that is not there fails the start with UNAVAILABLE naming it after connectTimeoutMs', async (t) => {
  const nowhere = '127.0.0.1:9';
  const started = performance.now();
  const e = await t.throwsAsync(RpcWorker.start({ id: 'worker-x', director: nowhere, clusterDir, connectTimeoutMs: 300 }), {
    instanceOf: RpcError,
  });
  const took = performance.now() - started;
  t.is(e?.code, 'UNAVAILABLE');
  t.true(e!.message.startsWith(`cannot register with the director at ${nowhere} within 300 ms`), e!.message);
  t.true(took >= 300 && took < 3000, `${took} ms`);
});

test.serial('a SIGKILLed director restarted on the same ports gets its worker back and serves new sessions', async (t) => {
  const first = await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 });
  const procs: Proc[] = [first.proc];
  try {
    procs.push(await startWorker('worker-a', first, clusterDir, { silent: true }));
    const before = stream(first, 10, 10);
    t.is((await before.record).items, 10);
    first.proc.kill('SIGKILL');
    await first.proc.exited;
    const second = await startDirector(clusterDir, { silent: true, failoverAfterMs: 400, port: port(first.address), mgmtPort: port(first.mgmtAddress) });
    procs.push(second.proc);
    const ready = performance.now();
    t.true(await second.proc.command<boolean>({ cmd: 'wait-workers', count: 1 }), 'the worker registers again');
    const tookMs = performance.now() - ready;
    t.log(`re-registered ${tookMs.toFixed(0)} ms after the restarted director was ready`);
    t.true(tookMs < 3000, `${tookMs} ms`);
    const after = await stream(second, 20, 10).record;
    t.is(after.items, 20);
    t.is(after.gaps + after.duplicates, 0);
    t.deepEqual(after.workers, ['worker-a']);
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
});

test.serial('a worker of two directors keeps serving one director when the other is SIGKILLed', async (t) => {
  const d1 = await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 });
  const d2 = await startDirector(clusterDir, { silent: true, failoverAfterMs: 400 });
  const procs: Proc[] = [d1.proc, d2.proc];
  try {
    procs.push(await startWorker('worker-b', [d1, d2], clusterDir, { silent: true }));
    t.true(await d1.proc.command<boolean>({ cmd: 'wait-workers', count: 1 }));
    t.true(await d2.proc.command<boolean>({ cmd: 'wait-workers', count: 1 }));
    // 100 items 20 ms apart from each director: 2 s of streaming.
    const s1 = stream(d1, 100, 20);
    const s2 = stream(d2, 100, 20);
    const lost = s1.record.then(
      () => 'completed',
      (e: RpcError) => e.code,
    );
    await new Promise((r) => setTimeout(r, 500));
    d1.proc.kill('SIGKILL');
    const r2 = await s2.record;
    t.is(r2.items, 100);
    t.is(r2.gaps + r2.duplicates, 0);
    t.deepEqual(r2.workers, ['worker-b'], 'the surviving director kept its session on the worker');
    t.is(r2.switches.length, 0);
    t.log(`longest wait between two items of director 2: ${s2.longestWaitMs().toFixed(1)} ms (interval 20 ms)`);
    t.true(s2.longestWaitMs() < 300, `director 2's stream paused ${s2.longestWaitMs()} ms`);
    // Director 1's client would wait for QUIC's idle timeout (30 s) to notice: it gives up.
    await s1.close();
    t.not(await lost, 'completed');
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
});
