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
