/**
 * A handler's checkpoint reaches Rust without waiting for its next item: a handler that
 * checkpoints and then waits is resumed from that checkpoint by a migration during the wait.
 * Director, two workers and the client run in this process, over real QUIC on loopback.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { Director, RpcClient, RpcWorker, type CallContext } from '../dist/index.js';
import { sleep, u32 } from './helpers.ts';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-resume-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

/** Items of the stream. */
const TOTAL = 6;
/** After yielding this item, the handler checkpoints and then sleeps. */
const PAUSE_AFTER = 2;
const PAUSE_MS = 300;

interface Start {
  worker: string;
  resumeSeq: number | undefined;
  resumeState: number | undefined;
}

/** Item `seq` is `u32(seq)`; the checkpoint after item `seq` is `u32(seq + 1)`, the next item. */
function counter(worker: string, starts: Start[]) {
  return async function* (_request: Buffer, ctx: CallContext) {
    starts.push({ worker, resumeSeq: ctx.resume?.seq, resumeState: ctx.resume?.state.readUInt32BE() });
    for (let seq = ctx.resume?.seq ?? 0; seq < TOTAL; seq++) {
      yield u32(seq);
      ctx.checkpoint(u32(seq + 1));
      if (seq === PAUSE_AFTER && !ctx.resume) await sleep(PAUSE_MS);
    }
  };
}

test('a checkpoint followed by a wait crosses at once: a migration during the wait resumes at the next item', async (t) => {
  const director = await Director.start({ clusterDir });
  const starts: Start[] = [];
  const workers: RpcWorker[] = [];
  for (const id of ['worker-a', 'worker-b']) {
    const w = await RpcWorker.start({ id, director: director.mgmtAddress, clusterDir });
    w.serverStreaming('count', counter(id, starts));
    workers.push(w);
  }
  const client = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  try {
    const items: number[] = [];
    let reachedPause!: () => void;
    const paused = new Promise<void>((resolve) => (reachedPause = resolve));
    const reading = (async () => {
      for await (const item of client.callStreaming('count', Buffer.alloc(0))) {
        items.push(item.readUInt32BE());
        if (item.readUInt32BE() === PAUSE_AFTER) reachedPause();
      }
    })();
    await paused;
    // The handler now sleeps after checkpointing "next item is PAUSE_AFTER + 1"; no item follows
    // for PAUSE_MS. Migrate during the sleep.
    await sleep(50);
    const [session] = director.sessions();
    const target = session!.worker === 'worker-a' ? 'worker-b' : 'worker-a';
    const report = await director.migrate(session!.sessionId, target);
    t.true(report.completed, 'the migration completed during the handler sleep');
    await reading;

    t.deepEqual(items, [0, 1, 2, 3, 4, 5], 'every item once, in order');
    t.deepEqual(starts, [
      { worker: session!.worker, resumeSeq: undefined, resumeState: undefined },
      { worker: target, resumeSeq: PAUSE_AFTER + 1, resumeState: PAUSE_AFTER + 1 },
    ], 'the new owner resumes from the checkpoint taken before the sleep, not the one before it');
  } finally {
    await client.close();
    for (const w of workers) await w.close();
    await director.close();
  }
});
