/**
 * rpcnet: QUIC RPC for TypeScript services with a Rust core (quinn, rustls).
 *
 * - {@link RpcServer}: serve unary and server-streaming methods.
 * - {@link RpcClient}: call them over one QUIC connection.
 * - {@link RpcError}: every failure, with a stable {@link ErrorCode}.
 *
 * The wire protocol is specified in PROTOCOL.md.
 * @module
 */
export { RpcServer } from './server.js';
export type {
  ServerOptions,
  CallContext,
  CallConnection,
  UnaryHandler,
  ServerStreamingHandler,
  ClientStreamingHandler,
  BidiStreamingHandler,
} from './server.js';
export { RpcClient } from './client.js';
export type { ClientOptions, ClientTlsOptions, CallOptions } from './client.js';
export { RpcError, ERROR_CODES, isErrorCode } from './errors.js';
export { encodeBinaryHeader, decodeBinaryHeader } from './metadata.js';
export type { MetadataInit } from './metadata.js';
export { registry as metricsRegistry } from './metrics.js';
export type { AdminOptions } from './admin.js';
export { setLogHandler } from './log.js';
export { loadConfig, parseConfig, envName } from './config.js';
export type { RpcnetConfig } from './config.js';
export type { LogRecord } from './log.js';
export type {
  ClientInterceptor,
  ClientCallFn,
  ClientRequest,
  ClientResponse,
  ClientUnaryResponse,
  ClientStreamResponse,
  ServerInterceptor,
  ServerCallFn,
  ServerRequest,
  ServerResponse,
} from './interceptor.js';
export type { ErrorCode } from './errors.js';
export type { ConnectionStats } from './stats.js';
export {
  bidiStreaming,
  clientStreaming,
  createClient,
  defineService,
  fromProtobuf,
  json,
  protobuf,
  raw,
  registerService,
  serverStreaming,
  unary,
} from './service.js';
export type {
  AnyMethod,
  Codec,
  DefinedMethods,
  MethodDef,
  MethodKind,
  MethodSpec,
  ProtobufMethods,
  ServiceDef,
  ServiceHandlers,
  StreamingRequests,
  TypedClient,
} from './service.js';
export { RpcWorker } from './worker.js';
export type { WorkerOptions, WorkerHooks, MigrationRequestInfo, MigrationDecision } from './worker.js';
export { AdminClient } from './admin-client.js';
export type { AdminClientOptions, AdminWorkerInfo, SessionInfo } from './admin-client.js';
export { initCluster, issueCredentials, ROLES } from './credentials.js';
export type { IssueOptions, IssuedCredentials, Role } from './credentials.js';
export { Director } from './director.js';
export type {
  DirectorOptions,
  DirectorEvent,
  DirectorEventMap,
  DirectorListener,
  DirectorPolicy,
  MigrationReport,
  WorkerInfo,
  WorkerJoinedEvent,
  WorkerLostEvent,
  SessionOpenedEvent,
  SessionClosedEvent,
  MigrationStartedEvent,
  MigrationCompletedEvent,
  MigrationAbortedEvent,
  FailoverEvent,
} from './director.js';
