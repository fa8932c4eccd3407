/**
 * Packs the npm packages of this machine's platform (`npm run package`): the main package
 * `rpcnet` (JavaScript, declarations, the loader; no addon) and the platform package
 * `rpcnet-linux-x64-gnu` (the stripped addon), in napi-rs's layout: the main package lists every
 * platform package in `optionalDependencies`, npm installs the one whose `os` / `cpu` / `libc`
 * match, and the loader (dist/native/binding.cjs) requires it. The other platforms' packages are
 * built by the release workflow (.github/workflows/release.yml), which cannot run here.
 *
 * ```sh
 * npm run package              # tarballs in ./packages
 * node --import @oxc-node/core/register npm/pack.ts DIR   # (after npm run build) into DIR
 * ```
 * @module
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** This machine's platform package: napi-rs's name for linux x64 glibc. */
export const PLATFORM = 'linux-x64-gnu';

/** The tarballs written: the main package's and the platform package's paths. */
export interface Packed {
  main: string;
  platform: string;
}

function npmPack(dir: string, dest: string): string {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dest], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [info] = JSON.parse(out) as { filename: string }[];
  return join(dest, info!.filename);
}

/**
 * Packs both packages into `dest` (created if missing); the addon must have been built
 * (`npm run build`). The platform package gets the addon stripped of symbols (`strip
 * --strip-unneeded`) and both license files.
 * @throws Error when the addon is missing or a tool fails (its output is in the message).
 */
export function packAll(dest: string): Packed {
  const addon = join(ROOT, 'dist', 'native', `rpcnet.${PLATFORM}.node`);
  if (!existsSync(addon)) throw new Error(`${addon} is missing: run \`npm run build\` first`);
  const platformDir = join(ROOT, 'npm', PLATFORM);
  const shipped = join(platformDir, `rpcnet.${PLATFORM}.node`);
  copyFileSync(addon, shipped);
  execFileSync('strip', ['--strip-unneeded', shipped]);
  for (const license of ['LICENSE-MIT', 'LICENSE-APACHE']) copyFileSync(join(ROOT, license), join(platformDir, license));
  mkdirSync(dest, { recursive: true });
  return { main: npmPack(ROOT, dest), platform: npmPack(platformDir, dest) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dest = resolve(process.argv[2] ?? join(ROOT, 'packages'));
  const packed = packAll(dest);
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  console.log(`rpcnet ${version}: ${packed.main}\n${packed.platform}`);
}
