import test from 'ava';
import { ERROR_CODES, RpcClient, RpcError, RpcServer, type ErrorCode } from '../dist/index.js';
import { pair, sleep, u32, whenAborted } from './helpers.ts';

test('unary echo over QUIC on loopback', async (t) => {
  const { server, client, close } = await pair();
  server.unary('echo', async (req) => req);
  const reply = await client.call('echo', Buffer.from('hello rpcnet'), { deadlineMs: 5000 });
  t.is(reply.toString(), 'hello rpcnet');
  const empty = await client.call('echo', new Uint8Array(0));
  t.is(empty.length, 0);
  const big = Buffer.alloc(3 * 1024 * 1024, 7);
  t.true((await client.call('echo', big)).equals(big));
  await close();
});

test('many concurrent unary calls on one connection', async (t) => {
  const { server, client, close } = await pair();
  server.unary('double', (req) => u32(req.readUInt32BE(0) * 2));
  const replies = await Promise.all(Array.from({ length: 500 }, (_, i) => client.call('double', u32(i))));
  t.deepEqual(
    replies.map((r) => r.readUInt32BE(0)),
    Array.from({ length: 500 }, (_, i) => i * 2),
  );
  await close();
});

test('a 100,000-item stream arrives complete and in order', async (t) => {
  const { server, client, close } = await pair();
  server.serverStreaming('count', async function* (req) {
    const n = req.readUInt32BE(0);
    for (let i = 0; i < n; i++) yield u32(i);
  });
  let expected = 0;
  for await (const item of client.callStreaming('count', u32(100_000))) {
    if (item.readUInt32BE(0) !== expected) t.fail(`item ${item.readUInt32BE(0)} where ${expected} was expected`);
    expected++;
  }
  t.is(expected, 100_000);
  await close();
});

test('sync iterables and empty streams work', async (t) => {
  const { server, client, close } = await pair();
  server.serverStreaming('sync', function* () {
    yield Buffer.from('a');
    yield Buffer.from('b');
  });
  server.serverStreaming('none', async function* () {});
  const got: string[] = [];
  for await (const item of client.callStreaming('sync', Buffer.alloc(0))) got.push(item.toString());
  t.deepEqual(got, ['a', 'b']);
  let count = 0;
  for await (const _ of client.callStreaming('none', Buffer.alloc(0))) count++;
  t.is(count, 0);
  await close();
});

test('every status code a handler throws reaches the caller, with its message', async (t) => {
  const { server, client, close } = await pair();
  server.unary('fail', (req) => {
    throw new RpcError(req.toString() as ErrorCode, `failed with ${req.toString()}`);
  });
  for (const code of ERROR_CODES) {
    const e = await t.throwsAsync(client.call('fail', Buffer.from(code)), { instanceOf: RpcError });
    t.is(e?.code, code);
    t.is(e?.message, `failed with ${code}`);
  }
  t.true(ERROR_CODES.includes('UNAUTHENTICATED') && ERROR_CODES.includes('UNIMPLEMENTED'), 'the full gRPC set');
  await close();
});

test('idleTimeoutMs: a connection quiet for longer than the server offers is closed', async (t) => {
  const server = await RpcServer.listen({ idleTimeoutMs: 300, keepAliveMs: 0 });
  server.unary('echo', (req) => req);
  // The client's own offer (lossDetectionMs) is higher, so the server's decides.
  const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint }, lossDetectionMs: 30_000 });
  t.is((await client.call('echo', Buffer.from('a'))).toString(), 'a');
  await sleep(800);
  const e = await t.throwsAsync(client.call('echo', Buffer.from('b')), { instanceOf: RpcError });
  t.is(e?.code, 'UNAVAILABLE');
  await client.close();
  await server.close();
});

test('unknown method gives UNIMPLEMENTED (gRPC), not NOT_FOUND', async (t) => {
  const { client, close } = await pair();
  const e = await t.throwsAsync(client.call('nope', Buffer.alloc(0)), { instanceOf: RpcError });
  t.is(e?.code, 'UNIMPLEMENTED');
  t.regex(e!.message, /nope/);
  const e2 = await t.throwsAsync(
    (async () => {
      for await (const _ of client.callStreaming('nope2', Buffer.alloc(0))) t.fail('no items expected');
    })(),
    { instanceOf: RpcError },
  );
  t.is(e2?.code, 'UNIMPLEMENTED');
  await close();
});

test('calling a method with the wrong kind gives INVALID_ARGUMENT', async (t) => {
  const { server, client, close } = await pair();
  server.serverStreaming('stream', async function* () {
    yield Buffer.from('x');
  });
  const e = await t.throwsAsync(client.call('stream', Buffer.alloc(0)), { instanceOf: RpcError });
  t.is(e?.code, 'INVALID_ARGUMENT');
  t.regex(e!.message, /server-streaming/);
  await close();
});

test("a handler's thrown error reaches the caller with its code and message", async (t) => {
  const { server, client, close } = await pair();
  server.unary('coded', () => {
    throw new RpcError('RESOURCE_EXHAUSTED', 'quota of 3 calls used up');
  });
  server.unary('plain', async () => {
    throw new Error('boom at step 2');
  });
  server.serverStreaming('fails-midway', async function* () {
    yield Buffer.from('1');
    yield Buffer.from('2');
    throw new RpcError('INTERNAL', 'disk gone');
  });
  const e1 = await t.throwsAsync(client.call('coded', Buffer.alloc(0)), { instanceOf: RpcError });
  t.is(e1?.code, 'RESOURCE_EXHAUSTED');
  t.is(e1?.message, 'quota of 3 calls used up');
  const e2 = await t.throwsAsync(client.call('plain', Buffer.alloc(0)), { instanceOf: RpcError });
  t.is(e2?.code, 'UNKNOWN');
  t.is(e2?.message, 'boom at step 2');
  const got: string[] = [];
  const e3 = await t.throwsAsync(
    (async () => {
      for await (const item of client.callStreaming('fails-midway', Buffer.alloc(0))) got.push(item.toString());
    })(),
    { instanceOf: RpcError },
  );
  t.deepEqual(got, ['1', '2'], 'items before the error are delivered');
  t.is(e3?.code, 'INTERNAL');
  t.is(e3?.message, 'disk gone');
  await close();
});

test('a deadline fires on both ends', async (t) => {
  const { server, client, close } = await pair();
  let serverReason: unknown;
  server.unary('slow', async (_req, ctx) => {
    serverReason = await Promise.race([whenAborted(ctx.signal), sleep(5000).then(() => 'not aborted')]);
    return Buffer.from('late');
  });
  const started = Date.now();
  const e = await t.throwsAsync(client.call('slow', Buffer.alloc(0), { deadlineMs: 150 }), { instanceOf: RpcError });
  t.is(e?.code, 'DEADLINE_EXCEEDED');
  t.true(Date.now() - started < 3000);
  for (let i = 0; i < 100 && serverReason === undefined; i++) await sleep(20);
  t.true(serverReason instanceof RpcError);
  t.is((serverReason as RpcError).code, 'DEADLINE_EXCEEDED');
  await close();
});

test('a deadline ends a stream that takes too long', async (t) => {
  const { server, client, close } = await pair();
  server.serverStreaming('trickle', async function* (_req, ctx) {
    for (let i = 0; !ctx.signal.aborted; i++) {
      yield u32(i);
      await sleep(20);
    }
  });
  let received = 0;
  const e = await t.throwsAsync(
    (async () => {
      for await (const _ of client.callStreaming('trickle', Buffer.alloc(0), { deadlineMs: 300 })) received++;
    })(),
    { instanceOf: RpcError },
  );
  t.is(e?.code, 'DEADLINE_EXCEEDED');
  t.true(received > 2, `some items arrived before the deadline (${received})`);
  await close();
});

test('cancellation with AbortSignal reaches the streaming handler', async (t) => {
  const { server, client, close } = await pair();
  let reason: Promise<unknown> | undefined;
  let returned = false;
  server.serverStreaming('forever', async function* (_req, ctx) {
    reason = whenAborted(ctx.signal);
    try {
      for (let i = 0; ; i++) {
        yield u32(i);
        await sleep(5);
      }
    } finally {
      returned = true;
    }
  });
  const controller = new AbortController();
  let received = 0;
  const e = await t.throwsAsync(
    (async () => {
      for await (const _ of client.callStreaming('forever', Buffer.alloc(0), { signal: controller.signal })) {
        if (++received === 5) controller.abort();
      }
    })(),
    { instanceOf: RpcError },
  );
  t.is(e?.code, 'CANCELLED');
  const r = await Promise.race([reason, sleep(3000).then(() => 'timeout')]);
  t.true(r instanceof RpcError, 'handler signal aborted');
  t.is((r as RpcError).code, 'CANCELLED');
  for (let i = 0; i < 100 && !returned; i++) await sleep(10);
  t.true(returned, 'the generator was closed');
  await close();
});

test('cancellation with AbortSignal reaches a unary handler', async (t) => {
  const { server, client, close } = await pair();
  let reason: Promise<unknown> | undefined;
  server.unary('wait', async (_req, ctx) => {
    reason = whenAborted(ctx.signal);
    await reason;
    return Buffer.alloc(0);
  });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  const e = await t.throwsAsync(client.call('wait', Buffer.alloc(0), { signal: controller.signal }), {
    instanceOf: RpcError,
  });
  t.is(e?.code, 'CANCELLED');
  const r = await Promise.race([reason, sleep(3000).then(() => 'timeout')]);
  t.true(r instanceof RpcError);
  t.is((r as RpcError).code, 'CANCELLED');
  const pre = new AbortController();
  pre.abort();
  const e2 = await t.throwsAsync(client.call('wait', Buffer.alloc(0), { signal: pre.signal }));
  t.is((e2 as RpcError).code, 'CANCELLED');
  await close();
});

test('breaking out of a stream cancels it on the server', async (t) => {
  const { server, client, close } = await pair();
  let reason: Promise<unknown> | undefined;
  server.serverStreaming('forever', async function* (_req, ctx) {
    reason = whenAborted(ctx.signal);
    for (let i = 0; ; i++) {
      yield u32(i);
      await sleep(2);
    }
  });
  let n = 0;
  for await (const _ of client.callStreaming('forever', Buffer.alloc(0))) if (++n === 3) break;
  const r = await Promise.race([reason, sleep(3000).then(() => 'timeout')]);
  t.is((r as RpcError).code, 'CANCELLED');
  await close();
});

test("with a stalled reader the server's buffering stays bounded", async (t) => {
  const { server, client, close } = await pair();
  const itemSize = 64 * 1024;
  let produced = 0;
  const total = 2000; // 125 MiB if nothing held it back
  server.serverStreaming('flood', async function* () {
    const item = Buffer.alloc(itemSize, 1);
    for (let i = 0; i < total; i++) {
      produced++;
      yield item;
    }
  });
  const iterator = client.callStreaming('flood', Buffer.alloc(0))[Symbol.asyncIterator]();
  t.false((await iterator.next()).done);
  await sleep(800);
  const atStall = produced;
  await sleep(400);
  t.is(produced, atStall, 'the handler is paused while the reader stalls');
  // Items in flight: QUIC stream window + the server's queue (1 MiB) + one write batch.
  t.true(atStall * itemSize < 12 * 1024 * 1024, `held back ${(atStall * itemSize) / 1048576} MiB`);
  t.true(atStall < total);
  let rest = 1;
  for (;;) {
    const step = await iterator.next();
    if (step.done) break;
    rest++;
  }
  t.is(rest, total, 'every item arrives after the reader resumes');
  await close();
});

test('oversized requests are rejected with RESOURCE_EXHAUSTED', async (t) => {
  const { server, client, close } = await pair({ maxFrameSize: 1024 });
  server.unary('echo', (req) => req);
  t.is((await client.call('echo', Buffer.alloc(500))).length, 500);
  const e = await t.throwsAsync(client.call('echo', Buffer.alloc(4096)), { instanceOf: RpcError });
  t.is(e?.code, 'RESOURCE_EXHAUSTED');
  t.regex(e!.message, /maximum frame size/);
  t.is((await client.call('echo', Buffer.from('still fine'))).toString(), 'still fine', 'the connection survives');
  await close();
});

test('connection identity and stats', async (t) => {
  const { server, client, close } = await pair();
  let seen: { id: string; remote: string; rtt: number | undefined } | undefined;
  server.unary('who', (_req, ctx) => {
    seen = { id: ctx.connection.id, remote: ctx.connection.remoteAddress, rtt: ctx.connection.stats()?.rttMs };
    return Buffer.alloc(0);
  });
  await client.call('who', Buffer.alloc(0));
  t.regex(client.connectionId, /^[0-9a-f]{16}$/);
  t.is(seen?.id, client.connectionId, 'both ends name the connection the same');
  t.regex(seen!.remote, /^127\.0\.0\.1:\d+$/);
  t.is(typeof seen?.rtt, 'number');
  t.is(client.remoteAddress, server.address);
  const stats = client.stats();
  t.true(stats.bytesSent > 0 && stats.bytesReceived > 0);
  t.true(stats.rttMs > 0);
  t.true(stats.cwnd > 0);
  t.is(stats.lostPackets, 0);
  await close();
});

test('a wrong pin is refused, and there is no insecure default', async (t) => {
  const server = await RpcServer.listen({ port: 0 });
  const wrong = 'ab'.repeat(32);
  const e = await t.throwsAsync(RpcClient.connect(server.address, { tls: { pin: wrong } }), { instanceOf: RpcError });
  t.is(e?.code, 'UNAVAILABLE');
  t.regex(e!.message, /fingerprint/);
  const e2 = await t.throwsAsync(RpcClient.connect(server.address, { tls: {} }), { instanceOf: RpcError });
  t.is(e2?.code, 'INVALID_ARGUMENT');
  const e3 = await t.throwsAsync(RpcClient.connect(server.address, { tls: { pin: 'abc' } }), { instanceOf: RpcError });
  t.is(e3?.code, 'INVALID_ARGUMENT');
  const colons = server.certFingerprint.toUpperCase().match(/../g)!.join(':');
  const ok = await RpcClient.connect(server.address, { tls: { pin: colons } });
  await ok.close();
  await server.close();
});

test('closing the server makes calls fail with UNAVAILABLE and aborts handlers', async (t) => {
  const { server, client } = await pair();
  let reason: Promise<unknown> | undefined;
  server.unary('hang', async (_req, ctx) => {
    reason = whenAborted(ctx.signal);
    await reason;
    return Buffer.alloc(0);
  });
  const pending = client.call('hang', Buffer.alloc(0));
  await sleep(100);
  await server.close();
  const e = await t.throwsAsync(pending, { instanceOf: RpcError });
  t.is(e?.code, 'UNAVAILABLE');
  t.is(((await reason) as RpcError).code, 'UNAVAILABLE');
  await client.close();
});

test('bad options get INVALID_ARGUMENT', async (t) => {
  const e = await t.throwsAsync(RpcServer.listen({ port: 70000 }), { instanceOf: RpcError });
  t.is(e?.code, 'INVALID_ARGUMENT');
  const e2 = await t.throwsAsync(RpcServer.listen({ tls: { certPath: '/nonexistent.pem', keyPath: '/nonexistent.key' } }), {
    instanceOf: RpcError,
  });
  t.is(e2?.code, 'INVALID_ARGUMENT');
  t.regex(e2!.message, /nonexistent\.pem/);
  const { server, client, close } = await pair();
  server.unary('x', (r) => r);
  t.throws(() => server.unary('', (r) => r), { instanceOf: RpcError });
  await t.throwsAsync(client.call('x', Buffer.alloc(0), { deadlineMs: -1 }), { instanceOf: RpcError });
  await close();
});
