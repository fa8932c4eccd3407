/**
 * Demo and test process: a worker serving the resumable `tokens` method, the resumable bidi
 * `tally` method, the client-streaming `sum` and a unary `who`.
 * SIGTERM drains it (its sessions migrate to other workers), it tells its parent `drained` over
 * IPC once the director has moved them all, closes and exits 0. With `--default-sigterm` it
 * installs no SIGTERM handler of its own and relies on `RpcWorker`'s (`drainOnSigterm`), which
 * does the same without the `drained` message. Its application
 * state per session is `--state-bytes` bytes, carried by `captureState` / `restoreState`.
 * `--confirm-delay-ms` makes its migration policy hook slow (for abort tests);
 * `--restore-delay-ms` makes `restoreState` wait after reporting `restored` (for tests that kill
 * the source between State Transfer and the Pivot). It answers the `memory` command (see
 * memory.ts).
 * @module
 */
import { parseArgs } from 'node:util';

import { RpcWorker } from '../worker.js';
import { sampleMemory } from './memory.js';
import { sumHandler, tallyHandler } from './tally.js';
import { tokensHandler } from './tokens.js';

const { values } = parseArgs({
  options: {
    id: { type: 'string' },
    director: { type: 'string' },
    'cluster-dir': { type: 'string' },
    'state-bytes': { type: 'string', default: '1024' },
    'confirm-delay-ms': { type: 'string', default: '0' },
    'restore-delay-ms': { type: 'string', default: '0' },
    'default-sigterm': { type: 'boolean', default: false },
  },
});
const defaultSigterm = values['default-sigterm'];
const id = values.id!;
const stateBytes = Number(values['state-bytes']);
const confirmDelayMs = Number(values['confirm-delay-ms']);
const restoreDelayMs = Number(values['restore-delay-ms']);
const sessions = new Map<string, Buffer>();

// `--director` may list several directors, separated by commas.
const worker = await RpcWorker.start({ id, director: values.director!.split(','), clusterDir: values['cluster-dir'], drainOnSigterm: defaultSigterm });
worker.serverStreaming('tokens', tokensHandler(id));
worker.bidiStreaming('tally', tallyHandler(id));
worker.clientStreaming('sum', sumHandler(id));
worker.unary('who', () => Buffer.from(id));
worker.setHooks({
  onMigrationRequest: async () => {
    if (confirmDelayMs > 0) await new Promise((r) => setTimeout(r, confirmDelayMs));
    return { decision: 'accept' };
  },
  captureState: (sessionId) => {
    let s = sessions.get(sessionId);
    if (!s) {
      // Application state of the configured size (pseudo-random, so compression does not hide it).
      s = Buffer.alloc(stateBytes);
      let x = 2463534242;
      for (let i = 0; i < s.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        s[i] = x & 0xff;
      }
    }
    return s;
  },
  restoreState: async (sessionId, state) => {
    sessions.set(sessionId, state);
    process.send?.({ type: 'restored', sessionId, bytes: state.length });
    if (restoreDelayMs > 0) await new Promise((r) => setTimeout(r, restoreDelayMs));
  },
});
process.send?.({ type: 'ready', id });

// Commands from the parent (harness.ts `Proc.command`): `memory` (optionally after a full GC).
process.on('message', (m: { id: number; cmd: string; gc?: boolean }) => {
  if (m.cmd === 'memory') return process.send?.({ type: 'reply', id: m.id, result: sampleMemory(m.gc) });
  process.send?.({ type: 'reply', id: m.id, error: { code: 'INVALID_ARGUMENT', message: `unknown command ${m.cmd}` } });
});

let draining = false;
if (!defaultSigterm) process.on('SIGTERM', async () => {
  if (draining) return;
  draining = true;
  try {
    await worker.drain();
    process.send?.({ type: 'drained' });
    await worker.close();
    process.exit(0);
  } catch (e) {
    console.error(`${id}: drain failed: ${(e as Error).message}`);
    process.exit(1);
  }
});
