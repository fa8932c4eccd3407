/**
 * Typed messages and service definitions (issue 8, section 3): a service is defined once, from
 * protobuf-es descriptors ({@link fromProtobuf}) or from a plain TypeScript definition with codecs
 * ({@link defineService}); {@link createClient} gives a typed client of it and
 * {@link registerService} registers typed handlers, with type errors at compile time when a
 * handler's shape does not match.
 *
 * On the wire a method is named `/<package>.<Service>/<Method>` (gRPC's scheme, e.g.
 * `/rpcnet.example.v1.Greeter/SayHello`), and its messages are the codec's bytes: protobuf binary
 * for protobuf-es services, UTF-8 JSON for {@link json}, the bytes themselves for {@link raw}.
 * @module
 */
import { create, fromBinary, toBinary, type DescMessage, type DescService, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { CallOptions, RpcClient } from './client.js';
import { RpcError } from './errors.js';
import { func, record, string } from './options.js';
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

/** The call kinds a typed method can have today (client-streaming and bidi are not there yet). */
export type MethodKind = 'unary' | 'server_streaming';

/** One method of a service: its wire name, kind and codecs. */
export interface MethodDef<K extends MethodKind, I, IInit, O, OInit> {
  /** `unary` or `server_streaming`. */
  readonly kind: K;
  /** The method name on the wire, `/<package>.<Service>/<Method>`. */
  readonly path: string;
  /** The request's codec. */
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
  /** `unary` or `server_streaming`. */
  readonly kind: K;
  /** The request's codec. */
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

/** The methods of {@link defineService}'s result. */
export type DefinedMethods<M> = {
  [K in keyof M]: M[K] extends MethodSpec<infer Kd, infer I, infer II, infer O, infer OI> ? MethodDef<Kd, I, II, O, OI> : never;
};

/**
 * A service from a plain TypeScript definition: `typeName` is `<package>.<Service>`, and each
 * method's wire name is `/<typeName>/<key>`.
 * @throws {RpcError} `INVALID_ARGUMENT` for an empty or malformed `typeName`, or a method that is
 * not made with {@link unary} or {@link serverStreaming}.
 */
export function defineService<M extends Record<string, MethodSpec<MethodKind, unknown, unknown, unknown, unknown>>>(
  typeName: string,
  methods: M,
): ServiceDef<DefinedMethods<M>> {
  const name = serviceName(typeName);
  const defs: Record<string, AnyMethod> = {};
  for (const [key, spec] of Object.entries(record('methods', methods, Object.keys(methods) as (keyof M & string)[]))) {
    if (!spec || (spec.kind !== 'unary' && spec.kind !== 'server_streaming')) {
      throw new RpcError('INVALID_ARGUMENT', `method ${key} of ${name} must be made with unary() or serverStreaming()`);
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
 * binary.
 * @throws {RpcError} `UNIMPLEMENTED` for a client-streaming or bidi method (not supported yet).
 */
export function fromProtobuf<S extends DescService>(service: S): ServiceDef<ProtobufMethods<S>> {
  const defs: Record<string, AnyMethod> = {};
  for (const m of service.methods) {
    if (m.methodKind !== 'unary' && m.methodKind !== 'server_streaming') {
      throw new RpcError('UNIMPLEMENTED', `${service.typeName}.${m.name} is ${m.methodKind}, which rpcnet does not support yet`);
    }
    defs[m.localName] = { kind: m.methodKind, path: `/${service.typeName}/${m.name}`, input: protobuf(m.input), output: protobuf(m.output) };
  }
  return { typeName: service.typeName, methods: defs as ProtobufMethods<S> };
}

/** A typed client: each unary method returns its response, each streaming method its items. */
export type TypedClient<S extends ServiceDef<Record<string, AnyMethod>>> = {
  [K in keyof S['methods']]: S['methods'][K] extends MethodDef<infer Kd, infer _I, infer II, infer O, infer _OI>
    ? Kd extends 'unary'
      ? (request: II, options?: CallOptions) => Promise<O>
      : (request: II, options?: CallOptions) => AsyncIterable<O>
    : never;
};

/**
 * A typed client of `service` over `client`.
 * @throws {RpcError} from its methods: as {@link RpcClient.call}; `INVALID_ARGUMENT` when the
 * request cannot be encoded; `INTERNAL` when a response cannot be decoded.
 */
export function createClient<S extends ServiceDef<Record<string, AnyMethod>>>(service: S, client: RpcClient): TypedClient<S> {
  const typed: Record<string, unknown> = {};
  for (const [key, m] of Object.entries(service.methods)) {
    const encode = (request: unknown) => encodeWith(m.input, request, 'INVALID_ARGUMENT', `the request of ${m.path}`);
    const decode = (bytes: Uint8Array) => decodeWith(m.output, bytes, 'INTERNAL', `a response of ${m.path}`);
    typed[key] =
      m.kind === 'unary'
        ? async (request: unknown, options?: CallOptions) => decode(await client.call(m.path, encode(request), options))
        : (request: unknown, options?: CallOptions) => {
            const items = client.callStreaming(m.path, encode(request), options);
            return {
              async *[Symbol.asyncIterator]() {
                for await (const item of items) yield decode(item);
              },
            };
          };
  }
  return typed as TypedClient<S>;
}

/** Typed handlers of a service: a unary method's returns its response, a streaming one's its items. */
export type ServiceHandlers<S extends ServiceDef<Record<string, AnyMethod>>> = {
  [K in keyof S['methods']]: S['methods'][K] extends MethodDef<infer Kd, infer I, infer _II, infer _O, infer OI>
    ? Kd extends 'unary'
      ? (request: I, ctx: CallContext) => OI | Promise<OI>
      : (request: I, ctx: CallContext) => AsyncIterable<OI> | Iterable<OI>
    : never;
};

/**
 * Registers `handlers` for every method of `service` on `server` (an {@link RpcServer} or an
 * {@link RpcWorker}). A request that cannot be decoded fails with `INVALID_ARGUMENT`; a response
 * or item that cannot be encoded fails the call with `INTERNAL`.
 * @throws {RpcError} `INVALID_ARGUMENT` when a method has no handler or a handler is not a function.
 */
export function registerService<S extends ServiceDef<Record<string, AnyMethod>>>(
  server: RpcServer | RpcWorker,
  service: S,
  handlers: ServiceHandlers<S>,
): void {
  const given = record('handlers', handlers as Record<string, (request: unknown, ctx: CallContext) => unknown>, Object.keys(service.methods));
  for (const [key, m] of Object.entries(service.methods)) {
    const fn = func(`handlers.${key}`, given[key]!);
    const decode = (bytes: Uint8Array) => decodeWith(m.input, bytes, 'INVALID_ARGUMENT', `the request of ${m.path}`);
    const encode = (value: unknown) => encodeWith(m.output, value, 'INTERNAL', `a response of ${m.path}`);
    if (m.kind === 'unary') {
      server.unary(m.path, async (request, ctx) => encode(await fn(decode(request), ctx)));
    } else {
      server.serverStreaming(m.path, async function* (request, ctx) {
        for await (const item of fn(decode(request), ctx) as AsyncIterable<unknown>) yield encode(item);
      });
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
