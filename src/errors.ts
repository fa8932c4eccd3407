/**
 * Errors of rpcnet. Every failure a caller sees is an {@link RpcError} with a stable
 * {@link ErrorCode}; the codes and their numbers are defined in PROTOCOL.md ("Error codes") and
 * follow gRPC's numbering where gRPC has the code.
 * @module
 */
import type { Native } from './binding.js';
import { appendAll, fromEntries, type MetadataInit } from './metadata.js';

/** The stable error codes (PROTOCOL.md "Error codes"). */
export const ERROR_CODES = [
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
  'PROTOCOL',
] as const;

/**
 * A stable error code:
 * - `CANCELLED` (1): the caller cancelled (AbortSignal) or the call was stopped.
 * - `UNKNOWN` (2): a handler threw an error without a code.
 * - `INVALID_ARGUMENT` (3): bad options or a request the method's kind does not match.
 * - `DEADLINE_EXCEEDED` (4): the call's `deadlineMs` passed.
 * - `NOT_FOUND` (5): something the request names does not exist (a handler's answer; a director's
 *   for an unknown session or worker).
 * - `ALREADY_EXISTS` (6): what the request wanted to create exists (a handler's answer).
 * - `PERMISSION_DENIED` (7): the caller may not do this (a handler's answer).
 * - `RESOURCE_EXHAUSTED` (8): a frame exceeded the maximum frame size, or another limit.
 * - `FAILED_PRECONDITION` (9): the system is not in the state the request needs.
 * - `ABORTED` (10): a concurrency conflict; the caller may retry at a higher level.
 * - `OUT_OF_RANGE` (11): the request went past a valid range.
 * - `UNIMPLEMENTED` (12): no handler is registered for the method; a protobuf method kind rpcnet
 *   does not support yet.
 * - `INTERNAL` (13): a bug or unexpected local failure.
 * - `UNAVAILABLE` (14): the server cannot be reached or the connection was lost.
 * - `DATA_LOSS` (15): unrecoverable data loss or corruption (a handler's answer).
 * - `UNAUTHENTICATED` (16): the request lacks valid credentials (a handler's answer).
 * - `PROTOCOL` (256): the peer broke PROTOCOL.md (malformed frame, sequence gap).
 *
 * The numbers are gRPC's (PROTOCOL.md section 6); handlers may throw any of them.
 */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Returns true when `value` is one of {@link ERROR_CODES}. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}

/**
 * `e` as an {@link RpcError}: itself if it is one; an error whose `code` property is a stable
 * code keeps that code and its message; anything else is `UNKNOWN`, its message prefixed with
 * `context` (and `e` kept as the cause).
 */
export function asRpcError(e: unknown, context: string): RpcError {
  if (e instanceof RpcError) return e;
  const { code, message } = toWire(e);
  return new RpcError(code, code === 'UNKNOWN' ? `${context}: ${message}` : message, { cause: e });
}

/**
 * The error every rpcnet API throws or rejects with.
 *
 * Handlers may throw it to choose the code the caller sees; `message` travels to the caller
 * unchanged (PROTOCOL.md ERROR frame).
 */
export class RpcError extends Error {
  /** The stable code. */
  readonly code: ErrorCode;

  /**
   * Metadata that came with the error (PROTOCOL.md section 5.6): on the client, the response
   * headers and trailers the server sent with its ERROR (as connect-es's
   * `ConnectError.metadata`); thrown by a handler, trailers sent with the ERROR. Empty
   * otherwise.
   */
  readonly metadata: Headers;

  /**
   * @param code - stable code, see {@link ErrorCode}
   * @param message - human-readable description naming the problem
   * @param options - standard `ErrorOptions` (`cause`), and `metadata`
   */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions & { metadata?: MetadataInit }) {
    super(message, options);
    this.name = 'RpcError';
    this.code = code;
    this.metadata = new Headers(options?.metadata);
  }
}

/**
 * Converts anything the native binding threw or rejected with into an {@link RpcError}. The
 * binding's errors are `Error` objects whose `code` property is a stable code; they keep it and
 * their message. Anything else (an argument the binding could not convert, a bug) is `INTERNAL`.
 * @internal
 */
export function fromBinding(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof Error) {
    const { code, metadata } = error as { code?: unknown; metadata?: Native.NativeResponseMetadata };
    const e = new RpcError(isErrorCode(code) ? code : 'INTERNAL', error.message, { cause: error });
    // The binding's call errors carry the response headers and trailers (src/metadata.ts).
    if (metadata) {
      appendAll(e.metadata, fromEntries(metadata.header));
      appendAll(e.metadata, fromEntries(metadata.trailer));
    }
    return e;
  }
  return new RpcError('INTERNAL', String(error), { cause: error });
}

/**
 * The error for a tagged value from the binding (an event, a hook question) whose tag this
 * TypeScript layer does not know: the binding and the TypeScript package are out of step. Such a
 * value is never read as some default kind.
 * @param what - what the value is, e.g. `director event`
 * @param value - the value; its `kind` is named in the message
 * @internal
 */
export function unknownKind(what: string, value: unknown): RpcError {
  const kind = typeof value === 'object' && value !== null ? (value as { kind?: unknown }).kind : value;
  return new RpcError('INTERNAL', `unknown ${what} kind ${JSON.stringify(kind) ?? String(kind)} from the native binding`);
}

/**
 * Reports an internal error that no caller can receive (it happened in a background loop) as a
 * process warning (`process.on('warning')`, printed to stderr by default), without stopping the
 * loop.
 * @internal
 */
export function reportInternal(error: RpcError): void {
  process.emitWarning(error);
}

/**
 * The code and message a handler's thrown value is reported with: an `RpcError` (or any error
 * with a valid string `code`) keeps its code; anything else is `UNKNOWN`.
 * @internal
 */
export function toWire(error: unknown): { code: ErrorCode; message: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { code: isErrorCode(code) ? code : 'UNKNOWN', message: error.message };
  }
  return { code: 'UNKNOWN', message: String(error) };
}
