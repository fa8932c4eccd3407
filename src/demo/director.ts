/**
 * Demo and test process: a director. Started with `child_process.fork`; it reports its addresses
 * and every director event to its parent over IPC and obeys `migrate` / `migrate-many` / `close`
 * / `memory` commands. `migrate-many` with `summary: true` answers `{ completed, aborted }`
 * instead of every report.
 * @module
 */
import { parseArgs } from 'node:util';

import { Director } from '../director.js';
import { sampleMemory } from './memory.js';

const { values } = parseArgs({
  options: {
    'cluster-dir': { type: 'string' },
    'failover-after-ms': { type: 'string', default: '400' },
    port: { type: 'string', default: '0' },
    'mgmt-port': { type: 'string', default: '0' },
  },
});
const director = await Director.start({
  clusterDir: values['cluster-dir'],
  failoverAfterMs: Number(values['failover-after-ms']),
  port: Number(values.port),
  mgmtPort: Number(values['mgmt-port']),
});
const send = (m: unknown) => process.send?.(m);
director.on('event', (event) => send({ type: 'event', event }));
send({ type: 'ready', address: director.address, mgmtAddress: director.mgmtAddress, fingerprint: director.certFingerprint });

process.on('message', async (m: { id: number; cmd: string; sessionId?: string; target?: string; count?: number; pauseMs?: number; gc?: boolean; summary?: boolean }) => {
  try {
    if (m.cmd === 'memory') return send({ type: 'reply', id: m.id, result: sampleMemory(m.gc) });
    if (m.cmd === 'sessions') return send({ type: 'reply', id: m.id, result: director.sessions() });
    if (m.cmd === 'handshakes') return send({ type: 'reply', id: m.id, result: director.handshakes() });
    if (m.cmd === 'workers') return send({ type: 'reply', id: m.id, result: director.workers() });
    if (m.cmd === 'wait-workers') return send({ type: 'reply', id: m.id, result: await director.waitForWorkers(m.count ?? 1) });
    if (m.cmd === 'migrate') return send({ type: 'reply', id: m.id, result: await director.migrate(m.sessionId!, m.target) });
    if (m.cmd === 'migrate-many' && m.summary) {
      // As below, keeping no report (for memory measurements): counts only; an aborted migration
      // is counted, not thrown.
      let completed = 0;
      let aborted = 0;
      for (let i = 0; i < (m.count ?? 1); i++) {
        try {
          if ((await director.migrate(m.sessionId!)).completed) completed++;
        } catch {
          aborted++;
        }
        if (m.pauseMs) await new Promise((r) => setTimeout(r, m.pauseMs));
      }
      return send({ type: 'reply', id: m.id, result: { completed, aborted } });
    }
    if (m.cmd === 'migrate-many') {
      // Back and forth between the session's owner and the other worker(s), one after another.
      const reports = [];
      for (let i = 0; i < (m.count ?? 1); i++) {
        reports.push(await director.migrate(m.sessionId!));
        if (m.pauseMs) await new Promise((r) => setTimeout(r, m.pauseMs));
      }
      return send({ type: 'reply', id: m.id, result: reports });
    }
    if (m.cmd === 'close') {
      await director.close();
      send({ type: 'reply', id: m.id, result: true });
      return process.exit(0);
    }
    send({ type: 'reply', id: m.id, error: { code: 'INVALID_ARGUMENT', message: `unknown command ${m.cmd}` } });
  } catch (e) {
    const err = e as { code?: string; message: string };
    send({ type: 'reply', id: m.id, error: { code: err.code ?? 'INTERNAL', message: err.message } });
  }
});
