/**
 * Client-streaming and bidi calls over real QUIC (PROTOCOL.md section 3.4) on a plain server:
 * requests in order with their own seq, the half-close, backpressure from a slow handler, a bidi
 * ping-pong (each request sent only after the previous response arrived), errors and
 * cancellation both ways, and what is refused: through a director, with `resume`, a wrong kind.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { Director, RpcClient, RpcError, RpcWorker } from '../dist/index.js';
import { pair, sleep, u32, whenAborted } from './helpers.ts';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-client-streaming-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

async function* numbers(n: number, everyMs = 0): AsyncGenerator<Buffer> {
  for (let i = 0; i < n; i++) {
    if (everyMs) await sleep(everyMs);
    yield u32(i);
  }
}

test('client-streaming: every request once, in order, then one response; metadata both ways', async (t) => {
  const { server, client, close } = await pair();
  try {
    server.clientStreaming('collect', async (requests, ctx) => {
      const seen: number[] = [];
      for await (const r of requests) seen.push(r.readUInt32BE(0));
      ctx.responseTrailer.set('x-count', String(seen.length));
      return Buffer.from(JSON.stringify({ seen, tenant: ctx.metadata.get('x-tenant') }));
    });
    let trailer: Headers | undefined;
    const reply = await client.callClientStreaming('collect', numbers(2000), { headers: { 'x-tenant': 'acme' }, onTrailer: (tr) => (trailer = tr) });
    const { seen, tenant } = JSON.parse(reply.toString()) as { seen: number[]; tenant: string };
    t.deepEqual(seen, [...Array(2000).keys()]);
    t.is(tenant, 'acme');
    t.is(trailer?.get('x-count'), '2000');
    // A plain array works too, and no requests at all.
    t.deepEqual(JSON.parse((await client.callClientStreaming('collect', [u32(7)])).toString()).seen, [7]);
    t.deepEqual(JSON.parse((await client.callClientStreaming('collect', [])).toString()).seen, []);
  } finally {
    await close();
  }
});

test('backpressure: a slow handler slows the client; memory stays bounded', async (t) => {
  const { server, client, close } = await pair({ streamWindow: { items: 8, bytes: 1 << 20 } });
  try {
    let read = 0;
    server.clientStreaming('slow', async (requests) => {
      for await (const _ of requests) {
        read++;
        await sleep(2);
      }
      return u32(read);
    });
    let produced = 0;
    let most = 0;
    async function* requests() {
      for (let i = 0; i < 300; i++) {
        produced++;
        most = Math.max(most, produced - read);
        yield Buffer.alloc(16 * 1024, i);
      }
    }
    const reply = await client.callClientStreaming('slow', requests());
    t.is(reply.readUInt32BE(0), 300);
    // 300 x 16 KiB = 4.7 MiB sent; what was produced ahead of the handler is bounded by the
    // server's window (8 items) and QUIC's flow-control windows, not by the total.
    t.true(most < 250, `the client ran ${most} requests ahead of the handler`);
  } finally {
    await close();
  }
});

test('bidi: a ping-pong in which each request is sent only after the previous response', async (t) => {
  const { server, client, close } = await pair();
  try {
    server.bidiStreaming('pingpong', async function* (requests, ctx) {
      ctx.responseHeader.set('x-game', 'pong');
      for await (const r of requests) yield u32(r.readUInt32BE(0) + 1);
    });
    // The requests wait on the responses: this only finishes if both directions stream.
    let last = 0;
    let answered: () => void = () => {};
    async function* pings() {
      for (let i = 0; i < 50; i += 2) {
        yield u32(i);
        await new Promise<void>((r) => (answered = r));
      }
    }
    let header = null as string | null;
    const got: number[] = [];
    for await (const pong of client.callBidiStreaming('pingpong', pings(), { onHeader: (h) => (header = h.get('x-game')) })) {
      last = pong.readUInt32BE(0);
      got.push(last);
      answered();
    }
    t.deepEqual(got, [...Array(25).keys()].map((i) => 2 * i + 1));
    t.is(header, 'pong');
  } finally {
    await close();
  }
});

test('errors: a handler that fails early, a request iterable that throws, non-bytes requests', async (t) => {
  const { server, client, close } = await pair();
  try {
    let stopped = 0;
    server.clientStreaming('picky', async (requests) => {
      for await (const r of requests) if (r.readUInt32BE(0) === 3) throw new RpcError('INVALID_ARGUMENT', 'no threes');
      return Buffer.alloc(0);
    });
    server.bidiStreaming('echo', async function* (requests, ctx) {
      ctx.signal.addEventListener('abort', () => stopped++, { once: true });
      for await (const r of requests) yield r;
    });
    const e = await t.throwsAsync(client.callClientStreaming('picky', numbers(1_000_000, 0)), { instanceOf: RpcError });
    t.is(e.code, 'INVALID_ARGUMENT');
    t.is(e.message, 'no threes', 'the client stopped sending at the answer: the call did not wait for a million requests');
    // The source breaks once the handler is running (it echoed the first request), so that the
    // cancel reaches a handler that started.
    let echoed!: () => void;
    const gotEcho = new Promise<void>((resolve) => (echoed = resolve));
    async function* broken() {
      yield u32(1);
      await gotEcho;
      throw new Error('the source broke');
    }
    const e2 = await t.throwsAsync(
      (async () => {
        for await (const _ of client.callBidiStreaming('echo', broken())) echoed();
      })(),
      { instanceOf: RpcError },
    );
    t.is(e2.code, 'UNKNOWN');
    t.regex(e2.message, /the source broke/);
    const e3 = await t.throwsAsync(client.callClientStreaming('picky', ['not bytes' as never]), { instanceOf: RpcError });
    t.is(e3.code, 'INVALID_ARGUMENT');
    t.throws(() => client.callBidiStreaming('echo', 42 as never), { instanceOf: RpcError, message: /requests must be an iterable/ });
    for (let i = 0; i < 50 && stopped === 0; i++) await sleep(10);
    t.is(stopped, 1, "the bidi handler saw its call cancelled when the client's source broke");
  } finally {
    await close();
  }
});

test('cancellation: breaking out of a bidi call and an AbortSignal stop the handler', async (t) => {
  const { server, client, close } = await pair();
  try {
    const reasons: unknown[] = [];
    server.bidiStreaming('forever', async function* (requests, ctx) {
      const done = whenAborted(ctx.signal).then((r) => reasons.push(r));
      for await (const r of requests) yield r;
      await done;
    });
    for await (const _ of client.callBidiStreaming('forever', numbers(1_000_000, 5))) break;
    server.clientStreaming('forever-c', async (_requests, ctx) => {
      await whenAborted(ctx.signal).then((r) => reasons.push(r));
      return Buffer.alloc(0);
    });
    const controller = new AbortController();
    const pending = client.callClientStreaming('forever-c', numbers(10), { signal: controller.signal });
    await sleep(50);
    controller.abort();
    await t.throwsAsync(pending, { instanceOf: RpcError });
    for (let i = 0; i < 100 && reasons.length < 2; i++) await sleep(10);
    t.is(reasons.length, 2, 'both handlers were stopped');
    t.deepEqual(reasons.map((r) => (r as RpcError).code), ['CANCELLED', 'CANCELLED']);
  } finally {
    await close();
  }
});

test('through a director, plain and resumable: a wrong kind is refused by the worker', async (t) => {
  const { server, client, close } = await pair();
  try {
    server.clientStreaming('sum', async () => Buffer.alloc(0));
    server.unary('echo', (r) => r);
    const e = await t.throwsAsync(client.call('sum', Buffer.alloc(0)), { instanceOf: RpcError });
    t.is(e.message, "method sum is client-streaming, but the request's CLIENT_STREAMING flag is clear");
    const e2 = await t.throwsAsync(client.callClientStreaming('echo', []), { instanceOf: RpcError });
    t.is(e2.code, 'INVALID_ARGUMENT');
    t.is(e2.message, "method echo is unary, but the request's CLIENT_STREAMING flag is set");
  } finally {
    await close();
  }
  const director = await Director.start({ clusterDir, shutdownOnSigterm: false });
  const worker = await RpcWorker.start({ id: 'w', director: director.mgmtAddress, clusterDir, drainOnSigterm: false });
  worker.unary('echo', (r) => r);
  worker.clientStreaming('count', async (requests) => {
    let n = 0;
    for await (const _ of requests) n++;
    return u32(n);
  });
  try {
    t.true(await director.waitForWorkers(1));
    const plain = await RpcClient.connect(director.address, { tls: { caFile: director.caFile } });
    const e3 = await t.throwsAsync(plain.callClientStreaming('echo', [u32(1)]), { instanceOf: RpcError });
    t.is(e3.code, 'INVALID_ARGUMENT', 'the worker checks the kind, as a plain server does');
    t.is(e3.message, "method echo is unary, but the request's CLIENT_STREAMING flag is set");
    t.is((await plain.callClientStreaming('count', [u32(1), u32(2), u32(3)])).readUInt32BE(0), 3, 'relayed');
    t.is((await plain.call('echo', Buffer.from('ok'))).toString(), 'ok', 'the connection goes on');
    await plain.close();
    const resumable = await RpcClient.connect(director.address, { tls: { caFile: director.caFile }, resume: true });
    t.is((await resumable.callClientStreaming('count', [u32(1), u32(2)])).readUInt32BE(0), 2, 'in a resumable session too');
    await resumable.close();
  } finally {
    await worker.close();
    await director.close();
  }
});
