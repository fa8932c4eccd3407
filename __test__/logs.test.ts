import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const index = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** Starts and closes an RpcServer in a new node process with `env`; returns its stderr. */
async function serverLogs(env: Record<string, string>): Promise<string> {
  const script = `const { RpcServer } = await import(${JSON.stringify(index)}); const s = await RpcServer.listen(); await s.close();`;
  const { stderr } = await run(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env } });
  return stderr;
}

test('logs written to a pipe carry no ANSI colour codes', async (t) => {
  const stderr = await serverLogs({ RPCNET_LOG: 'rpcnet=info' });
  t.regex(stderr, /rpcnet server listening/);
  t.false(stderr.includes('\x1b['), stderr);
});

test('RPCNET_LOG_FORMAT=json writes one JSON object per line', async (t) => {
  const stderr = await serverLogs({ RPCNET_LOG: 'rpcnet=info', RPCNET_LOG_FORMAT: 'json' });
  const lines = stderr.split('\n').filter((l) => l.length > 0);
  t.true(lines.length > 0);
  const records = lines.map((l) => JSON.parse(l) as { level: string; fields: { message: string; addr?: string } });
  const listening = records.find((r) => r.fields.message === 'rpcnet server listening');
  t.truthy(listening, stderr);
  t.is(listening?.level, 'INFO');
  t.regex(listening?.fields.addr ?? '', /^127\.0\.0\.1:\d+$/);
});

test('an unknown RPCNET_LOG_FORMAT falls back to text and says so', async (t) => {
  const stderr = await serverLogs({ RPCNET_LOG: 'rpcnet=info', RPCNET_LOG_FORMAT: 'yaml' });
  t.regex(stderr, /RPCNET_LOG_FORMAT must be text or json, got "yaml": writing text/);
  t.regex(stderr, /rpcnet server listening/);
});

/** Runs `body` (module code with `rpcnet` imported) in a new node process; returns stdout and stderr. */
async function script(body: string, env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  const code = `const rpcnet = await import(${JSON.stringify(index)});\n${body}`;
  return run(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, ...env } });
}

test("setLogHandler hands the records to the application's logger instead of stderr; null gives them back", async (t) => {
  const { stdout, stderr } = await script(
    `
    const records = [];
    rpcnet.setLogHandler((r) => records.push(r));
    const a = await rpcnet.RpcServer.listen(); await a.close();
    await new Promise((r) => setTimeout(r, 200));
    rpcnet.setLogHandler(null);
    const b = await rpcnet.RpcServer.listen(); await b.close();
    console.log(JSON.stringify(records));
    `,
    { RPCNET_LOG: 'rpcnet=info' },
  );
  const records = JSON.parse(stdout) as { level: string; target: string; message: string; fields: Record<string, string>; time: string }[];
  const listening = records.filter((r) => r.message === 'rpcnet server listening');
  t.is(listening.length, 1, 'the first server logged to the handler, the second to stderr');
  t.is(listening[0]!.level, 'INFO');
  t.regex(listening[0]!.target, /^rpcnet_runtime/);
  t.regex(listening[0]!.fields.addr ?? '', /^127\.0\.0\.1:\d+$/);
  t.true(Math.abs(Date.parse(listening[0]!.time) - Date.now()) < 60_000);
  t.is(stderr.match(/rpcnet server listening/g)?.length, 1, 'only the second server wrote to stderr');
});

test('a log handler that throws is reported as a warning, and records keep coming', async (t) => {
  const { stdout, stderr } = await script(
    `
    let n = 0;
    rpcnet.setLogHandler(() => { n++; throw new Error('logger broke'); });
    for (let i = 0; i < 2; i++) { const s = await rpcnet.RpcServer.listen(); await s.close(); }
    await new Promise((r) => setTimeout(r, 200));
    console.log(n);
    `,
    { RPCNET_LOG: 'rpcnet=info' },
  );
  t.true(Number(stdout) >= 2, `handler calls: ${stdout}`);
  t.regex(stderr, /the log handler threw: logger broke/);
  const e = await t.throwsAsync(script(`rpcnet.setLogHandler('console');`, {}));
  t.regex(String(e?.message), /handler must be a function/);
});
