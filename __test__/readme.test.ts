/**
 * README "Use", the typed protobuf service with metadata and interceptors: the same code, run,
 * with what its comments promise asserted (a README example that does not work is a bug).
 */
import test from 'ava';
import { createClient, fromProtobuf, registerService, RpcClient, RpcError, RpcServer } from '../dist/index.js';
import type { ClientInterceptor, ServerInterceptor } from '../dist/index.js';
import { Greeter } from './proto/greeter_pb.ts';

test('README: a typed protobuf service with metadata and an interceptor on each side', async (t) => {
  const requireToken: ServerInterceptor = (next) => async (req) => {
    if (req.header.get('authorization') !== 'Bearer s3cret') throw new RpcError('UNAUTHENTICATED', 'bad token');
    return next(req);
  };
  const server = await RpcServer.listen({ interceptors: [requireToken] });
  const greeter = fromProtobuf(Greeter);
  registerService(server, greeter, {
    sayHello: (req, ctx) => {
      ctx.responseHeader.set('x-tenant', ctx.metadata.get('x-tenant') ?? 'none');
      return { message: `hello ${req.name}` };
    },
    count: async function* (req, ctx) {
      for (let n = 0; n < req.count; n++) yield { n };
      ctx.responseTrailer.set('x-count', String(req.count));
    },
  });
  const addToken: ClientInterceptor = (next) => (req) => {
    req.header.set('authorization', 'Bearer s3cret');
    return next(req);
  };
  const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint }, interceptors: [addToken] });
  const printed: unknown[] = [];
  const log = (v: unknown) => printed.push(v);
  try {
    const typed = createClient(greeter, client);
    const reply = await typed.sayHello({ name: 'ada' }, { headers: { 'x-tenant': 'acme' }, onHeader: (h) => log(h.get('x-tenant')) });
    t.is(reply.message, 'hello ada');
    for await (const { n } of typed.count({ count: 3 }, { onTrailer: (tr) => log(tr.get('x-count')) })) log(n);
    t.deepEqual(printed, ['acme', 0, 1, 2, '3']);
    // Without the interceptor's token, the server's interceptor refuses the call.
    const anonymous = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint } });
    try {
      const e = await t.throwsAsync(createClient(greeter, anonymous).sayHello({ name: 'eve' }), { instanceOf: RpcError });
      t.is(e.code, 'UNAUTHENTICATED');
    } finally {
      await anonymous.close();
    }
  } finally {
    await client.close();
    await server.close();
  }
});
