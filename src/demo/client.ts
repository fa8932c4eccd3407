/**
 * The demo's client: connects to a director (with `resume`, to any of several, and moves between
 * them) and streams `tokens`, checking every item's seq and noting each change of worker and each
 * resume with the pause it caused (the gap beyond the interval). Used by the demo's client
 * process and by the tests.
 * @module
 */
import { RpcClient } from '../client.js';
import type { TokenItem } from './tokens.js';

/** What the client saw. */
export interface StreamRecord {
  /**
   * The connectionId of the first connection the client opened (for a resumable session also
   * its session id, which every item's `conn` carries across resumes).
   */
  connectionId: string;
  /** Connections the client opened: 1 + resumes. */
  connections: number;
  /**
   * Each resume: the director reached, at which seq, the resume itself (from noticing the loss
   * to WELCOME), ms, and the pause the client saw (beyond the interval, from the last item before
   * the loss to the first after the resume), ms.
   */
  resumptions: { address: string; seq: number; pauseMs: number; seenPauseMs: number }[];
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
  /** The request header `x-tenant` the client sent. */
  tenant: string;
  /**
   * Items whose handler saw other request headers than the client sent: an `x-tenant` other
   * than {@link StreamRecord.tenant}, or an `rpcnet-session-id` other than `connectionId`.
   */
  foreignMetadata: number;
  /** How many times the response headers arrived (`onHeader`); 1 when all is well. */
  headers: number;
  /** The response header `x-stream`, when the headers arrived. */
  stream: string | null;
  /** The response trailer `x-items` (the count the handler promised), at the end. */
  trailer: string | null;
}

/** Options of {@link streamTokens}. */
export interface StreamOptions {
  /** Director address, or the addresses of the cluster's directors. */
  address: string | string[];
  /** Director certificate fingerprint (one of `pin`, `caFile`). */
  pin?: string;
  /** The cluster CA's certificate (`ca.pem`), to trust every director of the cluster. */
  caFile?: string;
  /** Open a resumable session (README "Resumable sessions"). */
  resume?: boolean;
  /** The client's `lossDetectionMs`. */
  lossDetectionMs?: number;
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
  /** Called at each resume of the session on a new connection. */
  onResumed?: (address: string, pauseMs: number) => void;
  /**
   * Ends the stream before `count` once aborted: the item in hand is the last one (breaking
   * out cancels the call), and the record covers the items up to it.
   */
  stop?: AbortSignal;
}

/** Connects, streams `tokens` to the end (or until `stop`), and returns what was received. */
export async function streamTokens(options: StreamOptions): Promise<StreamRecord> {
  const tls = options.caFile ? { caFile: options.caFile } : { pin: options.pin };
  const client = await RpcClient.connect(options.address, {
    tls,
    ...(options.resume ? { resume: true } : {}),
    ...(options.lossDetectionMs ? { lossDetectionMs: options.lossDetectionMs } : {}),
  });
  options.onConnected?.(client);
  const record: StreamRecord = {
    connectionId: client.connectionId,
    connections: 1,
    resumptions: [],
    items: 0,
    gaps: 0,
    duplicates: 0,
    foreignConnection: 0,
    switches: [],
    workers: [],
    tenant: `tenant-${Math.random().toString(36).slice(2, 10)}`,
    foreignMetadata: 0,
    headers: 0,
    stream: null,
    trailer: null,
  };
  let expected = 0;
  let last: { worker: string; at: number } | undefined;
  client.on('resumed', (e) => {
    record.connections++;
    record.resumptions.push({ address: e.address, seq: expected, pauseMs: e.pauseMs, seenPauseMs: -1 });
    options.onResumed?.(e.address, e.pauseMs);
  });
  const request = Buffer.from(JSON.stringify({ count: options.count, intervalMs: options.intervalMs }));
  try {
    const callOptions = {
      headers: { 'x-tenant': record.tenant },
      onHeader: (h: Headers) => {
        record.headers++;
        record.stream = h.get('x-stream');
      },
      onTrailer: (t: Headers) => {
        record.trailer = t.get('x-items');
      },
    };
    for await (const raw of client.callStreaming('tokens', request, callOptions)) {
      const item = JSON.parse(raw.toString()) as TokenItem;
      const now = performance.now();
      const pending = record.resumptions.find((r) => r.seenPauseMs < 0);
      if (pending && last) pending.seenPauseMs = Math.max(0, now - last.at - options.intervalMs);
      if (item.seq > expected) record.gaps += item.seq - expected;
      if (item.seq < expected) record.duplicates++;
      expected = Math.max(expected, item.seq + 1);
      record.items++;
      if (item.conn !== record.connectionId) record.foreignConnection++;
      if (item.tenant !== record.tenant || item.session !== record.connectionId) record.foreignMetadata++;
      if (!record.workers.includes(item.worker)) record.workers.push(item.worker);
      if (last && last.worker !== item.worker) {
        const s = { from: last.worker, to: item.worker, seq: item.seq, pauseMs: Math.max(0, now - last.at - options.intervalMs) };
        record.switches.push(s);
        options.onSwitch?.(s);
      }
      last = { worker: item.worker, at: now };
      options.onItem?.(item, record);
      if (options.stop?.aborted) break;
    }
  } finally {
    await client.close();
  }
  return record;
}
