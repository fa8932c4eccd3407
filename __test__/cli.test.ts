/**
 * The `rpcnet` command (src/cli.ts) as separate processes: a director and a worker started from a
 * config file and a handlers module serve a client, stop on SIGTERM with status 0, and bad input
 * exits non-zero with a message that names it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import test from 'ava';
import { RpcClient } from '../dist/index.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const INDEX = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'rpcnet-cli-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

/** Starts `rpcnet args...`; resolves with the process and its first stdout line, parsed. */
async function start(args: string[], env: Record<string, string> = {}): Promise<{ proc: ChildProcess; ready: Record<string, string> }> {
  const proc = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += String(d)));
  const lines = createInterface({ input: proc.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`rpcnet ${args.join(' ')} exited ${code}: ${stderr}`)));
  });
  return { proc, ready: JSON.parse(first) as Record<string, string> };
}

function exited(proc: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
}

test('a director and a worker from the command line serve a client, and stop on SIGTERM', async (t) => {
  const config = join(dir, 'rpcnet.toml');
  mkdirSync(join(dir, 'cluster')); // an empty directory: the processes make a development CA in it
  writeFileSync(config, `[rpcnet]\ncluster_dir = ${JSON.stringify(join(dir, 'cluster'))}\n[rpcnet.dual_port]\nuserspace_port = 0\nmanagement_port = 0\n[rpcnet.admin]\nport = 0\n`);
  const handlers = join(dir, 'handlers.mjs');
  writeFileSync(
    handlers,
    [
      `export const unary = { echo: (req) => req };`,
      `export const serverStreaming = { count: async function* () { yield Buffer.from('1'); } };`,
      `export const bidiStreaming = { upper: async function* (requests) { for await (const r of requests) yield Buffer.from(r.toString().toUpperCase()); } };`,
      '',
    ].join('\n'),
  );
  const director = await start(['director', '--config', config, '--json']);
  t.is(director.ready.role, 'director');
  t.regex(director.ready.adminAddress ?? '', /^127\.0\.0\.1:\d+$/);
  // The config's admin port 0 gives the worker a free port of its own too.
  const worker = await start(['worker', '--handlers', handlers, '--config', config, '--id', 'cli-worker', '--director', director.ready.mgmtAddress!, '--json']);
  t.is(worker.ready.id, 'cli-worker');
  const client = await RpcClient.connect(director.ready.address!, { tls: { caFile: director.ready.caFile! } });
  try {
    t.is((await client.call('echo', Buffer.from('hi'))).toString(), 'hi');
    const upper: string[] = [];
    for await (const item of client.callBidiStreaming('upper', [Buffer.from('a'), Buffer.from('b')])) upper.push(item.toString());
    t.deepEqual(upper, ['A', 'B'], 'a bidi handler exported by the module, through the director');
    const ready = await fetch(`http://${director.ready.adminAddress}/health/ready`);
    t.is(ready.status, 200, 'the director has its worker');
  } finally {
    await client.close();
  }
  worker.proc.kill('SIGTERM');
  t.is(await exited(worker.proc), 0, 'the worker drains and exits 0');
  director.proc.kill('SIGTERM');
  t.is(await exited(director.proc), 0);
});

test('--help exits 0; bad input exits 2 with a message that names it', async (t) => {
  const help = await run(process.execPath, [CLI, 'worker', '--help']);
  t.regex(help.stdout, /--handlers <module>/);
  const cases: [string[], RegExp][] = [
    [['worker', '--id', 'w'], /required option '--handlers <module>' not specified/],
    [['director', '--config', join(dir, 'missing.toml')], /INVALID_ARGUMENT: cannot read the config file .*missing\.toml/],
    [['worker', '--handlers', join(dir, 'none.mjs'), '--id', 'w', '--director', '127.0.0.1:1'], /cannot load the handlers module .*none\.mjs/],
    [['bogus'], /unknown command 'bogus'/],
  ];
  for (const [args, message] of cases) {
    const e = await t.throwsAsync(run(process.execPath, [CLI, ...args]));
    t.is((e as { code?: number }).code, 2, args.join(' '));
    t.regex((e as { stderr?: string }).stderr ?? '', message);
  }
  const empty = join(dir, 'empty.mjs');
  writeFileSync(empty, `import ${JSON.stringify(INDEX)};\nexport const nothing = 1;\n`);
  const e = await t.throwsAsync(run(process.execPath, [CLI, 'worker', '--handlers', empty, '--id', 'w', '--director', '127.0.0.1:1']));
  t.is((e as { code?: number }).code, 2);
  t.regex((e as { stderr?: string }).stderr ?? '', /empty\.mjs exports no handlers: export a default function/);
});
