/**
 * Loads the native addon (crates/rpcnet-napi, built by `napi build` into dist/native). Its
 * functions reject with `Error`s that carry a `code` (see `fromBinding` in errors.ts), and its
 * events and hook questions are objects tagged by `kind`.
 *
 * Internal: not re-exported from index.ts, and no public declaration refers to it or names the
 * binding's types.
 * @module
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

