/**
 * Loads the native addon (crates/rpcnet-napi, built by `napi build` into dist/native). Internal:
 * the public API (RpcServer, RpcClient) hides the binding's raw types.
 * @module
 * @internal
 */
import { createRequire } from 'node:module';
import type * as Native from '../dist/native/binding.cjs';

export type { Native };

const require = createRequire(import.meta.url);

function load(): typeof Native {
  try {
    return require('./native/binding.cjs') as typeof Native;
  } catch (error) {
    throw new Error(
      'rpcnet: the native addon is missing or does not load; run `npm run build` (needs cargo) ' +
        `or install a prebuilt package for ${process.platform}-${process.arch}`,
      { cause: error },
    );
  }
}

/** The addon's exports. */
export const native: typeof Native = load();

/** Views bytes as a Buffer without copying (the binding takes Buffers). */
export function asBuffer(bytes: Uint8Array): Buffer {
  if (Buffer.isBuffer(bytes)) return bytes;
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`expected a Uint8Array or Buffer, got ${typeof bytes}`);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
