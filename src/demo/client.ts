/**
 * The demo's client: connects once to the director and streams `tokens`, checking every item's
 * seq and noting each change of worker with the pause it caused (the gap beyond the interval).
 * Used by the demo's client process and by the tests.
 * @module
 */
import { RpcClient } from '../client.js';
import type { TokenItem } from './tokens.js';

/** What the client saw. */
export interface StreamRecord {
  /** The connectionId of the one connection the client opened. */
  connectionId: string;
  /** Items received. */
  items: number;
  /** Items whose seq was above the expected one. */
  gaps: number;
  /** Items whose seq was below the expected one. */
  duplicates: number;
  /** Items whose `conn` differs from `connectionId`. */
  foreignConnection: number;
  /** Each change of worker: from, to, at which seq, and the pause, ms. */
  switches: { from: string; to: string; seq: number; pauseMs: number }[];
  /** Workers seen, in order of first appearance. */
  workers: string[];
}

/** Options of {@link streamTokens}. */
export interface StreamOptions {
  /** Director address. */
  address: string;
  /** Director certificate fingerprint. */
  pin: string;
  /** Items to request. */
  count: number;
  /** Interval, ms. */
  intervalMs: number;
  /** Called for every item (for printing). */
  onItem?: (item: TokenItem, record: StreamRecord) => void;
  /** Called at each change of worker. */
  onSwitch?: (s: StreamRecord['switches'][number]) => void;
  /** Called once connected. */
  onConnected?: (client: RpcClient) => void;
}

/** Connects, streams `tokens` to the end, and returns what was received. */
export async function streamTokens(options: StreamOptions): Promise<StreamRecord> {
  const client = await RpcClient.connect(options.address, { tls: { pin: options.pin } });
  options.onConnected?.(client);
  const record: StreamRecord = {
    connectionId: client.connectionId,
    items: 0,
    gaps: 0,
    duplicates: 0,
    foreignConnection: 0,
    switches: [],
    workers: [],
  };
  let expected = 0;
  let last: { worker: string; at: number } | undefined;
  const request = Buffer.from(JSON.stringify({ count: options.count, intervalMs: options.intervalMs }));
  try {
    for await (const raw of client.callStreaming('tokens', request)) {
      const item = JSON.parse(raw.toString()) as TokenItem;
      const now = performance.now();
      if (item.seq > expected) record.gaps += item.seq - expected;
      if (item.seq < expected) record.duplicates++;
      expected = Math.max(expected, item.seq + 1);
      record.items++;
      if (item.conn !== record.connectionId) record.foreignConnection++;
      if (!record.workers.includes(item.worker)) record.workers.push(item.worker);
      if (last && last.worker !== item.worker) {
        const s = { from: last.worker, to: item.worker, seq: item.seq, pauseMs: Math.max(0, now - last.at - options.intervalMs) };
        record.switches.push(s);
        options.onSwitch?.(s);
      }
      last = { worker: item.worker, at: now };
      options.onItem?.(item, record);
    }
  } finally {
    await client.close();
  }
  return record;
}
