import test from 'ava';
import { RpcClient, RpcError, RpcServer, type ClientInterceptor, type ServerInterceptor } from '../dist/index.js';
import { u32 } from './helpers.ts';

/** A server with `echo` (unary) and `count` (n items), and a client of it with `interceptors`. */
async function setup(client: ClientInterceptor[], server: ServerInterceptor[] = []) {
  const s = await RpcServer.listen({ interceptors: server });
  let handled = 0;
  s.unary('echo', (req) => {
    handled++;
    return req;
  });
  s.serverStreaming('count', async function* (req) {
    handled++;
    for (let i = 0; i < req.readUInt32BE(0); i++) yield u32(i);
  });
  const c = await RpcClient.connect(s.address, { tls: { pin: s.certFingerprint }, interceptors: client });
  return {
    client: c,
    server: s,
    handled: () => handled,
    close: async () => {
      await c.close();
      await s.close();
    },
  };
}

/** Retries a call that failed with UNAVAILABLE, up to 2 attempts; `attempt` counts each one. */
function retryOnUnavailable(attempt: () => number): ClientInterceptor {
  return (next) => async (req) => {
    for (;;) {
      const n = attempt();
      try {
        return await next(req);
      } catch (e) {
        if (!(e instanceof RpcError) || e.code !== 'UNAVAILABLE' || n > 2) throw e;
      }
    }
  };
}

async function collect(items: AsyncIterable<Buffer>): Promise<number[]> {
  const got: number[] = [];
  for await (const item of items) got.push(item.readUInt32BE(0));
  return got;
}

test('client interceptors run in order, the first outermost, for unary and streaming calls', async (t) => {
  const log: string[] = [];
  const tag =
    (name: string): ClientInterceptor =>
    (next) =>
    async (req) => {
      log.push(`${name} > ${req.method} ${req.stream ? 'stream' : 'unary'}`);
      const res = await next(req);
      log.push(`${name} < ${res.method}`);
      return res;
    };
  const { client, close } = await setup([tag('a'), tag('b')]);
  t.is((await client.call('echo', Buffer.from('hi'))).toString(), 'hi');
  t.deepEqual(await collect(client.callStreaming('count', u32(3))), [0, 1, 2]);
  t.deepEqual(log, ['a > echo unary', 'b > echo unary', 'b < echo', 'a < echo', 'a > count stream', 'b > count stream', 'b < count', 'a < count']);
  await close();
});

test('a client interceptor changes the request, rejects with a code, or retries', async (t) => {
  const upper: ClientInterceptor = (next) => async (req) => next({ ...req, message: Buffer.from(Buffer.from(req.message).toString().toUpperCase()) });
  const deny: ClientInterceptor = (next) => async (req) => {
    if (Buffer.from(req.message).toString() === 'SECRET') throw new RpcError('PERMISSION_DENIED', 'no secrets');
    return next(req);
  };
  let attempts = 0;
  const retry = retryOnUnavailable(() => ++attempts);
  const { client, server, handled, close } = await setup([upper, deny, retry]);
  t.is((await client.call('echo', Buffer.from('hello'))).toString(), 'HELLO');
  const e = await t.throwsAsync(client.call('echo', Buffer.from('secret')), { instanceOf: RpcError });
  t.is(e?.code, 'PERMISSION_DENIED');
  t.is(handled(), 1, 'the rejected call never reached the server');
  let failures = 1;
  server.unary('flaky', (req) => {
    if (failures-- > 0) throw new RpcError('UNAVAILABLE', 'try again');
    return req;
  });
  attempts = 0;
  t.is((await client.call('flaky', Buffer.from('x'))).toString(), 'X');
  t.is(attempts, 2, 'retried once');
  await close();
});

test('server interceptors see every call of a registered method, can reject it and time it', async (t) => {
  const seen: string[] = [];
  const timing: ServerInterceptor = (next) => async (req) => {
    const res = await next(req);
    const answer = req.stream ? 'items' : Buffer.from(res.message as Uint8Array).toString();
    seen.push(`${req.method} ${req.stream ? 'stream' : 'unary'} ${answer}`);
    return res;
  };
  const auth: ServerInterceptor = (next) => async (req) => {
    if (req.message.toString() === 'deny') throw new RpcError('UNAUTHENTICATED', `no credentials for ${req.method}`);
    return next(req);
  };
  const { client, server, handled, close } = await setup([], [timing]);
  server.use(auth);
  t.is((await client.call('echo', Buffer.from('ok'))).toString(), 'ok');
  t.deepEqual(await collect(client.callStreaming('count', u32(2))), [0, 1]);
  const e = await t.throwsAsync(client.call('echo', Buffer.from('deny')), { instanceOf: RpcError });
  t.is(e?.code, 'UNAUTHENTICATED');
  t.is(e?.message, 'no credentials for echo');
  t.is(handled(), 2, 'the handler did not run for the rejected call');
  t.deepEqual(seen, ['echo unary ok', 'count stream items']);
  await close();
});

test('a streaming call through interceptors: retried on its first failure, cancelled on break, deadline across attempts', async (t) => {
  let attempts = 0;
  const retry = retryOnUnavailable(() => ++attempts);
  const { client, server, close } = await setup([retry]);
  let failures = 1;
  let cancelled = 0;
  server.serverStreaming('flaky', async function* (req, ctx) {
    if (failures-- > 0) throw new RpcError('UNAVAILABLE', 'try again');
    ctx.signal.addEventListener('abort', () => cancelled++);
    for (let i = 0; ; i++) {
      yield u32(i);
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  const got: number[] = [];
  for await (const item of client.callStreaming('flaky', Buffer.alloc(0))) {
    got.push(item.readUInt32BE(0));
    if (got.length === 3) break;
  }
  t.deepEqual(got, [0, 1, 2]);
  t.is(attempts, 2, 'the stream was retried at its first failure');
  for (let i = 0; i < 100 && cancelled === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.is(cancelled, 1, 'breaking out of the loop cancelled the call on the server');
  // A slow interceptor uses up the deadline: the call is not sent with a fresh one.
  const slow: ClientInterceptor = (next) => async (req) => {
    await new Promise((r) => setTimeout(r, 80));
    return next(req);
  };
  const other = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint }, interceptors: [slow] });
  const e = await t.throwsAsync(other.call('echo', Buffer.from('x'), { deadlineMs: 50 }), { instanceOf: RpcError });
  t.is(e?.code, 'DEADLINE_EXCEEDED');
  // What an interceptor throws reaches the caller as an RpcError: a stable code is kept.
  const coded: ClientInterceptor = () => async () => {
    throw Object.assign(new Error('nope'), { code: 'PERMISSION_DENIED' });
  };
  const third = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint }, interceptors: [coded] });
  const e2 = await t.throwsAsync(third.call('echo', Buffer.from('x')), { instanceOf: RpcError });
  t.is(e2?.code, 'PERMISSION_DENIED');
  await other.close();
  await third.close();
  await close();
});

test('a server interceptor whose outer function throws fails that call only', async (t) => {
  let calls = 0;
  const broken: ServerInterceptor = () => {
    if (calls++ === 0) throw new RpcError('INTERNAL', 'interceptor setup failed');
    return (req) => Promise.reject(new RpcError('ABORTED', `not now: ${req.method}`));
  };
  const { client, close } = await setup([], [broken]);
  const e = await t.throwsAsync(client.call('echo', Buffer.from('x')), { instanceOf: RpcError });
  t.is(e?.code, 'INTERNAL');
  const e2 = await t.throwsAsync(client.call('echo', Buffer.from('y')), { instanceOf: RpcError });
  t.is(e2?.code, 'ABORTED', 'the server goes on');
  await close();
});

test('interceptors must be functions', async (t) => {
  const server = await RpcServer.listen();
  const e = await t.throwsAsync(
    RpcClient.connect(server.address, { tls: { pin: server.certFingerprint }, interceptors: [5 as never] }),
    { instanceOf: RpcError },
  );
  t.is(e?.code, 'INVALID_ARGUMENT');
  t.is(e?.message, 'interceptors[0] must be a function, got 5 (number)');
  t.throws(() => server.use('x' as never), { instanceOf: RpcError, message: 'interceptor must be a function, got "x" (string)' });
  await server.close();
});

test('a streaming response an interceptor drops without reading is cancelled on the server once collected (the native handle\'s finalizer)', async (t) => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return t.fail('ava runs node with --expose-gc (package.json)');
  const server = await RpcServer.listen();
  let reason: unknown;
  server.serverStreaming('forever', async function* (_req, ctx) {
    ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason), { once: true });
    for (let i = 0; !ctx.signal.aborted; i++) {
      yield u32(i);
      await new Promise((r) => setTimeout(r, 10));
    }
  });
  // Calls next (the call starts), then answers with items of its own: the call's are dropped.
  const substitute: ClientInterceptor = (next) => async (req) => {
    const res = await next(req);
    return { ...res, message: (async function* () { yield Buffer.from('cached'); })() } as typeof res;
  };
  const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint }, interceptors: [substitute] });
  try {
    const items: string[] = [];
    for await (const item of client.callStreaming('forever', Buffer.alloc(0))) items.push(item.toString());
    t.deepEqual(items, ['cached']);
    for (let i = 0; i < 100 && reason === undefined; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 20));
    }
    t.true(reason instanceof RpcError, 'the handler was stopped');
    t.is((reason as RpcError).code, 'CANCELLED');
  } finally {
    await client.close();
    await server.close();
  }
});
