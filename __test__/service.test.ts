import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  bidiStreaming,
  clientStreaming,
  createClient,
  defineService,
  Director,
  fromProtobuf,
  json,
  raw,
  registerService,
  RpcClient,
  RpcError,
  RpcServer,
  RpcWorker,
  serverStreaming,
  unary,
} from '../dist/index.js';
import type { ClientInterceptor, ServerInterceptor } from '../dist/index.js';
import { Chatter, Greeter, HelloRequestSchema, type HelloReply } from './proto/greeter_pb.ts';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-service-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

async function pairOf(interceptors: { server?: ServerInterceptor[]; client?: ClientInterceptor[] } = {}) {
  const server = await RpcServer.listen({ interceptors: interceptors.server ?? [] });
  const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint }, interceptors: interceptors.client ?? [] });
  return {
    server,
    client,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}

test('a protobuf-es service: typed client and handlers, unary and server-streaming, gRPC method names', async (t) => {
  const { server, client, close } = await pairOf();
  const greeter = fromProtobuf(Greeter);
  registerService(server, greeter, {
    sayHello: (req) => ({ message: `hello ${req.name}` }),
    count: async function* (req) {
      for (let n = 0; n < req.count; n++) yield { n };
    },
  });
  const typed = createClient(greeter, client);
  const reply = await typed.sayHello({ name: 'ada' });
  t.is(reply.message, 'hello ada');
  t.is(reply.$typeName, 'rpcnet.example.v1.HelloReply');
  const ns: number[] = [];
  for await (const r of typed.count({ count: 3 })) ns.push(r.n);
  t.deepEqual(ns, [0, 1, 2]);
  // On the wire: /<package>.<Service>/<Method>, protobuf binary.
  t.is(greeter.methods.sayHello.path, '/rpcnet.example.v1.Greeter/SayHello');
  const bytes = await client.call('/rpcnet.example.v1.Greeter/SayHello', toBinary(HelloRequestSchema, create(HelloRequestSchema, { name: 'raw' })));
  t.true(bytes.includes(Buffer.from('hello raw')));
  // A request that is not a HelloRequest: INVALID_ARGUMENT naming the method.
  const e = await t.throwsAsync(client.call('/rpcnet.example.v1.Greeter/SayHello', Buffer.from([0xff, 0xff, 0xff])), { instanceOf: RpcError });
  t.is(e?.code, 'INVALID_ARGUMENT');
  t.regex(e!.message, /cannot decode the request of \/rpcnet\.example\.v1\.Greeter\/SayHello \(rpcnet\.example\.v1\.HelloRequest\)/);
  await close();
});

test('a plain TypeScript service with JSON and raw codecs', async (t) => {
  const { server, client, close } = await pairOf();
  const calc = defineService('example.Calc', {
    add: unary(json<{ a: number; b: number }>(), json<{ sum: number }>()),
    digits: serverStreaming(json<{ n: number }>(), json<number>()),
    echo: unary(raw, raw),
  });
  registerService(server, calc, {
    add: ({ a, b }) => ({ sum: a + b }),
    digits: function* ({ n }) {
      for (const d of String(n)) yield Number(d);
    },
    echo: (bytes) => bytes,
  });
  const typed = createClient(calc, client);
  t.deepEqual(await typed.add({ a: 2, b: 40 }), { sum: 42 });
  const ds: number[] = [];
  for await (const d of typed.digits({ n: 907 })) ds.push(d);
  t.deepEqual(ds, [9, 0, 7]);
  t.is((await typed.echo(Buffer.from('as is'))).toString(), 'as is');
  t.is(calc.methods.add.path, '/example.Calc/add');
  // A value JSON cannot encode fails before anything is sent.
  const e = await t.throwsAsync(typed.add(undefined as never), { instanceOf: RpcError });
  t.is(e?.code, 'INVALID_ARGUMENT');
  await close();
});

test('a protobuf-es service: typed client-streaming and bidi over QUIC, through interceptors on both sides', async (t) => {
  const seenByClient: string[] = [];
  const seenByServer: string[] = [];
  const { server, client, close } = await pairOf({
    client: [
      (next) => (req) => {
        seenByClient.push(`${req.method} stream=${req.stream} requests=${req.requests !== undefined}`);
        req.header.set('x-tenant', 'acme');
        return next(req);
      },
    ],
    server: [
      (next) => (req) => {
        seenByServer.push(`${req.method} stream=${req.stream} tenant=${req.header.get('x-tenant')}`);
        return next(req);
      },
    ],
  });
  try {
    const chatter = fromProtobuf(Chatter);
    t.is(chatter.methods.sayHelloAll.kind, 'client_streaming');
    t.is(chatter.methods.chat.kind, 'bidi_streaming');
    t.is(chatter.methods.sayHelloAll.path, '/rpcnet.example.v1.Chatter/SayHelloAll');
    t.is(chatter.methods.chat.path, '/rpcnet.example.v1.Chatter/Chat');
    registerService(server, chatter, {
      sayHelloAll: async (requests, ctx) => {
        const names: string[] = [];
        for await (const req of requests) names.push(req.name);
        ctx.responseTrailer.set('x-count', String(names.length));
        return { message: `hello ${names.join(', ')} from ${ctx.metadata.get('x-tenant')}` };
      },
      chat: async function* (requests, ctx) {
        ctx.responseHeader.set('x-chat', 'open');
        for await (const req of requests) yield { message: `hi ${req.name}` };
      },
    });
    const typed = createClient(chatter, client);

    // Client-streaming: an async generator of init shapes, and a plain array.
    async function* names() {
      for (const name of ['ada', 'grace', 'edsger']) yield { name };
    }
    let count = null as string | null;
    const all = await typed.sayHelloAll(names(), { onTrailer: (tr) => (count = tr.get('x-count')) });
    t.is(all.$typeName, 'rpcnet.example.v1.HelloReply');
    t.is(all.message, 'hello ada, grace, edsger from acme');
    t.is(count, '3');
    t.is((await typed.sayHelloAll([create(HelloRequestSchema, { name: 'barbara' })])).message, 'hello barbara from acme');
    t.is((await typed.sayHelloAll([])).message, 'hello  from acme');

    // Bidi: each request is sent only after the previous reply arrived, so this only finishes
    // if both directions stream.
    let replied: () => void = () => {};
    async function* talk() {
      for (const name of ['ada', 'grace', 'edsger']) {
        yield { name };
        await new Promise<void>((r) => (replied = r));
      }
    }
    let header = null as string | null;
    const replies: string[] = [];
    for await (const reply of typed.chat(talk(), { onHeader: (h) => (header = h.get('x-chat')) })) {
      t.is(reply.$typeName, 'rpcnet.example.v1.HelloReply');
      replies.push(reply.message);
      replied();
    }
    t.deepEqual(replies, ['hi ada', 'hi grace', 'hi edsger']);
    t.is(header, 'open');

    // The interceptors saw every call with its streaming requests.
    const allPath = '/rpcnet.example.v1.Chatter/SayHelloAll';
    const chatPath = '/rpcnet.example.v1.Chatter/Chat';
    t.deepEqual(seenByClient, [
      `${allPath} stream=false requests=true`,
      `${allPath} stream=false requests=true`,
      `${allPath} stream=false requests=true`,
      `${chatPath} stream=true requests=true`,
    ]);
    t.deepEqual(seenByServer, [
      `${allPath} stream=false tenant=acme`,
      `${allPath} stream=false tenant=acme`,
      `${allPath} stream=false tenant=acme`,
      `${chatPath} stream=true tenant=acme`,
    ]);

    // Untyped bytes that are not a HelloRequest: the handler's iteration throws INVALID_ARGUMENT.
    const e = await t.throwsAsync(client.callClientStreaming(allPath, [Buffer.from([0xff, 0xff, 0xff])]), { instanceOf: RpcError });
    t.is(e?.code, 'INVALID_ARGUMENT');
    t.regex(e!.message, /cannot decode the request of \/rpcnet\.example\.v1\.Chatter\/SayHelloAll \(rpcnet\.example\.v1\.HelloRequest\)/);
  } finally {
    await close();
  }
});

test('a plain TypeScript service with JSON codecs: client-streaming sum and concat, bidi running totals', async (t) => {
  const { server, client, close } = await pairOf();
  try {
    const calc = defineService('example.Calc', {
      sum: clientStreaming(json<number>(), json<{ sum: number; count: number }>()),
      concat: clientStreaming(raw, raw),
      totals: bidiStreaming(json<{ add: number }>(), json<{ total: number }>()),
    });
    t.is(calc.methods.sum.kind, 'client_streaming');
    t.is(calc.methods.totals.kind, 'bidi_streaming');
    t.is(calc.methods.totals.path, '/example.Calc/totals');
    let stopped = 0;
    registerService(server, calc, {
      sum: async (numbers) => {
        let sum = 0;
        let count = 0;
        for await (const n of numbers) {
          sum += n;
          count++;
        }
        return { sum, count };
      },
      concat: async (parts) => {
        const all: Buffer[] = [];
        for await (const part of parts) all.push(part);
        return Buffer.concat(all);
      },
      totals: async function* (adds, ctx) {
        ctx.signal.addEventListener('abort', () => stopped++, { once: true });
        let total = 0;
        for await (const { add } of adds) yield { total: (total += add) };
      },
    });
    const typed = createClient(calc, client);
    t.deepEqual(await typed.sum([1, 2, 3, 4]), { sum: 10, count: 4 });
    async function* many() {
      for (let i = 1; i <= 1000; i++) yield i;
    }
    t.deepEqual(await typed.sum(many()), { sum: 500500, count: 1000 });
    t.is((await typed.concat([Buffer.from('con'), Buffer.from('cat'), new Uint8Array([0x21])])).toString(), 'concat!');

    const totals: number[] = [];
    for await (const { total } of typed.totals([{ add: 1 }, { add: 2 }, { add: 3 }])) totals.push(total);
    t.deepEqual(totals, [1, 3, 6]);

    // Breaking out of a typed bidi loop cancels the call: the handler is aborted.
    async function* forever() {
      for (let i = 0; ; i++) yield { add: i };
    }
    for await (const { total } of typed.totals(forever())) if (total > 100) break;
    for (let i = 0; i < 100 && stopped === 0; i++) await new Promise((r) => setTimeout(r, 20));
    t.is(stopped, 1);

    // A request JSON cannot encode fails the call with INVALID_ARGUMENT, on the client.
    const e = await t.throwsAsync(typed.sum([1, undefined as never, 3]), { instanceOf: RpcError });
    t.is(e?.code, 'INVALID_ARGUMENT');
    t.regex(e!.message, /cannot encode the request of \/example\.Calc\/sum \(json\)/);
    const e2 = await t.throwsAsync(
      async () => {
        for await (const _ of typed.totals([{ add: 1 }, undefined as never])) void _;
      },
      { instanceOf: RpcError },
    );
    t.is(e2?.code, 'INVALID_ARGUMENT');
    // Requests that are not iterable: client-streaming rejects, bidi throws at once.
    const e3 = await t.throwsAsync(typed.sum(5 as never), { instanceOf: RpcError });
    t.is(e3?.code, 'INVALID_ARGUMENT');
    t.is(e3?.message, 'requests must be an iterable or async iterable of json messages, got 5 (number)');
    t.throws(() => typed.totals(null as never), { instanceOf: RpcError, message: /^requests must be an iterable or async iterable of json messages/ });
    // A handler's response JSON cannot encode: INTERNAL.
    const broken = defineService('example.Broken', { all: clientStreaming(json<number>(), json<number>()) });
    registerService(server, broken, { all: async () => undefined as never });
    const e4 = await t.throwsAsync(createClient(broken, client).all([1]), { instanceOf: RpcError });
    t.is(e4?.code, 'INTERNAL');
  } finally {
    await close();
  }
});

test('client-streaming and bidi methods on an RpcWorker, through a director', async (t) => {
  const director = await Director.start({ clusterDir, shutdownOnSigterm: false });
  const worker = await RpcWorker.start({ id: 'w', director: director.mgmtAddress, clusterDir, drainOnSigterm: false });
  const client = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  try {
    t.true(await director.waitForWorkers(1));
    const svc = defineService('example.Mixed', {
      ping: unary(json<number>(), json<number>()),
      all: clientStreaming(json<number>(), json<number>()),
      totals: bidiStreaming(json<number>(), json<number>()),
    });
    registerService(worker, svc, {
      ping: (n) => n,
      all: async (requests) => {
        let sum = 0;
        for await (const n of requests) sum += n;
        return sum;
      },
      totals: async function* (requests) {
        let sum = 0;
        for await (const n of requests) yield (sum += n);
      },
    });
    const typed = createClient(svc, client);
    t.is(await typed.all([1, 2, 3, 4]), 10);
    const totals: number[] = [];
    for await (const total of typed.totals([5, 6, 7])) totals.push(total);
    t.deepEqual(totals, [5, 11, 18]);
  } finally {
    await client.close();
    await worker.close();
    await director.close();
  }
});

test('service definitions and handlers are checked', async (t) => {
  const { server, client, close } = await pairOf();
  t.throws(() => defineService('not a name', {}), { instanceOf: RpcError, message: /typeName must be <package>\.<Service>/ });
  const calc = defineService('example.Calc', { add: unary(json<number>(), json<number>()) });
  // @ts-expect-error a handler is required for every method
  t.throws(() => registerService(server, calc, {}), { instanceOf: RpcError, message: 'handlers.add must be a function, got undefined' });
  t.throws(() => defineService('example.Calc', { add: { kind: 'duplex', input: raw, output: raw } as never }), {
    instanceOf: RpcError,
    message: 'method add of example.Calc must be made with unary(), serverStreaming(), clientStreaming() or bidiStreaming()',
  });
  // Nothing is registered unless every method can be.
  const two = defineService('example.Two', { first: unary(raw, raw), second: bidiStreaming(raw, raw) });
  t.throws(() => registerService(server, two, { first: (b) => b, second: 'no' as never }), {
    instanceOf: RpcError,
    message: 'handlers.second must be a function, got "no" (string)',
  });
  const e = await t.throwsAsync(client.call('/example.Two/first', Buffer.from('x')), { instanceOf: RpcError });
  t.is(e?.code, 'UNIMPLEMENTED');
  await close();
});

// Type-level checks (tsc --noEmit runs on this file): a handler or a request of the wrong shape
// does not compile.
export function typeChecks(server: RpcServer, client: RpcClient): void {
  const greeter = fromProtobuf(Greeter);
  registerService(server, greeter, {
    // @ts-expect-error sayHello must answer a HelloReply (message: string)
    sayHello: () => ({ message: 5 }),
    count: function* () {},
  });
  const typed = createClient(greeter, client);
  // @ts-expect-error HelloRequest has no field "nom"
  void typed.sayHello({ nom: 'x' });
  // @ts-expect-error count streams; it does not return a Promise
  void typed.count({ count: 1 }).then;

  const chatter = fromProtobuf(Chatter);
  registerService(server, chatter, {
    // @ts-expect-error sayHelloAll is client-streaming: it answers one reply, it does not stream
    sayHelloAll: async function* () {
      yield { message: 'x' };
    },
    // @ts-expect-error chat is bidi: it streams its replies, it does not answer one
    chat: async () => ({ message: 'x' }),
  });
  registerService(server, chatter, {
    // @ts-expect-error sayHelloAll gets the requests as an AsyncIterable, not one HelloRequest
    sayHelloAll: (req) => ({ message: req.name }),
    // @ts-expect-error each reply of chat is a HelloReply (message: string)
    chat: async function* (requests) {
      for await (const r of requests) yield { message: r.name.length };
    },
  });
  const typedChat = createClient(chatter, client);
  // @ts-expect-error sayHelloAll takes an iterable of requests, not one
  void typedChat.sayHelloAll({ name: 'x' });
  // @ts-expect-error HelloRequest has no field "nom"
  void typedChat.sayHelloAll([{ nom: 'x' }]);
  // @ts-expect-error chat streams its replies; it does not return a Promise
  void typedChat.chat([{ name: 'x' }]).then;
  // The shapes that do compile: client-streaming resolves to one reply, bidi yields replies.
  const one: Promise<HelloReply> = typedChat.sayHelloAll([{ name: 'x' }]);
  const many: AsyncIterable<HelloReply> = typedChat.chat((async function* () {})());
  void one;
  void many;
}
