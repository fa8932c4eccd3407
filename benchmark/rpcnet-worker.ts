/**
 * The worker of the relay measurement in `directors.ts`, run as its own process: an
 * {@link RpcWorker} registered with one director (`--director`, its management address;
 * `--cluster-dir`, the cluster's CA and secret), serving the same two methods as
 * `rpcnet-server.ts` (`serveBenchMethods`), so that a client of the director measures the
 * director's relay and nothing else. Prints `{"addr"}` (its own user address) as one JSON line
 * once registered, and serves until killed or until stdin closes.
 * @module
 */
import { parseArgs } from 'node:util';
import { RpcWorker } from '../dist/index.js';
import { exitWhenParentGoes, printJsonLine, serveBenchMethods, type ServerReady } from './common.ts';

const { values } = parseArgs({
  options: {
    director: { type: 'string' },
    'cluster-dir': { type: 'string' },
    id: { type: 'string', default: 'bench-worker' },
  },
});

exitWhenParentGoes();

const worker = await RpcWorker.start({
  id: values.id,
  director: values.director ?? '',
  clusterDir: values['cluster-dir'],
  drainOnSigterm: false,
});
serveBenchMethods(worker);

const ready: ServerReady = { addr: worker.address };
printJsonLine(ready);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void worker.close().finally(() => process.exit(0));
  });
}
