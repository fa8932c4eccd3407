/**
 * Tracing through `@opentelemetry/api`: a span per call on each side and per migration, with W3C
 * trace context (`traceparent`, `tracestate`) carried in the call's request headers (PROTOCOL.md
 * section 5.6). This module exists so that the client, the server and the director share one
 * tracer, one naming scheme and one way to record a call's outcome.
 *
 * Free when no OpenTelemetry SDK is installed: the API's global tracer is then a no-op, its
 * propagator injects nothing, and no header is added. With an SDK registered
 * (`trace.setGlobalTracerProvider`, `propagation.setGlobalPropagator`, a context manager), the
 * client injects the active context into the headers, the handler runs inside a server span
 * whose parent is the client's span, and a migrated, failed-over or resumed handler gets the
 * same parent again, since the new owner sees the same request headers.
 *
 * Span names and attributes follow OpenTelemetry's RPC semantic conventions: the name is
 * `<package.Service>/<Method>` for a gRPC-style path `/<package.Service>/<Method>`, else the
 * method name; `rpc.system` = `rpcnet`; `rpc.service`, `rpc.method`; `rpc.response.status_code`
 * = the rpcnet code name on failure.
 * @module
 */
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import type { MigrationReport } from './director.js';
import { asRpcError } from './errors.js';

const tracer = trace.getTracer('rpcnet');

const setter: TextMapSetter<Headers> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const getter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

/** Span name and attributes of a call to `method`. */
function describeCall(method: string): { name: string; attributes: Attributes } {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(method);
  const attributes: Attributes = { 'rpc.system': 'rpcnet', 'rpc.method': m ? m[2]! : method };
  if (m) attributes['rpc.service'] = m[1]!;
  return { name: m ? `${m[1]}/${m[2]}` : method, attributes };
}

/**
 * Starts the client span of a call to `method` (a child of the active context) and injects its
 * context into `header` (as `traceparent` / `tracestate`, by the global propagator).
 * @internal
 */
export function startClientSpan(method: string, header: Headers): Span {
  const { name, attributes } = describeCall(method);
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes });
  propagation.inject(trace.setSpan(context.active(), span), header, setter);
  return span;
}

/**
 * Starts the server span of a call to `method`, whose parent is the trace context in the request
 * headers `metadata`; returns it and the context to run the handler in.
 * @internal
 */
export function startServerSpan(method: string, metadata: Headers, attributes: Attributes): { span: Span; context: Context } {
  const parent = propagation.extract(ROOT_CONTEXT, metadata, getter);
  const call = describeCall(method);
  const span = tracer.startSpan(call.name, { kind: SpanKind.SERVER, attributes: { ...call.attributes, ...attributes } }, parent);
  return { span, context: trace.setSpan(parent, span) };
}

/**
 * Ends `span` with the call's outcome: OK, or ERROR with the error's code (an {@link RpcError}'s,
 * `UNKNOWN` for anything else) as `rpc.response.status_code`.
 * @internal
 */
export function endSpan(span: Span, error?: unknown): void {
  if (error === undefined) {
    span.setStatus({ code: SpanStatusCode.OK });
  } else {
    const e = asRpcError(error, 'the call failed');
    span.setAttribute('rpc.response.status_code', e.code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
  }
  span.end();
}

/**
 * Ends the server span of a handler run that stopped because its call goes on elsewhere (a
 * migration, or a director link lost with the call kept for a resume): no status, an event
 * `rpcnet.moved`; the next run's span (`rpcnet.resumed` = true) carries the outcome.
 * @internal
 */
export function endMovedSpan(span: Span): void {
  span.addEvent('rpcnet.moved');
  span.end();
}

/**
 * Records a finished migration as a span `rpcnet.migration` that covers it (it ends now and
 * started `durationMs` ago), with one event per RFC-001 phase.
 * @internal
 */
export function recordMigration(report: MigrationReport): void {
  const end = Date.now();
  const start = end - report.durationMs;
  const span = tracer.startSpan(
    'rpcnet.migration',
    {
      kind: SpanKind.INTERNAL,
      startTime: start,
      attributes: {
        'rpcnet.migration.id': report.migrationId,
        'rpcnet.session.id': report.sessionId,
        'rpcnet.migration.source': report.source,
        'rpcnet.migration.target': report.target,
        'rpcnet.migration.reason': report.reason,
        'rpcnet.migration.completed': report.completed,
        'rpcnet.migration.frozen_ms': report.frozenMs,
        'rpcnet.migration.snapshot_bytes': report.snapshotBytes,
      },
    },
    ROOT_CONTEXT,
  );
  let at = start;
  for (const p of report.phases) {
    at += p.ms;
    span.addEvent(p.phase, { 'rpcnet.migration.phase_ms': p.ms }, at);
  }
  span.setStatus(report.completed ? { code: SpanStatusCode.OK } : { code: SpanStatusCode.ERROR, message: report.error ?? 'aborted' });
  span.end(end);
}
