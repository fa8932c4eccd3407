import test from 'ava';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  createClient,
  defineService,
  fromProtobuf,
  json,
  raw,
  registerService,
  RpcClient,
  RpcError,
  RpcServer,
  serverStreaming,
  unary,
} from '../dist/index.js';
import { Greeter, HelloRequestSchema } from './proto/greeter_pb.ts';

async function pairOf() {
  const server = await RpcServer.listen();
  const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint } });
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

test('service definitions and handlers are checked', async (t) => {
  const { server, close } = await pairOf();
  t.throws(() => defineService('not a name', {}), { instanceOf: RpcError, message: /typeName must be <package>\.<Service>/ });
  const calc = defineService('example.Calc', { add: unary(json<number>(), json<number>()) });
  // @ts-expect-error a handler is required for every method
  t.throws(() => registerService(server, calc, {}), { instanceOf: RpcError, message: 'handlers.add must be a function, got undefined' });
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
}
