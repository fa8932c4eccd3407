/**
 * Checks of the public API's options and arguments, run in TypeScript before anything crosses
 * into the native binding. Every failure is an {@link RpcError} `INVALID_ARGUMENT` that names the
 * option, what it must be and what it got, e.g.
 * `failoverAfterMs must be a positive integer (ms), got "5" (string)`.
 *
 * Each check returns the value it accepted, typed, so callers build the binding's options from
 * the results. Semantic checks that need the runtime (a pin's format, a readable PEM file, an IP
 * address) stay in Rust, whose errors arrive with their code too.
 *
 * Internal: not re-exported from index.ts, and no public declaration refers to it.
 * @module
 */
import { RpcError } from './errors.js';

/** The largest value of a 32-bit unsigned option (ms, bytes, items): 4294967295. */
export const U32_MAX = 0xffff_ffff;

/**
 * How a rejected value is shown in a message: strings quoted, then the type, e.g. `"5" (string)`,
 * `-1 (number)`, `undefined`, `null`, `an array`, `an object`.
 */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value)} (string)`;
    case 'number':
    case 'boolean':
      return `${String(value)} (${typeof value})`;
    case 'bigint':
      return `${value}n (bigint)`;
    case 'undefined':
      return 'undefined';
    case 'function':
      return 'a function';
    case 'symbol':
      return `${String(value)} (symbol)`;
    default:
      if (value === null) return 'null';
      if (Array.isArray(value)) return 'an array';
      if (value instanceof Uint8Array) return `a ${value.constructor.name} of ${value.byteLength} bytes`;
      return 'an object';
  }
}

/** The error for option `name`, which must be `expected` (e.g. `a positive integer (ms)`). */
export function invalid(name: string, expected: string, value: unknown): RpcError {
  return new RpcError('INVALID_ARGUMENT', `${name} must be ${expected}, got ${describe(value)}`);
}

/**
 * Checks that `value` is an options object (or `undefined`, read as `{}`) whose keys are all in
 * `known`, and returns it. `name` is how messages call it (`options`, `tls`, `streamWindow`).
 * @throws {RpcError} `INVALID_ARGUMENT` for a non-object or an unknown (e.g. misspelled) key.
 */
export function record<T extends object>(name: string, value: T | undefined, known: readonly (keyof T & string)[]): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(name, 'an object', value);
  for (const key of Object.keys(value)) {
    if (!(known as readonly string[]).includes(key)) {
      throw new RpcError('INVALID_ARGUMENT', `${name} has no option ${JSON.stringify(key)}; known: ${known.join(', ')}`);
    }
  }
  return value;
}

/**
 * Checks that `value` is an integer in `min..max` and returns it. `unit` (e.g. `ms`) is named in
 * the message: `a positive integer (ms)`, `a non-negative integer`, `an integer in 0..65535`.
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise.
 */
export function integer(name: string, value: unknown, min: number, max: number, unit?: string): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
  let expected =
    max === U32_MAX && min === 1
      ? 'a positive integer'
      : max === U32_MAX && min === 0
        ? 'a non-negative integer'
        : `an integer in ${min}..${max}`;
  if (unit) expected += ` (${unit})`;
  if (max === U32_MAX && typeof value === 'number' && value > max) expected += ` no larger than ${max}`;
  throw invalid(name, expected, value);
}

/** {@link integer}, or `undefined` when `value` is `undefined`. */
export function optionalInteger(name: string, value: unknown, min: number, max: number, unit?: string): number | undefined {
  return value === undefined ? undefined : integer(name, value, min, max, unit);
}

/** Default `idleTimeoutMs` of servers and directors, ms (PROTOCOL.md section 2). */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/** Default `keepAliveMs` of servers and directors, ms (PROTOCOL.md section 2). */
export const DEFAULT_KEEP_ALIVE_MS = 5_000;

/**
 * Checks a server's `idleTimeoutMs` (a positive integer, ms) and `keepAliveMs` (an integer, ms,
 * 0 = no keep-alive), each optional, and returns both for the binding. Without `keepAliveMs` it
 * is {@link DEFAULT_KEEP_ALIVE_MS}, or a third of `idleTimeoutMs` if that is less; a given one
 * must be below the idle timeout (a rarer PING could not keep a connection open).
 * @throws {RpcError} `INVALID_ARGUMENT` naming the option.
 */
export function connectionTimers(
  idleTimeoutMs: unknown,
  keepAliveMs: unknown,
): { idleTimeoutMs: number; keepAliveMs: number } {
  const idle = optionalInteger('idleTimeoutMs', idleTimeoutMs, 1, U32_MAX, 'ms') ?? DEFAULT_IDLE_TIMEOUT_MS;
  const keepAlive = optionalInteger('keepAliveMs', keepAliveMs, 0, U32_MAX, 'ms') ?? Math.min(DEFAULT_KEEP_ALIVE_MS, Math.floor(idle / 3));
  if (keepAlive >= idle) throw invalid('keepAliveMs', `an integer (ms) below idleTimeoutMs (${idle})`, keepAlive);
  return { idleTimeoutMs: idle, keepAliveMs: keepAlive };
}

/**
 * Checks that `value` is a UDP port (an integer in 0..65535, 0 = any free port), or `undefined`.
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise.
 */
export function optionalPort(name: string, value: unknown): number | undefined {
  return optionalInteger(name, value, 0, 65535);
}

/**
 * Checks that `value` is a non-empty string and returns it.
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise (including `undefined`: the option is required).
 */
export function string(name: string, value: unknown): string {
  if (typeof value === 'string' && value.length > 0) return value;
  throw invalid(name, 'a non-empty string', value);
}

/**
 * Checks that `value` is a non-empty string or a non-empty array of non-empty strings, and
 * returns them as an array. `what` says what each string is (e.g. `host:port`).
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise, naming `name` (or `name[i]` for a bad element).
 */
export function stringList(name: string, value: unknown, what: string): string[] {
  if (typeof value === 'string' && value.length > 0) return [value];
  const expected = `a non-empty string or a non-empty array of strings (${what})`;
  if (!Array.isArray(value)) throw invalid(name, expected, value);
  if (value.length === 0) throw new RpcError('INVALID_ARGUMENT', `${name} must be ${expected}, got an empty array`);
  return value.map((v, i) => {
    if (typeof v === 'string' && v.length > 0) return v;
    throw invalid(`${name}[${i}]`, `a non-empty string (${what})`, v);
  });
}

/** {@link string}, or `undefined` when `value` is `undefined`. */
export function optionalString(name: string, value: unknown): string | undefined {
  return value === undefined ? undefined : string(name, value);
}

/**
 * Checks that `value` is a boolean, or `undefined`.
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise.
 */
export function optionalBoolean(name: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw invalid(name, 'a boolean', value);
}

/**
 * Checks that `value` is a function and returns it.
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise.
 */
export function func<F extends (...args: never[]) => unknown>(name: string, value: F): F {
  if (typeof value === 'function') return value;
  throw invalid(name, 'a function', value);
}

/** {@link func}, or `undefined` when `value` is `undefined`. */
export function optionalFunc<F extends (...args: never[]) => unknown>(name: string, value: F | undefined): F | undefined {
  return value === undefined ? undefined : func(name, value);
}

/**
 * Checks that `value` is bytes (a `Uint8Array`, `Buffer` included) and returns a Buffer over the
 * same memory (no copy; the binding takes Buffers).
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise.
 */
export function bytes(name: string, value: unknown): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw invalid(name, 'a Uint8Array or Buffer', value);
}

/**
 * Checks that `value` is an array of functions (interceptors), or `undefined` (none).
 * @throws {RpcError} `INVALID_ARGUMENT` naming `name`, or `name[i]` for an element that is not a
 * function.
 */
export function optionalFunctions<F>(name: string, value: unknown): F[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(name, 'an array of functions', value);
  value.forEach((f, i) => {
    if (typeof f !== 'function') throw invalid(`${name}[${i}]`, 'a function', f);
  });
  return [...value] as F[];
}

/**
 * Checks that `value` is an `AbortSignal`, or `undefined`.
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise.
 */
export function optionalSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw invalid(name, 'an AbortSignal', value);
}

/**
 * Checks a PEM certificate/key pair option (`tls: { certPath, keyPath }`), both required when
 * the object is given.
 * @throws {RpcError} `INVALID_ARGUMENT` otherwise.
 */
export function optionalPemFiles(
  name: string,
  value: { certPath: string; keyPath: string } | undefined,
): { certPath: string; keyPath: string } | undefined {
  if (value === undefined) return undefined;
  const o = record(name, value, ['certPath', 'keyPath']);
  return { certPath: string(`${name}.certPath`, o.certPath), keyPath: string(`${name}.keyPath`, o.keyPath) };
}
