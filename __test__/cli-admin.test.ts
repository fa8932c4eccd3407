/**
 * The operator's commands as separate processes (issue 9, sections 2 and 5): `rpcnet cluster
 * init` and `rpcnet cluster issue` make the credentials, a director and two workers run on their
 * own issued credentials (no host holds the CA key), and `rpcnet workers`, `sessions`, `migrate`
 * and `drain` move a client's live stream between them with an admin certificate, the client
 * receiving every item exactly once, in order. Bad input exits 2, refused or failed requests exit
 * 1, each with a message that names the problem.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import test from 'ava';
import { RpcClient } from '../dist/index.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rpcnet-cli-admin-'));
const procs: ChildProcess[] = [];
test.after.always(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `rpcnet args...` to its end; resolves with stdout, rejects with the exit code and stderr. */
async function rpcnet(args: string[]): Promise<string> {
  return (await run(process.execPath, [CLI, ...args], { env: { ...process.env, RPCNET_CLUSTER_DIR: '', RPCNET_DIRECTOR: '' } })).stdout;
}

/** What a failing `rpcnet args...` exited with, and said. */
async function failure(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await rpcnet(args);
  } catch (e) {
    const { code, stderr } = e as { code: number; stderr: string };
    return { code, stderr };
  }
  throw new Error(`rpcnet ${args.join(' ')} succeeded`);
}

/** Starts a long-running `rpcnet args...` with cluster directory `clusterDir`; resolves with its first stdout line, parsed. */
async function start(args: string[], clusterDir: string): Promise<Record<string, string>> {
  const proc = spawn(process.execPath, [CLI, ...args, '--json'], { env: { ...process.env, RPCNET_CLUSTER_DIR: clusterDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += String(d)));
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`rpcnet ${args.join(' ')} exited ${code}: ${stderr}`)));
  });
  return JSON.parse(first) as Record<string, string>;
}

test('cluster init / issue, then workers, sessions, migrate and drain move a live stream', async (t) => {
  const ca = join(dir, 'ca');
  t.regex(await rpcnet(['cluster', 'init', ca]), /created the cluster CA/);
  for (const [name, role] of [['director-1', 'director'], ['worker-a', 'worker'], ['worker-b', 'worker'], ['ops', 'admin']] as const) {
    const issued = JSON.parse(await rpcnet(['cluster', 'issue', name, '--role', role, '--ca', ca, '--out', join(dir, name), '--json'])) as { name: string; role: string; files: string[] };
    t.deepEqual([issued.name, issued.role], [name, role]);
    t.false(existsSync(join(dir, name, 'ca.key')), `${name} gets no CA key`);
  }
  const config = join(dir, 'rpcnet.toml');
  writeFileSync(config, '[rpcnet.dual_port]\nuserspace_port = 0\nmanagement_port = 0\n');
  const handlers = join(dir, 'handlers.mjs');
  writeFileSync(
    handlers,
    [
      'const sleep = (ms) => new Promise((r) => setTimeout(r, ms));',
      'export default function (worker) {',
      "  worker.serverStreaming('ticks', async function* (request, ctx) {",
      '    for (let seq = ctx.resume?.seq ?? 0; seq < 100000 && !ctx.signal.aborted; seq++) {',
      '      yield Buffer.from(JSON.stringify({ seq, worker: worker.id }));',
      '      await sleep(5);',
      '    }',
      '  });',
      '}',
      '',
    ].join('\n'),
  );

  const director = await start(['director', '--config', config], join(dir, 'director-1'));
  const mgmt = director.mgmtAddress!;
  // No --id: each worker is the name in its certificate.
  const a = await start(['worker', '--handlers', handlers, '--config', config, '--director', mgmt], join(dir, 'worker-a'));
  const b = await start(['worker', '--handlers', handlers, '--config', config, '--director', mgmt], join(dir, 'worker-b'));
  t.deepEqual([a.id, b.id], ['worker-a', 'worker-b']);
  const admin = ['--director', mgmt, '--cluster-dir', join(dir, 'ops')];

  const workers = JSON.parse(await rpcnet(['workers', ...admin, '--json'])) as { workers: { id: string; sessions: number; draining: boolean }[] };
  t.deepEqual(workers.workers.map((w) => w.id), ['worker-a', 'worker-b']);
  t.regex(await rpcnet(['workers', ...admin]), /^WORKER\s+SESSIONS\s+DRAINING\s+USER ADDRESS\s+MGMT ADDRESS\nworker-a\s+0\s+no\s+127\.0\.0\.1:\d+/);

  // A client's stream through the director (it trusts only the cluster's ca.pem).
  const client = await RpcClient.connect(director.address!, { tls: { caFile: join(ca, 'ca.pem') } });
  const seen: { seq: number; worker: string }[] = [];
  const reading = (async () => {
    for await (const item of client.callStreaming('ticks', Buffer.alloc(0))) {
      seen.push(JSON.parse(item.toString()) as { seq: number; worker: string });
      if (seen.length >= 400) break;
    }
  })();
  while (seen.length < 20) await new Promise((r) => setTimeout(r, 10));

  const sessions = JSON.parse(await rpcnet(['sessions', ...admin, '--json'])) as { sessions: { sessionId: string; worker: string }[] };
  t.is(sessions.sessions.length, 1);
  const { sessionId, worker: owner } = sessions.sessions[0]!;
  t.regex(sessionId, /^[0-9a-f]{16}$/);
  t.regex(await rpcnet(['sessions', ...admin]), new RegExp(`^SESSION\\s+WORKER\\s+CONNECTION\\n${sessionId}\\s+${owner}\\s`));
  const other = owner === 'worker-a' ? 'worker-b' : 'worker-a';

  const moved = JSON.parse(await rpcnet(['migrate', sessionId, '--to', other, ...admin, '--json'])) as { completed: boolean; source: string; target: string };
  t.deepEqual([moved.completed, moved.source, moved.target], [true, owner, other]);
  const before = seen.length;
  while (seen.length < before + 20) await new Promise((r) => setTimeout(r, 10));

  // Drain the new owner: the session goes back; the table names it.
  const drained = await rpcnet(['drain', other, ...admin]);
  t.regex(drained, new RegExp(`^SESSION\\s+FROM\\s+TO\\s+MS\\s+FROZEN MS\\s+SNAPSHOT BYTES\\n${sessionId}\\s+${other}\\s+${owner}\\s+\\d`));
  const after = JSON.parse(await rpcnet(['workers', ...admin, '--json'])) as { workers: { id: string; draining: boolean; sessions: number }[] };
  t.deepEqual(after.workers.find((w) => w.id === other), { ...after.workers.find((w) => w.id === other)!, draining: true, sessions: 0 });

  await reading;
  await client.close();
  t.deepEqual(seen.map((s) => s.seq), [...Array(400).keys()], 'every item exactly once, in order, across both moves');
  const owners = seen.map((s) => s.worker).filter((w, i, all) => i === 0 || all[i - 1] !== w);
  t.deepEqual(owners, [owner, other, owner], 'served by the first owner, then the target, then the first again');
});

test('admin commands: a non-admin certificate, a bad id, no director and an unknown session are refused clearly', async (t) => {
  const ca = join(dir, 'ca2');
  await rpcnet(['cluster', 'init', ca]);
  await rpcnet(['cluster', 'issue', 'director-1', '--role', 'director', '--ca', ca, '--out', join(dir, 'd2')]);
  await rpcnet(['cluster', 'issue', 'worker-a', '--role', 'worker', '--ca', ca, '--out', join(dir, 'wa2')]);
  await rpcnet(['cluster', 'issue', 'ops', '--role', 'admin', '--ca', ca, '--out', join(dir, 'ops2')]);
  const config = join(dir, 'rpcnet2.toml');
  writeFileSync(config, '[rpcnet.dual_port]\nuserspace_port = 0\nmanagement_port = 0\n');
  const director = await start(['director', '--config', config], join(dir, 'd2'));
  const mgmt = director.mgmtAddress!;

  // A worker's credentials are no admin's: refused before anything is sent (the director refuses
  // them too, with PERMISSION_DENIED: crates/rpcnet-runtime/tests/enrollment.rs).
  const asWorker = await failure(['sessions', '--director', mgmt, '--cluster-dir', join(dir, 'wa2')]);
  t.is(asWorker.code, 2);
  t.regex(asWorker.stderr, /wa2\/cert\.pem was issued for role worker \(name "worker-a"\), and this process is an admin: give it an admin credentials directory, or make one with `rpcnet cluster issue worker-a --role admin --out NEW_DIR`/);
  const unknown = await failure(['migrate', '00000000000000ff', '--director', mgmt, '--cluster-dir', join(dir, 'ops2')]);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /NOT_FOUND: no session 00000000000000ff/);
  const noDirector = await failure(['sessions', '--cluster-dir', join(dir, 'ops2')]);
  t.is(noDirector.code, 2);
  t.regex(noDirector.stderr, /give its management address with --director host:port, or set RPCNET_DIRECTOR/);
  const badId = await failure(['migrate', 'xyz', '--director', mgmt, '--cluster-dir', join(dir, 'ops2')]);
  t.is(badId.code, 2);
  t.regex(badId.stderr, /session id "xyz" is not 16 hex digits/);
  const noCreds = await failure(['workers', '--director', mgmt, '--cluster-dir', join(dir, 'nothing-here')]);
  t.is(noCreds.code, 2);
  t.regex(noCreds.stderr, /nothing-here.* does not exist: give the right one \(--ca, --cluster-dir, cluster_dir or RPCNET_CLUSTER_DIR\), or create a new cluster there with `rpcnet cluster init/);
  // The client port given for the management port.
  const userPort = await failure(['workers', '--director', director.address!, '--cluster-dir', join(dir, 'ops2')]);
  t.is(userPort.code, 1);
  t.regex(userPort.stderr, /(is not a director's management port|the director's management port, its mgmtAddress\?)/);
  // A mistyped cluster directory stops a director instead of making a CA there.
  const typo = await failure(['director', '--config', config, '--cluster-dir', join(dir, 'd2-typo')]);
  t.is(typo.code, 2);
  t.regex(typo.stderr, /cluster directory .*d2-typo does not exist/);
  t.false(existsSync(join(dir, 'd2-typo')));
  const badRole = await failure(['cluster', 'issue', 'x', '--role', 'king', '--ca', ca]);
  t.is(badRole.code, 2);
  t.regex(badRole.stderr, /argument 'king' is invalid\. Allowed choices are worker, director, admin/);
  const noRole = await failure(['cluster', 'issue', 'x', '--ca', ca]);
  t.is(noRole.code, 2);
  t.regex(noRole.stderr, /required option '--role <role>' not specified/);
  const hostOnWorker = await failure(['cluster', 'issue', 'w', '--role', 'worker', '--ca', ca, '--out', join(dir, 'w-host'), '--host', 'rpc.example.com']);
  t.is(hostOnWorker.code, 2);
  t.regex(hostOnWorker.stderr, /only a director's certificate names hosts/);
  const patternNoOut = await failure(['cluster', 'issue', 'w-*', '--role', 'worker', '--ca', ca]);
  t.is(patternNoOut.code, 2);
  t.regex(patternNoOut.stderr, /w-\* is a pattern: say where to write its credentials with --out DIR/);
  for (const command of ['sessions', 'workers', 'migrate', 'drain', 'cluster']) {
    t.regex(await rpcnet([command, '--help']), /Usage: rpcnet/);
  }

  // A worker may only be the name in its certificate.
  const handlers = join(dir, 'h2.mjs');
  writeFileSync(handlers, 'export const unary = { echo: (r) => r };\n');
  const impostor = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [CLI, 'worker', '--handlers', handlers, '--config', config, '--director', mgmt, '--id', 'worker-b'], {
      env: { ...process.env, RPCNET_CLUSTER_DIR: join(dir, 'wa2') },
    });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += String(d)));
    p.once('exit', (code) => resolve({ code, stderr }));
  });
  t.is(impostor.code, 2);
  t.regex(impostor.stderr, /worker name "worker-b" is not the name "worker-a" in .*wa2\/cert\.pem/);
});
