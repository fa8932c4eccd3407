/**
 * The rpcnet TypeScript server of the benchmark, run as its own process by `benchmark/run.ts`:
 * {@link RpcServer} on 127.0.0.1 with its self-signed certificate, serving the unary `echo` (64-byte
 * response) and the server-streaming `stream` (1 KiB items, as many as the request's count). It
 * prints `{"addr","fingerprint"}` as one JSON line and serves until killed or until stdin closes.
 * @module
 */
import { RpcServer } from '../dist/index.js';
import {
  exitWhenParentGoes,
  ITEM_SIZE,
  printJsonLine,
  STREAM_METHOD,
  streamCount,
  UNARY_METHOD,
  UNARY_SIZE,
  type ServerReady,
} from './common.ts';

exitWhenParentGoes();

const response = Buffer.alloc(UNARY_SIZE, 0x5a);
const item = Buffer.alloc(ITEM_SIZE, 0xa5);

const server = await RpcServer.listen({ host: '127.0.0.1', port: 0 });
server.unary(UNARY_METHOD, () => response);
server.serverStreaming(STREAM_METHOD, async function* (request, ctx) {
  const count = streamCount(request);
  for (let i = 0; i < count && !ctx.signal.aborted; i++) yield item;
});

const ready: ServerReady = { addr: server.address, fingerprint: server.certFingerprint };
printJsonLine(ready);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.close().finally(() => process.exit(0));
  });
}
