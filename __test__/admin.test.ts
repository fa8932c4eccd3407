/**
 * The HTTP admin endpoint (src/admin.ts) and the metrics (src/metrics.ts) of a director, two
 * workers and a plain server in this process, over real QUIC and real HTTP on loopback: health
 * probes follow registration and draining, `/metrics` counts calls, migrations, sessions and
 * workers in Prometheus text format, `/migrations` lists what is in flight.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { Director, RpcClient, RpcError, RpcServer, RpcWorker } from '../dist/index.js';
import { sleep, u32 } from './helpers.ts';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-admin-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

async function get(address: string, path: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

/** The value of the sample `line` (name and labels as printed) in a Prometheus text body. */
function sample(body: string, line: string): number | undefined {
  const found = body.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

test.serial('health probes follow registration and draining; metrics count calls, sessions, workers and migrations', async (t) => {
  const director = await Director.start({ clusterDir, admin: { port: 0 } });
  const d = director.adminAddress!;
  t.regex(d, /^127\.0\.0\.1:\d+$/);
  try {
    t.is((await get(d, '/health/live')).status, 200);
    const notYet = await get(d, '/health/ready');
    t.is(notYet.status, 503, 'a director without workers is not ready');
    t.regex(notYet.body, /no live worker/);

    const workers: RpcWorker[] = [];
    for (const id of ['worker-a', 'worker-b']) {
      const w = await RpcWorker.start({ id, director: director.mgmtAddress, clusterDir, admin: { port: 0 }, drainOnSigterm: false });
      w.serverStreaming('count', async function* (_req, ctx) {
        for (let seq = ctx.resume?.seq ?? 0; seq < 8; seq++) {
          yield u32(seq);
          ctx.checkpoint(u32(seq + 1));
          await sleep(30);
        }
      });
      w.unary('fail', () => {
        throw new RpcError('FAILED_PRECONDITION', 'not now');
      });
      workers.push(w);
    }
    t.is((await get(d, '/health/ready')).status, 200);
    t.is((await get(workers[0]!.adminAddress!, '/health/ready')).status, 200, 'a registered worker is ready');
    const client = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
    try {
      const items: number[] = [];
      const reading = (async () => {
        for await (const item of client.callStreaming('count', Buffer.alloc(0))) items.push(item.readUInt32BE());
      })();
      await sleep(80);
      const during = await get(d, '/metrics');
      t.is(sample(during.body, 'rpcnet_sessions'), 1);
      t.is(sample(during.body, 'rpcnet_workers'), 2);
      t.regex(during.type ?? '', /^text\/plain; version=0\.0\.4/);
      const [session] = director.sessions();
      const report = await director.migrate(session!.sessionId);
      t.true(report.completed);
      await reading;
      t.deepEqual(items, [0, 1, 2, 3, 4, 5, 6, 7]);
      await t.throwsAsync(client.call('fail', Buffer.alloc(0)), { instanceOf: RpcError });
    } finally {
      await client.close();
    }
    const migrations = await get(d, '/migrations');
    t.is(migrations.status, 200);
    t.deepEqual(JSON.parse(migrations.body), [], 'none left in flight');
    // One registry per process: the director's and both workers' counts are in every endpoint.
    const m = (await get(d, '/metrics')).body;
    t.is(sample(m, 'rpcnet_migrations_total{outcome="completed"}'), 1);
    t.is(sample(m, 'rpcnet_migration_pause_seconds_count'), 1);
    t.is(sample(m, 'rpcnet_snapshot_bytes_count'), 1);
    t.is(sample(m, 'rpcnet_active_migrations'), 0);
    t.is(sample(m, 'rpcnet_calls_total{method="count",code="OK"}'), 1, 'the target finished the call');
    t.is(sample(m, 'rpcnet_calls_total{method="count",code="UNAVAILABLE"}'), undefined, "the source's run, stopped by the migration, is not an outcome");
    t.is(sample(m, 'rpcnet_calls_total{method="fail",code="FAILED_PRECONDITION"}'), 1);
    t.is(sample(m, 'rpcnet_call_duration_seconds_count{method="count"}'), 1);
    t.is(sample(m, 'rpcnet_failovers_total'), 0);
    t.is((await get(workers[0]!.adminAddress!, '/migrations')).status, 404, 'workers list no migrations');

    // Draining: no longer ready.
    const drained = workers[0]!;
    await drained.drain(5_000);
    const ready = await get(drained.adminAddress!, '/health/ready');
    t.is(ready.status, 503);
    t.regex(ready.body, /draining/);
    for (const w of workers) await w.close();
  } finally {
    await director.close();
  }
});

test.serial('a plain server: admin endpoint and its options', async (t) => {
  const server = await RpcServer.listen({ admin: { port: 0 } });
  try {
    t.is((await get(server.adminAddress!, '/health/ready')).status, 200);
    t.is((await get(server.adminAddress!, '/nope')).status, 404);
    t.is(server.adminAddress === undefined, false);
  } finally {
    await server.close();
  }
  const plain = await RpcServer.listen();
  t.is(plain.adminAddress, undefined, 'no endpoint unless configured');
  await plain.close();
  const e = await t.throwsAsync(RpcServer.listen({ admin: { host: '127.0.0.1' } as never }), { instanceOf: RpcError });
  t.is(e.code, 'INVALID_ARGUMENT');
  t.regex(e.message, /admin\.port must be given/);
  const e2 = await t.throwsAsync(RpcServer.listen({ admin: { port: 0, path: '/x' } as never }), { instanceOf: RpcError });
  t.regex(e2.message, /admin has no option "path"/);
});
