/**
 * The demo's streaming method, `tokens`: a resumable handler (README "Resumable handlers").
 * Item `i` is due at `startedAt + i * intervalMs` (wall clock, carried in the checkpoint), so a
 * handler resumed on another worker keeps the schedule and the client sees only the real pause.
 * @module
 */
import type { CallContext } from '../server.js';

/** Request of `tokens`. */
export interface TokensRequest {
  /** Items to produce. */
  count: number;
  /** Interval between items, ms. */
  intervalMs: number;
}

/** One item of `tokens`, as JSON bytes. */
export interface TokenItem {
  /** The item's seq. */
  seq: number;
  /** The worker that produced it. */
  worker: string;
  /** The client's connectionId as the worker sees it (from the director's ATTACH). */
  conn: string;
  /** A word derived from the running state. */
  token: string;
  /** Wall-clock time the item was produced, ms. */
  at: number;
  /** The request header `x-tenant` as the handler saw it (`ctx.metadata`). */
  tenant: string | null;
  /** The request header `rpcnet-session-id` the director added. */
  session: string | null;
}

interface State {
  startedAt: number;
  hash: number;
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Builds the handler for a worker named `worker`. */
export function tokensHandler(worker: string) {
  return async function* tokens(request: Buffer, ctx: CallContext): AsyncGenerator<Uint8Array> {
    const { count, intervalMs } = JSON.parse(request.toString()) as TokensRequest;
    let seq = ctx.resume?.seq ?? 0;
    const state: State = ctx.resume?.state.length
      ? (JSON.parse(ctx.resume.state.toString()) as State)
      : { startedAt: Date.now(), hash: 17 };
    // Response metadata: the headers go out before the first item (once per call, even when the
    // handler resumes elsewhere), the trailers with the end.
    ctx.responseHeader.set('x-stream', 'tokens');
    ctx.responseTrailer.set('x-items', String(count));
    while (seq < count && !ctx.signal.aborted) {
      await sleep(state.startedAt + seq * intervalMs - Date.now());
      if (ctx.signal.aborted) return;
      state.hash = (Math.imul(state.hash, 31) + seq) >>> 0;
      const item: TokenItem = {
        seq,
        worker,
        conn: ctx.connection.id,
        token: WORDS[state.hash % WORDS.length]!,
        at: Date.now(),
        tenant: ctx.metadata.get('x-tenant'),
        session: ctx.metadata.get('rpcnet-session-id'),
      };
      yield Buffer.from(JSON.stringify(item));
      seq++;
      ctx.checkpoint(Buffer.from(JSON.stringify(state)));
    }
  };
}
