/**
 * Client process of the drain benchmark (`drain.ts` forks a few of these): opens `--sessions`
 * sessions to the director, each its own {@link RpcClient} (one QUIC connection, one session)
 * with one `tokens` streaming call, and checks every item's seq. Talks to its parent over IPC:
 *
 * - sends `{ type: 'streaming', sessions, retries, openFailures, errors }` once every session
 *   has received its first item or failed: a connection attempt that fails is retried, up to
 *   `--connect-attempts` in all; a session that still cannot be opened counts in `openFailures`
 *   (`errors`: up to five messages of failed attempts);
 * - on `{ cmd: 'mark' }` (sent just before the SIGTERM) restarts each session's stall count;
 * - on `{ cmd: 'stop' }` cancels every call, closes every connection, sends
 *   `{ type: 'records', records }` ({@link SessionRecord}[]) and exits.
 *
 * Run only by `drain.ts`, with `--import @oxc-node/core/register`.
 * @module
 */
import { setMaxListeners } from 'node:events';
import { parseArgs } from 'node:util';

import type { TokenItem } from '../dist/demo/tokens.js';
import { RpcClient } from '../dist/index.js';

/** What one session saw, from its first item to the stop. */
export interface SessionRecord {
  /** The session's `connectionId`. */
  connectionId: string;
  /** Items received. */
  items: number;
  /** Items missing: the sum of every jump of seq above the expected one. */
  lost: number;
  /** Items received again (seq below the expected one). */
  repeated: number;
  /** Items whose `conn` is not this session's `connectionId`. */
  foreign: number;
  /**
   * Each change of worker: from, to, the seq of the first item from `to`, when it arrived (unix
   * ms, sub-ms precision) and the pause (gap between the two items beyond the interval, ms).
   */
  switches: { from: string; to: string; seq: number; atMs: number; pauseMs: number }[];
  /** Largest gap beyond the interval between two items from the same worker since the mark, ms. */
  stallMs: number;
  /** Items received since the mark. */
  itemsSinceMark: number;
  /** Why the stream ended before the stop, if it did (`CODE: message`). */
  error?: string;
  /** When it ended so (unix ms). */
  errorAtMs?: number;
}

/** Unix time now, ms, with sub-ms precision (comparable across processes of this machine). */
const nowMs = () => performance.timeOrigin + performance.now();

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      address: { type: 'string' },
      pin: { type: 'string' },
      sessions: { type: 'string' },
      'interval-ms': { type: 'string' },
      'connect-concurrency': { type: 'string', default: '16' },
      'connect-attempts': { type: 'string', default: '3' },
    },
  });
  const address = values.address!;
  const pin = values.pin!;
  const sessions = Number(values.sessions);
  const intervalMs = Number(values['interval-ms']);
  const send = (m: unknown) => process.send?.(m);
  // More items than any run consumes: the stop cancels the calls.
  const request = Buffer.from(JSON.stringify({ count: 0x7fffffff, intervalMs }));
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  const records: SessionRecord[] = [];
  const clients: RpcClient[] = [];
  const attempts = Math.max(1, Number(values['connect-attempts']));
  let retries = 0;
  let openFailures = 0;
  const errors: string[] = [];
  // Sessions that received their first item, or failed before.
  let settled = 0;
  const settle = () => {
    if (++settled === sessions) send({ type: 'streaming', sessions, retries, openFailures, errors });
  };

  const stream = async (client: RpcClient, r: SessionRecord) => {
    let expected = 0;
    let last: { worker: string; at: number } | undefined;
    try {
      for await (const raw of client.callStreaming('tokens', request, { signal: stop.signal })) {
        const item = JSON.parse(raw.toString()) as TokenItem;
        const at = nowMs();
        if (item.seq > expected) r.lost += item.seq - expected;
        if (item.seq < expected) r.repeated++;
        expected = Math.max(expected, item.seq + 1);
        r.items++;
        r.itemsSinceMark++;
        if (item.conn !== r.connectionId) r.foreign++;
        if (!last) settle();
        else {
          const gap = Math.max(0, at - last.at - intervalMs);
          if (last.worker !== item.worker) r.switches.push({ from: last.worker, to: item.worker, seq: item.seq, atMs: at, pauseMs: gap });
          else r.stallMs = Math.max(r.stallMs, gap);
        }
        last = { worker: item.worker, at };
      }
      if (!stop.signal.aborted) r.error = 'stream ended before the stop';
    } catch (e) {
      if (!stop.signal.aborted) {
        const err = e as { code?: string; message?: string };
        r.error = `${err.code ?? 'ERROR'}: ${err.message ?? String(e)}`;
      }
    }
    if (r.error) {
      r.errorAtMs = nowMs();
      if (!last) settle();
    }
  };

  const running: Promise<void>[] = [];
  let next = 0;
  const opener = async () => {
    while (next < sessions) {
      next++;
      let client: RpcClient | undefined;
      for (let attempt = 1; !client && attempt <= attempts; attempt++) {
        try {
          client = await RpcClient.connect(address, { tls: { pin }, connectTimeoutMs: 60_000 });
        } catch (e) {
          if (attempt < attempts) retries++;
          if (errors.length < 5) errors.push((e as Error).message);
        }
      }
      if (!client) {
        openFailures++;
        settle();
        continue;
      }
      clients.push(client);
      const r: SessionRecord = { connectionId: client.connectionId, items: 0, lost: 0, repeated: 0, foreign: 0, switches: [], stallMs: 0, itemsSinceMark: 0 };
      records.push(r);
      running.push(stream(client, r));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Number(values['connect-concurrency'])) }, opener));

  process.on('message', async (m: { cmd: string }) => {
    if (m.cmd === 'mark') {
      for (const r of records) {
        r.stallMs = 0;
        r.itemsSinceMark = 0;
      }
    } else if (m.cmd === 'stop') {
      stop.abort();
      await Promise.all(running);
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
      process.send?.({ type: 'records', records }, () => process.exit(0));
    }
  });
  process.on('disconnect', () => process.exit(0));
}

await main();
