/**
 * The demo's methods that read a stream of requests. The bidi `tally` is a resumable handler that reads the client's requests (README
 * "Resumable handlers"). For each request `{ n }` it answers `{ i, n, sum, worker }`: `i` is the
 * request's index and `sum` the total of every request up to it, so a request the handler read
 * twice, skipped or read out of order shows in every later answer. It checkpoints `{ sum }`
 * after each answer; a handler resumed after a migration or failover continues from there, and
 * its requests continue from `ctx.resume.read`.
 * @module
 */
import type { CallContext } from '../server.js';

/** One answer of `tally`, as JSON bytes. */
export interface TallyItem {
  /** Index of the request it answers (= the item's seq). */
  i: number;
  /** That request's number. */
  n: number;
  /** Total of requests 0..i. */
  sum: number;
  /** The worker that read the request. */
  worker: string;
}

/** Builds the handler for a worker named `worker`. */
export function tallyHandler(worker: string) {
  return async function* tally(requests: AsyncIterable<Buffer>, ctx: CallContext): AsyncGenerator<Uint8Array> {
    let i = ctx.resume?.read ?? 0;
    let sum = ctx.resume?.state.length ? (JSON.parse(ctx.resume.state.toString()) as { sum: number }).sum : 0;
    for await (const request of requests) {
      const { n } = JSON.parse(request.toString()) as { n: number };
      sum += n;
      const item: TallyItem = { i, n, sum, worker };
      yield Buffer.from(JSON.stringify(item));
      i++;
      ctx.checkpoint(Buffer.from(JSON.stringify({ sum })));
    }
  };
}

/**
 * The demo's client-streaming method, `sum`: reads every request `{ n }` and answers
 * `{ count, sum, worker }`. It has no checkpoint: a migration or failover runs it again on the
 * next worker from the first request, which the director gives it again (PROTOCOL.md 13.6).
 */
export function sumHandler(worker: string) {
  return async function sum(requests: AsyncIterable<Buffer>): Promise<Uint8Array> {
    let count = 0;
    let total = 0;
    for await (const request of requests) {
      total += (JSON.parse(request.toString()) as { n: number }).n;
      count++;
    }
    return Buffer.from(JSON.stringify({ count, sum: total, worker }));
  };
}
