/**
 * The rpcnet TypeScript server of the benchmark, run as its own process by `benchmark/run.ts`:
 * {@link RpcServer} on 127.0.0.1 with its self-signed certificate, serving the unary `echo` (64-byte
 * response) and the server-streaming `stream` (1 KiB items, as many as the request's count;
 * `serveBenchMethods` in common.ts, shared with the director benchmark's worker). It
 * prints `{"addr","fingerprint"}` as one JSON line and serves until killed or until stdin closes.
 * @module
 */
import { RpcServer } from '../dist/index.js';
import { exitWhenParentGoes, printJsonLine, serveBenchMethods, type ServerReady } from './common.ts';

exitWhenParentGoes();

const server = await RpcServer.listen({ host: '127.0.0.1', port: 0 });
serveBenchMethods(server);

const ready: ServerReady = { addr: server.address, fingerprint: server.certFingerprint };
printJsonLine(ready);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.close().finally(() => process.exit(0));
  });
}
