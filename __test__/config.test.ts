/**
 * The TOML config file (src/config.ts): RFC-001 Appendix B's keys mapped to options, environment
 * overrides, errors that name the key, the value and what was expected, and a cluster started
 * from a file whose `max_concurrent` really bounds a drain's concurrent migrations.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { Director, loadConfig, parseConfig, RpcClient, RpcError, RpcWorker, type DirectorEvent } from '../dist/index.js';
import { sleep, u32 } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'rpcnet-config-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const APPENDIX_B = `
[rpcnet.dual_port]
userspace_port = 8080
management_port = 8081

[rpcnet.migration]
timeout_ms = 5000
max_concurrent = 100
compression = "zstd"
encryption = "aes256gcm"

[rpcnet.migration.security]
require_auth = true
hmac_algorithm = "sha256"
`;

test("RFC-001 Appendix B's keys become the options of Director.start and RpcWorker.start", (t) => {
  const config = parseConfig(`${APPENDIX_B}\n[rpcnet.worker]\nid = "worker-a"\ndirectors = ["10.0.0.1:8081"]\n[rpcnet.admin]\nport = 9464\n`, {});
  t.deepEqual(config.director, { port: 8080, mgmtPort: 8081, totalTimeoutMs: 5000, maxConcurrentMigrations: 100, admin: { port: 9464 } });
  t.deepEqual(config.worker, { port: 8080, mgmtPort: 8081, id: 'worker-a', director: ['10.0.0.1:8081'], admin: { port: 9464 } });
});

test('environment variables override the file', (t) => {
  const config = parseConfig(APPENDIX_B, {
    RPCNET_DUAL_PORT_USERSPACE_PORT: '9000',
    RPCNET_MIGRATION_MAX_CONCURRENT: '7',
    RPCNET_WORKER_DIRECTORS: 'a:1, b:2',
    RPCNET_HOST: '0.0.0.0',
  });
  t.is(config.director.port, 9000);
  t.is(config.director.maxConcurrentMigrations, 7);
  t.is(config.director.host, '0.0.0.0');
  t.deepEqual(config.worker.director, ['a:1', 'b:2']);
  t.is(parseConfig('', { RPCNET_WORKER_ID: 'true' }).worker.id, 'true', 'a string key keeps "true" as text');
  t.deepEqual(parseConfig('', { RPCNET_CLUSTER_DIR: '' }).director, {}, 'an empty variable is unset');
  t.is(parseConfig('', { RPCNET_MIGRATION_SECURITY_REQUIRE_AUTH: 'true' }).director.host, undefined);
  const e = t.throws(() => parseConfig('', { RPCNET_MIGRATION_TIMEOUT_MS: 'soon' }), { instanceOf: RpcError });
  t.is(e.message, 'RPCNET_MIGRATION_TIMEOUT_MS (rpcnet.migration.timeout_ms) must be a whole number, got "soon"');
});

test('errors name the key, the value and what was expected', (t) => {
  const cases: [string, RegExp][] = [
    ['[rpcnet.dual_port]\nuserspace_port = 70000', /^rpcnet\.dual_port\.userspace_port must be a port, an integer in 0\.\.65535, got 70000 \(number\) \(the config\)$/],
    ['[rpcnet.migration]\nmax_concurrent = 0', /^rpcnet\.migration\.max_concurrent must be a positive integer, got 0/],
    ['[rpcnet.migration]\ntimeout_ms = "5s"', /^rpcnet\.migration\.timeout_ms must be a positive integer \(ms\), got "5s" \(string\)/],
    ['[rpcnet.migration]\ncompression = "lz4"', /^rpcnet\.migration\.compression must be "zstd": snapshots are always zstd-compressed; got "lz4"/],
    ['[rpcnet.migration]\nbuffer_size_mb = 16', /^rpcnet\.migration\.buffer_size_mb \(the config\) is an RFC-001 setting rpcnet does not have: snapshots are bounded/],
    ['[rpcnet.migration]\nmax_concurent = 5', /^rpcnet\.migration\.max_concurent \(the config\) is not an rpcnet setting; known: rpcnet\.host, /],
    ['[rpcnet.dual_port\nuserspace_port = 1', /^the config is not valid TOML at line 1/],
  ];
  for (const [text, expected] of cases) {
    const e = t.throws(() => parseConfig(text, {}), { instanceOf: RpcError });
    t.is(e.code, 'INVALID_ARGUMENT');
    t.regex(e.message, expected);
  }
  const e = t.throws(() => loadConfig(join(dir, 'missing.toml'), {}), { instanceOf: RpcError });
  t.regex(e.message, /^cannot read the config file .*missing\.toml: ENOENT/);
});

test('a cluster from a config file: max_concurrent = 1 makes a drain migrate one session at a time', async (t) => {
  const file = join(dir, 'rpcnet.toml');
  mkdirSync(join(dir, 'cluster')); // empty: the director makes a development CA in it
  writeFileSync(
    file,
    `[rpcnet]\ncluster_dir = ${JSON.stringify(join(dir, 'cluster'))}\n[rpcnet.dual_port]\nuserspace_port = 0\nmanagement_port = 0\n[rpcnet.migration]\nmax_concurrent = 1\n`,
  );
  const config = loadConfig(file, {});
  const director = await Director.start({ ...config.director, shutdownOnSigterm: false });
  let active = 0;
  let most = 0;
  let completed = 0;
  director.on('event', (e: DirectorEvent) => {
    if (e.kind === 'migration-started') most = Math.max(most, ++active);
    if (e.kind === 'migration-completed' || e.kind === 'migration-aborted') {
      active--;
      if (e.kind === 'migration-completed') completed++;
    }
  });
  const start = async (id: string) => {
    const worker = loadConfig(file, { RPCNET_WORKER_ID: id, RPCNET_WORKER_DIRECTORS: director.mgmtAddress }).worker;
    const w = await RpcWorker.start({ ...(worker as { id: string; director: string[] }), drainOnSigterm: false });
    w.serverStreaming('count', async function* (_req, ctx) {
      for (let seq = ctx.resume?.seq ?? 0; seq < 30; seq++) {
        yield u32(seq);
        ctx.checkpoint(u32(seq + 1));
        await sleep(20);
      }
    });
    return w;
  };
  const a = await start('worker-a');
  const clients: RpcClient[] = [];
  try {
    // Four sessions, all on worker-a (the only worker when they open).
    const streams: Promise<number[]>[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
      clients.push(c);
      streams.push(
        (async () => {
          const got: number[] = [];
          for await (const item of c.callStreaming('count', Buffer.alloc(0))) got.push(item.readUInt32BE());
          return got;
        })(),
      );
    }
    await sleep(100);
    const b = await start('worker-b');
    await a.drain(20_000);
    for (const got of await Promise.all(streams)) t.deepEqual(got, [...Array(30).keys()], 'every item once, in order');
    t.is(completed, 4, 'the drain moved every session');
    t.is(most, 1, 'never more than max_concurrent migrations at once');
    await b.close();
  } finally {
    for (const c of clients) await c.close();
    await a.close();
    await director.close();
  }
});
