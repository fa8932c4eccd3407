/**
 * Call metadata (PROTOCOL.md section 5.6) as the Fetch API's `Headers`, the way connect-es
 * exposes it: request headers on the client (`CallOptions.headers`, an interceptor's
 * `req.header`) and in handlers (`ctx.metadata`), response headers and trailers in handlers
 * (`ctx.responseHeader`, `ctx.responseTrailer`) and on the client (`onHeader`, `onTrailer`,
 * `RpcError.metadata`).
 *
 * Keys are case-insensitive ASCII (`Headers` lowercases them). A key ending in `-bin` carries
 * binary bytes, which `Headers` holds as base64 text, as gRPC-web and Connect do: use
 * {@link encodeBinaryHeader} and {@link decodeBinaryHeader}. On the wire the bytes travel raw.
 * `Headers` keeps HTTP's rules: a key given several values reads back as one value joined with
 * `, ` (and is sent as that one value, except `-bin` keys, whose base64 parts are sent as
 * separate entries), and values lose leading and trailing spaces.
 * This module converts between `Headers` and the binding's entries; the rules themselves
 * (allowed characters, sizes) are checked in Rust, where the frames are built.
 * @module
 */
import type { Native } from './binding.js';
import { RpcError } from './errors.js';
import { describe } from './options.js';

/**
 * What request headers may be given as: a `Headers`, an array of `[key, value]` pairs or a
 * record of strings (the Fetch API's `HeadersInit`).
 */
export type MetadataInit = NonNullable<ConstructorParameters<typeof Headers>[0]>;

/** Base64 text of `value` (a string is UTF-8 encoded first), for a `-bin` header. */
export function encodeBinaryHeader(value: Uint8Array | string): string {
  return Buffer.from(typeof value === 'string' ? Buffer.from(value, 'utf8') : value).toString('base64');
}

/**
 * The bytes of a `-bin` header value (base64, padded or not; gRPC's rule). Several values that
 * `Headers` joined with `, ` are decoded and concatenated.
 * @throws {RpcError} `INVALID_ARGUMENT` when the value is not base64.
 */
export function decodeBinaryHeader(value: string): Uint8Array {
  const parts = value.split(',').map((p) => p.trim());
  for (const p of parts) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(p)) throw new RpcError('INVALID_ARGUMENT', `binary header value ${JSON.stringify(p)} is not base64`);
  }
  return Buffer.concat(parts.map((p) => Buffer.from(p, 'base64')));
}

/**
 * `init` as a new `Headers` (a copy, so the caller's object is not changed by interceptors).
 * @throws {RpcError} `INVALID_ARGUMENT` for what `Headers` refuses (a bad name or value), or a
 * value that is neither `Headers`, an array of pairs nor a record.
 */
export function headersOf(name: string, init: unknown): Headers {
  if (init === undefined) return new Headers();
  if (init === null || typeof init !== 'object') {
    throw new RpcError('INVALID_ARGUMENT', `${name} must be a Headers object, an array of [key, value] pairs or a record of strings, got ${describe(init)}`);
  }
  try {
    return new Headers(init as MetadataInit);
  } catch (e) {
    throw new RpcError('INVALID_ARGUMENT', `${name}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * `headers` as the binding's entries; `undefined` when empty (nothing crosses).
 * @throws {RpcError} `INVALID_ARGUMENT` for a `-bin` value that is not base64.
 * @internal
 */
export function toEntries(headers: Headers | undefined): Native.NativeMetadataEntry[] | undefined {
  if (!headers) return undefined;
  const out: Native.NativeMetadataEntry[] = [];
  headers.forEach((value, key) => {
    if (!key.endsWith('-bin')) {
      out.push({ key, value: Buffer.from(value, 'latin1') });
      return;
    }
    // Headers joined repeated values with ", ": each base64 part is its own entry.
    for (const part of value.split(',')) out.push({ key, value: Buffer.from(decodeBinaryHeader(part)) });
  });
  return out.length === 0 ? undefined : out;
}

/**
 * The binding's entries as `Headers` (`-bin` values as base64).
 * @internal
 */
export function fromEntries(entries: readonly Native.NativeMetadataEntry[] | undefined | null): Headers {
  const h = new Headers();
  for (const { key, value } of entries ?? []) {
    h.append(key, key.endsWith('-bin') ? value.toString('base64') : value.toString('latin1'));
  }
  return h;
}

/**
 * Copies every entry of `from` into `to` (appending).
 * @internal
 */
export function appendAll(to: Headers, from: Headers): void {
  from.forEach((value, key) => to.append(key, value));
}
