/**
 * Metadata over real QUIC (PROTOCOL.md section 5.6): request headers to handlers, response
 * headers and trailers to clients, `-bin` values, the size limit, errors, interceptors and typed
 * clients. Metadata across migrations, failovers and resumes is asserted in migration.test.ts
 * and directors.test.ts (the demo's `tokens` stream carries it).
 */
import test from 'ava';
import {
  createClient,
  decodeBinaryHeader,
  encodeBinaryHeader,
  fromProtobuf,
  registerService,
  RpcClient,
  RpcError,
  RpcServer,
  type ClientInterceptor,
  type ServerInterceptor,
} from '../dist/index.js';
import { pair } from './helpers.ts';
import { Greeter } from './proto/greeter_pb.ts';

test('request headers reach the handler; response headers and trailers reach onHeader and onTrailer', async (t) => {
  const { server, client, close } = await pair();
  try {
    let seen: [string, string][] = [];
    server.unary('echo', (req, ctx) => {
      seen = [...ctx.metadata];
      ctx.responseHeader.set('x-served-by', 'unit');
      ctx.responseTrailer.append('x-cost', '3');
      ctx.responseTrailer.append('x-cost', '4');
      return req;
    });
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const reply = await client.call('echo', Buffer.from('hi'), {
      headers: [
        ['Authorization', 'Bearer abc'],
        ['X-Tenant', 'acme'],
      ],
      onHeader: (h) => (header = h),
      onTrailer: (tr) => (trailer = tr),
    });
    t.is(reply.toString(), 'hi');
    t.deepEqual(seen, [
      ['authorization', 'Bearer abc'],
      ['x-tenant', 'acme'],
    ], 'keys arrive lowercase, values unchanged');
    t.is(header?.get('x-served-by'), 'unit');
    t.is(trailer?.get('x-cost'), '3, 4', 'a repeated key keeps both values');
  } finally {
    await close();
  }
});

test('-bin keys carry bytes (base64 in Headers, raw on the wire)', async (t) => {
  const { server, client, close } = await pair();
  try {
    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
    server.unary('bin', (_req, ctx) => {
      const got = decodeBinaryHeader(ctx.metadata.get('trace-bin') ?? '');
      ctx.responseTrailer.set('echo-bin', encodeBinaryHeader(got));
      return Buffer.from(got);
    });
    let trailer: Headers | undefined;
    const reply = await client.call('bin', Buffer.alloc(0), { headers: { 'trace-bin': encodeBinaryHeader(bytes) }, onTrailer: (tr) => (trailer = tr) });
    t.deepEqual(reply, bytes, 'the handler decoded the bytes');
    t.deepEqual(Buffer.from(decodeBinaryHeader(trailer!.get('echo-bin')!)), bytes);
    const e = await t.throwsAsync(client.call('bin', Buffer.alloc(0), { headers: { 'trace-bin': 'not base64!' } }), { instanceOf: RpcError });
    t.is(e.code, 'INVALID_ARGUMENT');
  } finally {
    await close();
  }
});

test('streaming: the headers come before the first item, the trailers after the last', async (t) => {
  const { server, client, close } = await pair();
  try {
    server.serverStreaming('count', async function* (_req, ctx) {
      ctx.responseHeader.set('x-total', '3');
      for (let i = 0; i < 3; i++) yield Buffer.from([i]);
      ctx.responseTrailer.set('x-sum', '3');
    });
    const events: string[] = [];
    const stream = client.callStreaming('count', Buffer.alloc(0), {
      onHeader: (h) => events.push(`header ${h.get('x-total')}`),
      onTrailer: (tr) => events.push(`trailer ${tr.get('x-sum')}`),
    });
    for await (const item of stream) events.push(`item ${item[0]}`);
    t.deepEqual(events, ['header 3', 'item 0', 'item 1', 'item 2', 'trailer 3']);
  } finally {
    await close();
  }
});

test('an error carries the headers and trailers; a handler adds trailers through RpcError.metadata', async (t) => {
  const { server, client, close } = await pair();
  try {
    server.unary('deny', (_req, ctx) => {
      ctx.responseHeader.set('x-policy', 'v2');
      throw new RpcError('PERMISSION_DENIED', 'tenant acme may not', { metadata: { 'x-reason': 'quota' } });
    });
    server.serverStreaming('fail-late', async function* (_req, ctx) {
      ctx.responseHeader.set('x-started', 'yes');
      yield Buffer.from('a');
      ctx.responseTrailer.set('x-at', '1');
      throw new RpcError('ABORTED', 'conflict');
    });
    let called = 0;
    const e = await t.throwsAsync(client.call('deny', Buffer.alloc(0), { onHeader: () => called++, onTrailer: () => called++ }), { instanceOf: RpcError });
    t.is(e.code, 'PERMISSION_DENIED');
    t.is(e.metadata.get('x-policy'), 'v2', 'the headers');
    t.is(e.metadata.get('x-reason'), 'quota', 'the trailers');
    t.is(called, 0, 'a failed call runs neither callback (as connect-es)');
    const items: string[] = [];
    const e2 = await t.throwsAsync(
      (async () => {
        for await (const item of client.callStreaming('fail-late', Buffer.alloc(0))) items.push(item.toString());
      })(),
      { instanceOf: RpcError },
    );
    t.deepEqual(items, ['a']);
    t.is(e2.code, 'ABORTED');
    t.is(e2.metadata.get('x-started'), 'yes');
    t.is(e2.metadata.get('x-at'), '1');
  } finally {
    await close();
  }
});

test('a handler whose response metadata is over 8 KiB fails with INTERNAL; the server goes on', async (t) => {
  const { server, client, close } = await pair();
  try {
    server.unary('big', (req, ctx) => {
      ctx.responseHeader.set('x-big', 'v'.repeat(9000));
      return req;
    });
    server.serverStreaming('big-stream', async function* (_req, ctx) {
      ctx.responseTrailer.set('x-big', 'v'.repeat(9000));
      yield Buffer.from('a');
    });
    const e = await t.throwsAsync(client.call('big', Buffer.alloc(0)), { instanceOf: RpcError });
    t.is(e.code, 'INTERNAL');
    t.regex(e.message, /response headers are \d+ bytes, more than the maximum metadata size of 8192 bytes/);
    const items: string[] = [];
    const e2 = await t.throwsAsync(
      (async () => {
        for await (const item of client.callStreaming('big-stream', Buffer.alloc(0))) items.push(item.toString());
      })(),
      { instanceOf: RpcError },
    );
    t.deepEqual(items, ['a']);
    t.is(e2.code, 'INTERNAL');
    t.regex(e2.message, /response trailers/);
  } finally {
    await close();
  }
});

test('metadata over 8 KiB is refused while decoding with RESOURCE_EXHAUSTED; bad keys and values before sending', async (t) => {
  const { server, client, close } = await pair();
  try {
    let ran = 0;
    server.unary('echo', (req) => {
      ran++;
      return req;
    });
    const big = { 'x-big': 'v'.repeat(9000) };
    const e = await t.throwsAsync(client.call('echo', Buffer.alloc(0), { headers: big }), { instanceOf: RpcError });
    t.is(e.code, 'RESOURCE_EXHAUSTED');
    t.regex(e.message, /metadata of \d+ bytes exceeds the maximum metadata size of 8192 bytes/);
    t.is(ran, 0, 'the handler never ran');
    // Values outside printable ASCII (0x20..0x7e) for a key without -bin: refused by the client.
    const e2 = await t.throwsAsync(client.call('echo', Buffer.alloc(0), { headers: { 'x-name': 'héllo' } }), { instanceOf: RpcError });
    t.is(e2.code, 'INVALID_ARGUMENT');
    t.regex(e2.message, /x-name/);
    const e3 = await t.throwsAsync(client.call('echo', Buffer.alloc(0), { headers: 'authorization' as never }), { instanceOf: RpcError });
    t.is(e3.code, 'INVALID_ARGUMENT');
    // The connection is fine afterwards.
    t.is((await client.call('echo', Buffer.from('ok'), { headers: { 'x-small': '1' } })).toString(), 'ok');
  } finally {
    await close();
  }
});

test('interceptors read and add metadata: auth on the client, a check on the server', async (t) => {
  const requireToken: ServerInterceptor = (next) => async (req) => {
    if (req.header.get('authorization') !== 'Bearer good') throw new RpcError('UNAUTHENTICATED', 'missing or wrong token');
    req.context.responseHeader.set('x-user', 'ada');
    return next(req);
  };
  const server = await RpcServer.listen({ interceptors: [requireToken] });
  server.unary('whoami', () => Buffer.from('ok'));
  let user = null as string | null;
  const addToken: ClientInterceptor = (next) => async (req) => {
    req.header.set('authorization', 'Bearer good');
    const res = await next(req);
    user = res.header.get('x-user');
    return res;
  };
  const authed = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint }, interceptors: [addToken] });
  const anonymous = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint } });
  try {
    t.is((await authed.call('whoami', Buffer.alloc(0))).toString(), 'ok');
    t.is(user, 'ada', 'the interceptor read the response header');
    const e = await t.throwsAsync(anonymous.call('whoami', Buffer.alloc(0)), { instanceOf: RpcError });
    t.is(e.code, 'UNAUTHENTICATED');
  } finally {
    await authed.close();
    await anonymous.close();
    await server.close();
  }
});

test('a typed protobuf client passes headers and gets response metadata', async (t) => {
  const { server, client, close } = await pair();
  try {
    registerService(server, fromProtobuf(Greeter), {
      sayHello: (req, ctx) => {
        ctx.responseHeader.set('x-greeted', req.name);
        return { message: `hello ${req.name} from ${ctx.metadata.get('x-tenant')}` };
      },
      count: async function* () {},
    });
    const greeter = createClient(fromProtobuf(Greeter), client);
    let header: Headers | undefined;
    const reply = await greeter.sayHello({ name: 'ada' }, { headers: { 'x-tenant': 'acme' }, onHeader: (h) => (header = h) });
    t.is(reply.message, 'hello ada from acme');
    t.is(header?.get('x-greeted'), 'ada');
  } finally {
    await close();
  }
});
