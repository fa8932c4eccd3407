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

/**
 * The napi-rs platform package this machine needs, e.g. `rpcnet-linux-x64-gnu`: platform, arch
 * and, on Linux, the C library (`gnu` or `musl`), on Windows `msvc`.
 */
function platformPackage(): string {
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const abi = process.platform === 'linux' ? (report?.header?.glibcVersionRuntime ? '-gnu' : '-musl') : process.platform === 'win32' ? '-msvc' : '';
  return `rpcnet-${process.platform}-${process.arch}${abi}`;
}

function load(): typeof Native {
  try {
    return require('./native/binding.cjs') as typeof Native;
  } catch (error) {
    const pkg = platformPackage();
    throw new Error(
      `rpcnet: the native addon for ${process.platform}-${process.arch} does not load: the package ${pkg} ` +
        `is missing or broken. Install it (\`npm install ${pkg}\`; npm installs it with rpcnet unless ` +
        'optional dependencies are omitted), or, in a checkout of rpcnet, run `npm run build` (needs cargo). ' +
        `Packages are published for linux-x64-gnu, linux-arm64-gnu, linux-x64-musl, darwin-x64, darwin-arm64 and win32-x64-msvc.`,
      { cause: error },
    );
  }
}

/** The addon's exports. */
export const native: typeof Native = load();

