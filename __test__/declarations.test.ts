/**
 * The public declarations (every .d.ts reachable from the package's `types`, index.d.ts) name
 * nothing of the native binding: no `Native*` type, no `fromNative`, no internal module.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import test from 'ava';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The declaration files reachable from `entry` through relative imports and re-exports. */
function reachable(entry: string): Map<string, string> {
  const files = new Map<string, string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    const text = readFileSync(file, 'utf8');
    files.set(file, text);
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) {
      pending.push(join(dirname(file), m[1]!.replace(/\.(c|m)?js$/, '.d.$1ts')));
    }
  }
  return files;
}

test('no Native type, fromNative or internal module is reachable from index.d.ts', (t) => {
  const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { types: string };
  const files = reachable(join(root, packageJson.types));
  const names = [...files.keys()].map((f) => relative(root, f)).sort();
  t.deepEqual(names, [
    'dist/admin-client.d.ts',
    'dist/admin.d.ts',
    'dist/client.d.ts',
    'dist/config.d.ts',
    'dist/credentials.d.ts',
    'dist/director.d.ts',
    'dist/errors.d.ts',
    'dist/index.d.ts',
    'dist/interceptor.d.ts',
    'dist/log.d.ts',
    'dist/metadata.d.ts',
    'dist/metrics.d.ts',
    'dist/server.d.ts',
    'dist/service.d.ts',
    'dist/stats.d.ts',
    'dist/worker.d.ts',
    'index.d.ts',
  ]);
  for (const [file, text] of files) {
    const name = relative(root, file);
    t.notRegex(text, /\bNative\w*/, `${name} names a Native type`);
    t.notRegex(text, /fromNative|fromBinding|serverOver/, `${name} declares an internal function`);
    t.notRegex(text, /binding\.js|binding\.cjs|director-events|options\.js/, `${name} refers to an internal module`);
  }
  // The walk really read the declarations (a sanity check of this test itself).
  t.regex(files.get(join(root, 'dist/director.d.ts'))!, /export declare class Director extends EventEmitter/);
});
