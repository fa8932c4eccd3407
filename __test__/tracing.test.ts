/**
 * OpenTelemetry (src/tracing.ts) with a real SDK registered in this test process: the client's
 * span context travels in `traceparent`, the handler runs in a server span that is its child,
 * outcomes become span statuses, a migrated call's second handler continues the same trace, and
 * a migration is a span of its own. Over real QUIC; the cluster runs in this process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import test from 'ava';
import { Director, RpcError, RpcWorker, RpcClient } from '../dist/index.js';
import { pair, sleep, u32 } from './helpers.ts';

const exporter = new InMemorySpanExporter();
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
propagation.setGlobalPropagator(new W3CTraceContextPropagator());
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const tracer = trace.getTracer('test');

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-tracing-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

function spans(name: string, kind?: SpanKind): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.name === name && (kind === undefined || s.kind === kind));
}

/** Waits (a little) for spans that end after the call returned (the server's). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await sleep(10);
}

test.serial('a unary call: client span, traceparent in the headers, server span as its child', async (t) => {
  exporter.reset();
  const { server, client, close } = await pair();
  try {
    let seen: { traceparent: string | null; active: string | undefined } | undefined;
    server.unary('/demo.v1.Echo/Say', (req, ctx) => {
      seen = { traceparent: ctx.metadata.get('traceparent'), active: trace.getActiveSpan()?.spanContext().spanId };
      return req;
    });
    await tracer.startActiveSpan('parent', async (parent) => {
      await client.call('/demo.v1.Echo/Say', Buffer.from('hi'));
      parent.end();
    });
    await until(() => spans('demo.v1.Echo/Say', SpanKind.SERVER).length === 1);
    const [parent] = spans('parent');
    const [clientSpan] = spans('demo.v1.Echo/Say', SpanKind.CLIENT);
    const [serverSpan] = spans('demo.v1.Echo/Say', SpanKind.SERVER);
    t.truthy(parent && clientSpan && serverSpan);
    const traceId = parent!.spanContext().traceId;
    t.is(clientSpan!.spanContext().traceId, traceId);
    t.is(clientSpan!.parentSpanContext?.spanId, parent!.spanContext().spanId);
    t.is(serverSpan!.spanContext().traceId, traceId, 'the server continues the trace');
    t.is(serverSpan!.parentSpanContext?.spanId, clientSpan!.spanContext().spanId);
    t.is(seen?.traceparent, `00-${traceId}-${clientSpan!.spanContext().spanId}-01`);
    t.is(seen?.active, serverSpan!.spanContext().spanId, 'the handler runs inside the server span');
    t.is(serverSpan!.attributes['rpc.system'], 'rpcnet');
    t.is(serverSpan!.attributes['rpc.service'], 'demo.v1.Echo');
    t.is(serverSpan!.attributes['rpc.method'], 'Say');
    t.is(serverSpan!.status.code, SpanStatusCode.OK);
  } finally {
    await close();
  }
});

test.serial('failures set an ERROR status with the code, on both sides; streams end their spans at the end', async (t) => {
  exporter.reset();
  const { server, client, close } = await pair();
  try {
    server.unary('deny', () => {
      throw new RpcError('PERMISSION_DENIED', 'no');
    });
    server.serverStreaming('count', async function* () {
      for (let i = 0; i < 3; i++) yield u32(i);
    });
    await t.throwsAsync(client.call('deny', Buffer.alloc(0)));
    let items = 0;
    for await (const _ of client.callStreaming('count', Buffer.alloc(0))) items++;
    t.is(items, 3);
    await until(() => spans('deny', SpanKind.SERVER).length === 1 && spans('count', SpanKind.SERVER).length === 1);
    for (const kind of [SpanKind.CLIENT, SpanKind.SERVER]) {
      const [deny] = spans('deny', kind);
      t.is(deny?.status.code, SpanStatusCode.ERROR);
      t.is(deny?.attributes['rpc.response.status_code'], 'PERMISSION_DENIED');
      const [count] = spans('count', kind);
      t.is(count?.status.code, SpanStatusCode.OK);
    }
  } finally {
    await close();
  }
});

test.serial('a migrated call continues the same trace on the new worker; the migration is a span', async (t) => {
  exporter.reset();
  const director = await Director.start({ clusterDir });
  const workers: RpcWorker[] = [];
  for (const id of ['worker-a', 'worker-b']) {
    const w = await RpcWorker.start({ id, director: director.mgmtAddress, clusterDir });
    w.serverStreaming('count', async function* (_req, ctx) {
      for (let seq = ctx.resume?.seq ?? 0; seq < 6; seq++) {
        yield u32(seq);
        ctx.checkpoint(u32(seq + 1));
        await sleep(40);
      }
    });
    workers.push(w);
  }
  const client = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  try {
    const items: number[] = [];
    let traceId = '';
    await tracer.startActiveSpan('parent', async (parent) => {
      traceId = parent.spanContext().traceId;
      const reading = (async () => {
        for await (const item of client.callStreaming('count', Buffer.alloc(0))) items.push(item.readUInt32BE());
      })();
      await sleep(100);
      const [session] = director.sessions();
      const target = session!.worker === 'worker-a' ? 'worker-b' : 'worker-a';
      t.true((await director.migrate(session!.sessionId, target)).completed);
      await reading;
      parent.end();
    });
    t.deepEqual(items, [0, 1, 2, 3, 4, 5]);
    await until(() => spans('count', SpanKind.SERVER).length === 2);
    const [clientSpan] = spans('count', SpanKind.CLIENT);
    const servers = spans('count', SpanKind.SERVER);
    t.is(servers.length, 2, 'one server span per handler run: the source and the target');
    for (const s of servers) {
      t.is(s.spanContext().traceId, traceId);
      t.is(s.parentSpanContext?.spanId, clientSpan!.spanContext().spanId, 'both are children of the client span');
    }
    t.deepEqual(servers.map((s) => s.attributes['rpcnet.resumed']).sort(), [false, true]);
    const source = servers.find((s) => s.attributes['rpcnet.resumed'] === false)!;
    const target = servers.find((s) => s.attributes['rpcnet.resumed'] === true)!;
    t.is(source.status.code, SpanStatusCode.UNSET, "the source's run is not an outcome");
    t.deepEqual(source.events.map((e) => e.name), ['rpcnet.moved']);
    t.is(target.status.code, SpanStatusCode.OK);
    const [migration] = spans('rpcnet.migration');
    t.truthy(migration, 'the director recorded the migration');
    t.is(migration!.attributes['rpcnet.migration.completed'], true);
    t.deepEqual(
      migration!.events.map((e) => e.name),
      ['Initiation', 'Confirmation', 'Preparation', 'StateCapture', 'StateTransfer', 'Pivot'],
    );
  } finally {
    await client.close();
    for (const w of workers) await w.close();
    await director.close();
  }
});
