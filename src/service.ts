/**
 * Typed messages and service definitions (issue 8, sections 3 and 7): a service is defined once,
 * from protobuf-es descriptors ({@link fromProtobuf}) or from a plain TypeScript definition with
 * codecs ({@link defineService}); {@link createClient} gives a typed client of it and
 * {@link registerService} registers typed handlers, with type errors at compile time when a
 * handler's shape does not match. All four call kinds: unary, server-streaming, client-streaming
 * and bidi ({@link MethodKind}).
 *
 * On the wire a method is named `/<package>.<Service>/<Method>` (gRPC's scheme, e.g.
 * `/rpcnet.example.v1.Greeter/SayHello`), and its messages are the codec's bytes: protobuf binary
 * for protobuf-es services, UTF-8 JSON for {@link json}, the bytes themselves for {@link raw}.
 * @module
 */
import { create, fromBinary, toBinary, type DescMessage, type DescService, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { CallOptions, RpcClient } from './client.js';
import { RpcError } from './errors.js';
import { func, invalid, record, string } from './options.js';
import type { CallContext, RpcServer } from './server.js';
import type { RpcWorker } from './worker.js';

/** How one message type travels: `encode` makes bytes of a value (or its init shape), `decode` the value of bytes. */
export interface Codec<T, Init = T> {
  /** A short name for error messages, e.g. `json` or the protobuf type name. */
  readonly name: string;
  /** The bytes of `value`. Throws when it cannot encode it. */
  encode(value: Init): Uint8Array;
  /** The value of `bytes`. Throws when they are not a valid encoding. */
  decode(bytes: Uint8Array): T;
}

/** The bytes themselves (no encoding). */
export const raw: Codec<Buffer, Uint8Array> = {
  name: 'raw',
  encode: (value) => value,
  decode: (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
};

/** UTF-8 JSON (`JSON.stringify` / `JSON.parse`); `T` is what the caller promises the JSON holds. */
export function json<T>(): Codec<T> {
  return {
    name: 'json',
    encode: (value) => {
      const text = JSON.stringify(value);
      if (text === undefined) throw new TypeError(`${typeof value} is not JSON`);
      return Buffer.from(text, 'utf8');
    },
    decode: (bytes) => JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as T,
  };
}

/** Protocol Buffers binary through protobuf-es (`toBinary` / `fromBinary`) for the message `schema`. */
export function protobuf<D extends DescMessage>(schema: D): Codec<MessageShape<D>, MessageInitShape<D>> {
  return {
    name: schema.typeName,
    encode: (value) => toBinary(schema, create(schema, value)),
    decode: (bytes) => fromBinary(schema, bytes),
  };
}

/**
 * The call kinds of a typed method, as protobuf-es names them: one request and one response
 * (`unary`), one request and a stream of responses (`server_streaming`), a stream of requests and
 * one response (`client_streaming`), streams both ways (`bidi_streaming`).
 */
export type MethodKind = 'unary' | 'server_streaming' | 'client_streaming' | 'bidi_streaming';

const METHOD_KINDS: readonly string[] = ['unary', 'server_streaming', 'client_streaming', 'bidi_streaming'] satisfies MethodKind[];

/** One method of a service: its wire name, kind and codecs. */
export interface MethodDef<K extends MethodKind, I, IInit, O, OInit> {
  /** Its {@link MethodKind}. */
  readonly kind: K;
  /** The method name on the wire, `/<package>.<Service>/<Method>`. */
  readonly path: string;
  /** The request's (or each request's) codec. */
  readonly input: Codec<I, IInit>;
  /** The response's (or each item's) codec. */
  readonly output: Codec<O, OInit>;
}

/** Any method definition. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMethod = MethodDef<MethodKind, any, any, any, any>;

/** A service: its fully qualified name and its methods by local name. */
export interface ServiceDef<M extends Record<string, AnyMethod>> {
  /** `<package>.<Service>`. */
  readonly typeName: string;
  /** The methods, by the name the typed client and handlers use. */
  readonly methods: M;
}

/** A method of {@link defineService} before it has a path: kind and codecs. */
export interface MethodSpec<K extends MethodKind, I, IInit, O, OInit> {
  /** Its {@link MethodKind}. */
  readonly kind: K;
  /** The request's (or each request's) codec. */
  readonly input: Codec<I, IInit>;
  /** The response's (or each item's) codec. */
  readonly output: Codec<O, OInit>;
}

/** A unary method with these codecs (for {@link defineService}). */
export function unary<I, IInit, O, OInit>(input: Codec<I, IInit>, output: Codec<O, OInit>): MethodSpec<'unary', I, IInit, O, OInit> {
  return { kind: 'unary', input, output };
}

/** A server-streaming method with these codecs (for {@link defineService}). */
export function serverStreaming<I, IInit, O, OInit>(input: Codec<I, IInit>, output: Codec<O, OInit>): MethodSpec<'server_streaming', I, IInit, O, OInit> {
  return { kind: 'server_streaming', input, output };
}

/** A client-streaming method with these codecs (for {@link defineService}): many requests, one response. */
export function clientStreaming<I, IInit, O, OInit>(input: Codec<I, IInit>, output: Codec<O, OInit>): MethodSpec<'client_streaming', I, IInit, O, OInit> {
  return { kind: 'client_streaming', input, output };
}

/** A bidi method with these codecs (for {@link defineService}): requests and responses both streamed. */
export function bidiStreaming<I, IInit, O, OInit>(input: Codec<I, IInit>, output: Codec<O, OInit>): MethodSpec<'bidi_streaming', I, IInit, O, OInit> {
  return { kind: 'bidi_streaming', input, output };
}

/** The methods of {@link defineService}'s result. */
export type DefinedMethods<M> = {
  [K in keyof M]: M[K] extends MethodSpec<infer Kd, infer I, infer II, infer O, infer OI> ? MethodDef<Kd, I, II, O, OI> : never;
};

/**
 * A service from a plain TypeScript definition: `typeName` is `<package>.<Service>`, and each
 * method's wire name is `/<typeName>/<key>`.
 * @throws {RpcError} `INVALID_ARGUMENT` for an empty or malformed `typeName`, or a method that is
 * not made with {@link unary}, {@link serverStreaming}, {@link clientStreaming} or
 * {@link bidiStreaming}.
 */
export function defineService<M extends Record<string, MethodSpec<MethodKind, unknown, unknown, unknown, unknown>>>(
  typeName: string,
  methods: M,
): ServiceDef<DefinedMethods<M>> {
  const name = serviceName(typeName);
  const defs: Record<string, AnyMethod> = {};
  for (const [key, spec] of Object.entries(record('methods', methods, Object.keys(methods) as (keyof M & string)[]))) {
    if (!spec || !METHOD_KINDS.includes(spec.kind)) {
      throw new RpcError('INVALID_ARGUMENT', `method ${key} of ${name} must be made with unary(), serverStreaming(), clientStreaming() or bidiStreaming()`);
    }
    defs[key] = { kind: spec.kind, path: `/${name}/${key}`, input: spec.input, output: spec.output };
  }
  return { typeName: name, methods: defs as DefinedMethods<M> };
}

/** The methods of {@link fromProtobuf}'s result, typed from the generated service descriptor. */
export type ProtobufMethods<S extends DescService> = {
  [K in keyof S['method']]: S['method'][K] extends { methodKind: infer Kd extends MethodKind; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? MethodDef<Kd, MessageShape<I>, MessageInitShape<I>, MessageShape<O>, MessageInitShape<O>>
    : never;
};

/**
 * A service from a protobuf-es service descriptor (generated by `protoc-gen-es`, e.g. `Greeter`
 * from `greeter_pb.ts`): its methods under their local names (`sayHello`), on the wire as
 * `/<package>.<Service>/<Method>` (`/rpcnet.example.v1.Greeter/SayHello`), encoded as protobuf
 * binary. All four method kinds map to the {@link MethodKind} of the same name.
 */
export function fromProtobuf<S extends DescService>(service: S): ServiceDef<ProtobufMethods<S>> {
  const defs: Record<string, AnyMethod> = {};
  for (const m of service.methods) {
    defs[m.localName] = { kind: m.methodKind, path: `/${service.typeName}/${m.name}`, input: protobuf(m.input), output: protobuf(m.output) };
  }
  return { typeName: service.typeName, methods: defs as ProtobufMethods<S> };
}

/** The requests of a typed client-streaming or bidi call: an (async) iterable of messages (their init shapes), read once. */
export type StreamingRequests<IInit> = Iterable<IInit> | AsyncIterable<IInit>;

/**
 * A typed client (connect-es's shapes): a unary method resolves to its response, a
 * server-streaming one yields its responses; a client-streaming method takes its requests as an
 * (async) iterable and resolves to the one response, a bidi one takes them likewise and yields
 * its responses as they come.
 */
export type TypedClient<S extends ServiceDef<Record<string, AnyMethod>>> = {
  [K in keyof S['methods']]: S['methods'][K] extends MethodDef<infer Kd, infer _I, infer II, infer O, infer _OI>
    ? Kd extends 'unary'
      ? (request: II, options?: CallOptions) => Promise<O>
      : Kd extends 'server_streaming'
        ? (request: II, options?: CallOptions) => AsyncIterable<O>
        : Kd extends 'client_streaming'
          ? (requests: StreamingRequests<II>, options?: CallOptions) => Promise<O>
          : Kd extends 'bidi_streaming'
            ? (requests: StreamingRequests<II>, options?: CallOptions) => AsyncIterable<O>
            : never
    : never;
};

/**
 * A typed client of `service` over `client`: each method is {@link RpcClient.call},
 * {@link RpcClient.callStreaming}, {@link RpcClient.callClientStreaming} or
 * {@link RpcClient.callBidiStreaming} with the codecs around it, so the client's interceptors,
 * deadlines and metadata apply as to untyped calls. Requests of a streaming call are encoded one
 * by one as the call reads them.
 * @throws {RpcError} from its methods: as the {@link RpcClient} method underneath;
 * `INVALID_ARGUMENT` when a request cannot be encoded (for a streaming call this cancels it) or
 * when the `requests` of a client-streaming or bidi call are not an (async) iterable (a bidi
 * method throws it at once, a client-streaming one rejects); `INTERNAL` when a response cannot
 * be decoded. `createClient` itself throws `INVALID_ARGUMENT` for a method of no known
 * {@link MethodKind} (a hand-made {@link ServiceDef}).
 */
export function createClient<S extends ServiceDef<Record<string, AnyMethod>>>(service: S, client: RpcClient): TypedClient<S> {
  const typed: Record<string, unknown> = {};
  for (const [key, m] of Object.entries(service.methods)) {
    const encode = (request: unknown) => encodeWith(m.input, request, 'INVALID_ARGUMENT', `the request of ${m.path}`);
    const decode = (bytes: Uint8Array) => decodeWith(m.output, bytes, 'INTERNAL', `a response of ${m.path}`);
    const decodeAll = (items: AsyncIterable<Buffer>): AsyncIterable<unknown> => ({
      async *[Symbol.asyncIterator]() {
        for await (const item of items) yield decode(item);
      },
    });
    switch (m.kind) {
      case 'unary':
        typed[key] = async (request: unknown, options?: CallOptions) => decode(await client.call(m.path, encode(request), options));
        break;
      case 'server_streaming':
        typed[key] = (request: unknown, options?: CallOptions) => decodeAll(client.callStreaming(m.path, encode(request), options));
        break;
      case 'client_streaming':
        typed[key] = async (requests: unknown, options?: CallOptions) =>
          decode(await client.callClientStreaming(m.path, encodeEach(requests, encode, m.input), options));
        break;
      case 'bidi_streaming':
        typed[key] = (requests: unknown, options?: CallOptions) => decodeAll(client.callBidiStreaming(m.path, encodeEach(requests, encode, m.input), options));
        break;
      default:
        throw new RpcError('INVALID_ARGUMENT', `${m.path} has an unknown method kind ${JSON.stringify(m.kind)}`);
    }
  }
  return typed as TypedClient<S>;
}

/**
 * `requests` (checked to be an iterable or async iterable) with `encode` applied to each as it is
 * read; a sync iterable stays sync, so nothing waits a turn that the untyped call would not.
 */
function encodeEach(requests: unknown, encode: (request: unknown) => Buffer, codec: Codec<unknown, unknown>): Iterable<Buffer> | AsyncIterable<Buffer> {
  if (requests !== null && typeof requests === 'object') {
    if (Symbol.asyncIterator in requests) {
      const source = requests as AsyncIterable<unknown>;
      return {
        async *[Symbol.asyncIterator]() {
          for await (const r of source) yield encode(r);
        },
      };
    }
    if (Symbol.iterator in requests) {
      const source = requests as Iterable<unknown>;
      return {
        *[Symbol.iterator]() {
          for (const r of source) yield encode(r);
        },
      };
    }
  }
  throw invalid('requests', `an iterable or async iterable of ${codec.name} messages`, requests);
}

/**
 * Typed handlers of a service (connect-es's shapes): a unary handler returns its response, a
 * server-streaming one its responses (typically an `async function*`); a client-streaming
 * handler gets the requests as an async iterable (read it once) and returns the one response, a
 * bidi one gets them likewise and yields its responses as it goes. Responses are init shapes.
 */
export type ServiceHandlers<S extends ServiceDef<Record<string, AnyMethod>>> = {
  [K in keyof S['methods']]: S['methods'][K] extends MethodDef<infer Kd, infer I, infer _II, infer _O, infer OI>
    ? Kd extends 'unary'
      ? (request: I, ctx: CallContext) => OI | Promise<OI>
      : Kd extends 'server_streaming'
        ? (request: I, ctx: CallContext) => AsyncIterable<OI> | Iterable<OI>
        : Kd extends 'client_streaming'
          ? (requests: AsyncIterable<I>, ctx: CallContext) => OI | Promise<OI>
          : Kd extends 'bidi_streaming'
            ? (requests: AsyncIterable<I>, ctx: CallContext) => AsyncIterable<OI> | Iterable<OI>
            : never
    : never;
};

/**
 * Registers `handlers` for every method of `service` on `server` (an {@link RpcServer} or an
 * {@link RpcWorker}) with {@link RpcServer.unary}, {@link RpcServer.serverStreaming},
 * {@link RpcServer.clientStreaming} or {@link RpcServer.bidiStreaming}, so the server's
 * interceptors apply. A request that cannot be decoded fails the call with `INVALID_ARGUMENT`
 * (for a streaming call, the handler's iteration of the requests throws it); a response or item
 * that cannot be encoded fails the call with `INTERNAL`. Nothing is registered unless every
 * method can be.
 * @throws {RpcError} `INVALID_ARGUMENT` when a method has no handler or a handler is not a
 * function.
 */
export function registerService<S extends ServiceDef<Record<string, AnyMethod>>>(
  server: RpcServer | RpcWorker,
  service: S,
  handlers: ServiceHandlers<S>,
): void {
  type Fn = (request: unknown, ctx: CallContext) => unknown;
  const given = record('handlers', handlers as Record<string, Fn>, Object.keys(service.methods));
  const methods = Object.entries(service.methods).map(([key, m]) => {
    const fn = func(`handlers.${key}`, given[key]!);
    if (!METHOD_KINDS.includes(m.kind)) throw new RpcError('INVALID_ARGUMENT', `${m.path} has an unknown method kind ${JSON.stringify(m.kind)}`);
    return { m, fn };
  });
  for (const { m, fn } of methods) {
    const decode = (bytes: Uint8Array) => decodeWith(m.input, bytes, 'INVALID_ARGUMENT', `the request of ${m.path}`);
    const decodeAll = (requests: AsyncIterable<Buffer>): AsyncIterable<unknown> => ({
      async *[Symbol.asyncIterator]() {
        for await (const request of requests) yield decode(request);
      },
    });
    const encode = (value: unknown) => encodeWith(m.output, value, 'INTERNAL', `a response of ${m.path}`);
    switch (m.kind) {
      case 'unary':
        server.unary(m.path, async (request, ctx) => encode(await fn(decode(request), ctx)));
        break;
      case 'server_streaming':
        server.serverStreaming(m.path, async function* (request, ctx) {
          for await (const item of fn(decode(request), ctx) as AsyncIterable<unknown>) yield encode(item);
        });
        break;
      case 'client_streaming':
        server.clientStreaming(m.path, async (requests, ctx) => encode(await fn(decodeAll(requests), ctx)));
        break;
      case 'bidi_streaming':
        server.bidiStreaming(m.path, async function* (requests, ctx) {
          for await (const item of fn(decodeAll(requests), ctx) as AsyncIterable<unknown>) yield encode(item);
        });
        break;
    }
  }
}

function serviceName(typeName: string): string {
  const name = string('typeName', typeName);
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(name)) {
    throw new RpcError('INVALID_ARGUMENT', `typeName must be <package>.<Service> (dot-separated identifiers), got ${JSON.stringify(name)}`);
  }
  return name;
}

function encodeWith<T, Init>(codec: Codec<T, Init>, value: Init, code: 'INVALID_ARGUMENT' | 'INTERNAL', what: string): Buffer {
  let bytes: Uint8Array;
  try {
    bytes = codec.encode(value);
  } catch (e) {
    throw new RpcError(code, `cannot encode ${what} (${codec.name}): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function decodeWith<T>(codec: Codec<T, unknown>, bytes: Uint8Array, code: 'INVALID_ARGUMENT' | 'INTERNAL', what: string): T {
  try {
    return codec.decode(bytes);
  } catch (e) {
    throw new RpcError(code, `cannot decode ${what} (${codec.name}): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
