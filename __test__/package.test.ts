/**
 * The npm packages as a user gets them (issue 9, section 1): `npm pack` of the main package and
 * of this platform's package (npm/pack.ts), installed into a fresh directory whose PATH has no
 * cargo and no rustc, then a TypeScript program there, type-checked against the installed
 * declarations and run against the installed addon: a server and a client, and a director with
 * two workers and a drain.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import test from 'ava';
import { packAll, PLATFORM } from '../npm/pack.ts';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'rpcnet-package-'));
test.after.always(() => rmSync(work, { recursive: true, force: true }));

/** A PATH with node and npm but without cargo or rustc. */
const PATH = [dirname(process.execPath), '/usr/bin', '/bin'].join(':');

const PROGRAM = `
import { Director, RpcClient, RpcServer, RpcWorker } from 'rpcnet';

const server = await RpcServer.listen();
server.unary('echo', (req) => req);
const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint } });
const echoed = new TextDecoder().decode(await client.call('echo', new TextEncoder().encode('hi')));
await client.close();
await server.close();

const clusterDir = process.argv[2]!;
const director = await Director.start({ clusterDir, shutdownOnSigterm: false });
const start = async (id: string) => {
  const w = await RpcWorker.start({ id, director: director.mgmtAddress, clusterDir, drainOnSigterm: false });
  w.serverStreaming('count', async function* (_req, ctx) {
    for (let seq = ctx.resume?.seq ?? 0; seq < 20; seq++) {
      yield new Uint8Array([seq]);
      ctx.checkpoint(new Uint8Array([seq + 1]));
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  return w;
};
const a = await start('worker-a');
const user = await RpcClient.connect(director.address, { tls: { caFile: director.caFile } });
const items: number[] = [];
const reading = (async () => {
  for await (const item of user.callStreaming('count', new Uint8Array())) items.push(item[0]!);
})();
await new Promise((r) => setTimeout(r, 100));
const b = await start('worker-b');
await a.drain(10_000);
await reading;
await user.close();
await a.close();
await b.close();
await director.close();
console.log(JSON.stringify({ echoed, items }));
`;

test('the packed packages install without a Rust toolchain and work: types, RPC, a cluster and a drain', async (t) => {
  const packed = packAll(join(work, 'tarballs'));
  const mainKiB = statSync(packed.main).size / 1024;
  const addonMiB = statSync(packed.platform).size / 1024 / 1024;
  t.log(`rpcnet ${mainKiB.toFixed(0)} KiB, rpcnet-${PLATFORM} ${addonMiB.toFixed(1)} MiB (tarballs)`);
  const { stdout: listing } = await run('tar', ['tzf', packed.main]);
  t.false(/dist\/(demo|examples)\//.test(listing), 'no demo or examples in the package');
  t.false(/\.node$/m.test(listing), 'the main package carries no addon');
  t.true(listing.includes('package/LICENSE-MIT') && listing.includes('package/LICENSE-APACHE'));

  const app = join(work, 'app');
  const env = { ...process.env, PATH, npm_config_update_notifier: 'false' };
  await run('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await t.throwsAsync(run('sh', ['-c', 'command -v cargo || command -v rustc'], { env }), undefined, 'no Rust toolchain on the PATH');
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', packed.main, packed.platform, '@types/node@20'], { cwd: app, env, timeout: 180_000 });
  t.deepEqual(readdirSync(join(app, 'node_modules', `rpcnet-${PLATFORM}`)).sort(), ['LICENSE-APACHE', 'LICENSE-MIT', 'README.md', 'package.json', `rpcnet.${PLATFORM}.node`]);

  const cli = await run(join(app, 'node_modules', '.bin', 'rpcnet'), ['--help'], { cwd: app, env });
  t.regex(cli.stdout, /director \[options\]/, 'the rpcnet command is installed');
  t.regex(cli.stdout, /sessions \[options\][\s\S]*cluster/, 'with the admin and cluster commands');
  const bin = join(app, 'node_modules', '.bin', 'rpcnet');
  await run(bin, ['cluster', 'init', 'ca'], { cwd: app, env });
  const issued = JSON.parse((await run(bin, ['cluster', 'issue', 'worker-a', '--role', 'worker', '--ca', 'ca', '--json'], { cwd: app, env })).stdout) as { files: string[] };
  t.deepEqual(issued.files.map((f) => f.slice(f.lastIndexOf('/') + 1)), ['ca.pem', 'secret.bin', 'key.pem', 'cert.pem'], 'the installed addon issues credentials');

  writeFileSync(join(app, 'main.ts'), PROGRAM);
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] }, files: ['main.ts'] }),
  );
  await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: app, env });
  await run('mkdir', ['-p', join(work, 'cluster')]); // empty: the director makes a development CA in it
  const { stdout } = await run(process.execPath, ['--import', join(ROOT, 'node_modules', '@oxc-node', 'core', 'register.mjs'), 'main.ts', join(work, 'cluster')], { cwd: app, env, timeout: 60_000 });
  const result = JSON.parse(stdout.trim().split('\n').pop()!) as { echoed: string; items: number[] };
  t.is(result.echoed, 'hi');
  t.deepEqual(result.items, [...Array(20).keys()], 'the drained stream: every item once, in order');
});
