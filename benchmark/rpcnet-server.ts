/**
 * The rpcnet TypeScript server of the benchmark, run as its own process by `benchmark/run.ts`:
 * {@link RpcServer} on 127.0.0.1 with its self-signed certificate, serving the unary `echo` (64-byte
 * response) and the server-streaming `stream` (1 KiB items, as many as the request's count;
 * `serveBenchMethods` in common.ts, shared with the director benchmark's worker), the bidi
 * `bidi-echo` (every request message back as an item; plain servers only), and the protobuf
 * scenario's `Greeter` through the typed API (`fromProtobuf` + `registerService`), as an
 * application would. It prints `{"addr","fingerprint"}` as one JSON line and serves until killed
 * or until stdin closes.
 * @module
 */
import { fromProtobuf, registerService, RpcServer } from '../dist/index.js';
import { Greeter } from '../__test__/proto/greeter_pb.ts';
import { BIDI_METHOD, exitWhenParentGoes, greeting, printJsonLine, serveBenchMethods, type ServerReady } from './common.ts';

exitWhenParentGoes();

const server = await RpcServer.listen({ host: '127.0.0.1', port: 0 });
serveBenchMethods(server);
server.bidiStreaming(BIDI_METHOD, async function* (requests) {
  for await (const request of requests) yield request;
});
registerService(server, fromProtobuf(Greeter), {
  sayHello: (request) => ({ message: greeting(request.name) }),
  // Not measured; registerService wants a handler for every method of the service.
  count: async function* (request, ctx) {
    for (let n = 0; n < request.count && !ctx.signal.aborted; n++) yield { n };
  },
});

const ready: ServerReady = { addr: server.address, fingerprint: server.certFingerprint };
printJsonLine(ready);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.close().finally(() => process.exit(0));
  });
}
