/**
 * The typed boundary between TypeScript and the native binding: errors cross with their code (no
 * message parsing), tagged values of an unknown kind are errors, and bad options are
 * `INVALID_ARGUMENT`s naming the option and the expected type, raised before anything crosses.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { Director, RpcClient, RpcError, RpcServer, RpcWorker } from '../dist/index.js';
import { native } from '../dist/binding.js';
import { directorEvent } from '../dist/director-events.js';
import { pair } from './helpers.ts';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-boundary-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

test('a binding promise rejects with an Error whose code property is the rpcnet code', async (t) => {
  const e = await t.throwsAsync(native.connect(['127.0.0.1:1'], { pin: 'not hex' }));
  t.is((e as Error & { code?: unknown }).code, 'INVALID_ARGUMENT');
  t.regex(e!.message, /^certificate pin is not hex/, 'the message is the runtime message, no [CODE] prefix');

  const server = await native.listen({ port: 0 });
  server.register('stream', true);
  const client = await native.connect([server.address], { pin: server.certFingerprint });
  const e2 = await t.throwsAsync(client.unary('nope', Buffer.alloc(0), 0, false));
  t.is((e2 as Error & { code?: unknown }).code, 'UNIMPLEMENTED');
  const e3 = await t.throwsAsync(client.unary('stream', Buffer.alloc(0), 0, false));
  t.is((e3 as Error & { code?: unknown }).code, 'INVALID_ARGUMENT');
  await client.close();
  server.close();
});

test('RpcError takes the code from the binding error, and keeps it as the cause', async (t) => {
  const { client, close } = await pair();
  const e = await t.throwsAsync(client.call('nope', Buffer.alloc(0)), { instanceOf: RpcError });
  t.is(e!.code, 'UNIMPLEMENTED');
  t.is((e!.cause as { code?: unknown }).code, 'UNIMPLEMENTED');
  t.false(e!.message.startsWith('['));
  await close();
});

test('a director event of an unknown kind is an INTERNAL error naming the kind, never a default', (t) => {
  const e = t.throws(() => directorEvent({ kind: 'teleported', sessionId: '0000000000000001' } as never), { instanceOf: RpcError });
  t.is(e!.code, 'INTERNAL');
  t.regex(e!.message, /unknown director event kind "teleported"/);
  const report = {
    migrationId: 7,
    sessionId: '0000000000000001',
    source: 'a',
    target: 'b',
    reason: 'admin',
    completed: false,
    error: 'UNAVAILABLE: gone',
    abortedIn: 'Preparation',
    phases: [{ phase: 'Initiation', ms: 1 }],
    durationMs: 2,
    frozenMs: 0,
    snapshotBytes: 0,
  };
  t.like(directorEvent({ kind: 'migration-finished', report }), { kind: 'migration-aborted', report: { abortedIn: 'Preparation' } });
  t.like(directorEvent({ kind: 'migration-finished', report: { ...report, completed: true } }), { kind: 'migration-completed' });
});

/** Asserts an INVALID_ARGUMENT RpcError with exactly `message`. */
function invalid(t: import('ava').ExecutionContext, e: RpcError | undefined, message: string) {
  t.is(e?.code, 'INVALID_ARGUMENT');
  t.is(e?.message, message);
}

test('Director.start: each bad option names itself, its expected type and what it got', async (t) => {
  const cases: [unknown, string][] = [
    [{ failoverAfterMs: '5' }, 'failoverAfterMs must be a positive integer (ms), got "5" (string)'],
    [{ failoverAfterMs: -5 }, 'failoverAfterMs must be a positive integer (ms), got -5 (number)'],
    [{ failoverAfterMs: 2 ** 32 }, 'failoverAfterMs must be a positive integer (ms) no larger than 4294967295, got 4294967296 (number)'],
    [{ phaseTimeoutMs: 1.5 }, 'phaseTimeoutMs must be a positive integer (ms), got 1.5 (number)'],
    [{ totalTimeoutMs: null }, 'totalTimeoutMs must be a positive integer (ms), got null'],
    [{ port: 70000 }, 'port must be an integer in 0..65535, got 70000 (number)'],
    [{ mgmtPort: '7001' }, 'mgmtPort must be an integer in 0..65535, got "7001" (string)'],
    [{ autoConfirm: 'yes' }, 'autoConfirm must be a boolean, got "yes" (string)'],
    [{ host: 1 }, 'host must be a non-empty string, got 1 (number)'],
    [{ tls: { certPath: 'c.pem' } }, 'tls.keyPath must be a non-empty string, got undefined'],
    [{ serverNames: 5 }, 'serverNames must be a non-empty string or a non-empty array of strings (a DNS name or an IP address), got 5 (number)'],
    [{ serverNames: ['rpc.example.com', 3] }, 'serverNames[1] must be a non-empty string (a DNS name or an IP address), got 3 (number)'],
    [{ failoverAfterMS: 5 }, 'options has no option "failoverAfterMS"; known: clusterDir, host, port, mgmtPort, advertiseMgmtAddress, tls, serverNames, failoverAfterMs, autoConfirm, phaseTimeoutMs, totalTimeoutMs, maxConcurrentMigrations, shutdownOnSigterm, idleTimeoutMs, keepAliveMs, admin'],
    [{ idleTimeoutMs: 0 }, 'idleTimeoutMs must be a positive integer (ms), got 0 (number)'],
    [{ idleTimeoutMs: 1000, keepAliveMs: 1000 }, 'keepAliveMs must be an integer (ms) below idleTimeoutMs (1000), got 1000 (number)'],
    ['fast', 'options must be an object, got "fast" (string)'],
  ];
  for (const [options, message] of cases) {
    const withDir = typeof options === 'object' ? { clusterDir, ...options } : options;
    invalid(t, await t.throwsAsync(Director.start(withDir as never), { instanceOf: RpcError }), message);
  }
});

test('RpcWorker.start: required fields and types are checked before anything starts', async (t) => {
  // @ts-expect-error director is required (id may come from the worker's certificate)
  invalid(t, await t.throwsAsync(RpcWorker.start({}), { instanceOf: RpcError }), 'director must be a non-empty string or a non-empty array of strings (host:port), got undefined');
  invalid(
    t,
    // @ts-expect-error director is required
    await t.throwsAsync(RpcWorker.start({ id: 'w' }), { instanceOf: RpcError }),
    'director must be a non-empty string or a non-empty array of strings (host:port), got undefined',
  );
  // The director list and the addressing options; the last case is checked by the runtime (a
  // director's host:port) and arrives with its code too.
  const cases: [Record<string, unknown>, string][] = [
    [{ director: [] }, 'director must be a non-empty string or a non-empty array of strings (host:port), got an empty array'],
    [{ director: ['127.0.0.1:1', 5] }, 'director[1] must be a non-empty string (host:port), got 5 (number)'],
    [{ connectTimeoutMs: 0 }, 'connectTimeoutMs must be a positive integer (ms), got 0 (number)'],
    [{ port: 70_000 }, 'port must be an integer in 0..65535, got 70000 (number)'],
    [{ advertiseAddress: 5 }, 'advertiseAddress must be a non-empty string, got 5 (number)'],
    [
      { director: ['127.0.0.1:1', 'nope'] },
      'director[1] must be host:port (a DNS name or an IP address, IPv6 in brackets, and a port in 1..=65535), got "nope"',
    ],
  ];
  for (const [options, message] of cases) {
    const started = RpcWorker.start({ id: 'w', director: '127.0.0.1:1', clusterDir, ...options } as never);
    invalid(t, await t.throwsAsync(started, { instanceOf: RpcError }), message);
  }
  invalid(
    t,
    await t.throwsAsync(RpcWorker.start({ id: 'w', director: '127.0.0.1:1', heartbeatMs: 0 }), { instanceOf: RpcError }),
    'heartbeatMs must be a positive integer (ms), got 0 (number)',
  );
  invalid(
    t,
    // @ts-expect-error clusterDir is a string
    await t.throwsAsync(RpcWorker.start({ id: 'w', director: '127.0.0.1:1', clusterDir: 5 }), { instanceOf: RpcError }),
    'clusterDir must be a non-empty string, got 5 (number)',
  );
  invalid(
    t,
    // @ts-expect-error drainOnSigterm is a boolean
    await t.throwsAsync(RpcWorker.start({ id: 'w', director: '127.0.0.1:1', drainOnSigterm: 'no' }), { instanceOf: RpcError }),
    'drainOnSigterm must be a boolean, got "no" (string)',
  );
  // What the runtime checks (the id's characters) arrives with its code too.
  const e = await t.throwsAsync(RpcWorker.start({ id: 'no spaces', director: '127.0.0.1:1', clusterDir }), { instanceOf: RpcError });
  t.is(e?.code, 'INVALID_ARGUMENT');
  t.regex(e!.message, /no spaces/);
});

test('RpcServer.listen: sizes and windows must be positive integers', async (t) => {
  invalid(t, await t.throwsAsync(RpcServer.listen({ maxFrameSize: -1 }), { instanceOf: RpcError }), 'maxFrameSize must be a positive integer (bytes), got -1 (number)');
  invalid(t, await t.throwsAsync(RpcServer.listen({ streamWindow: { items: 0 } }), { instanceOf: RpcError }), 'streamWindow.items must be a positive integer (items), got 0 (number)');
  invalid(
    t,
    // @ts-expect-error bytes is a number
    await t.throwsAsync(RpcServer.listen({ streamWindow: { bytes: '1MiB' } }), { instanceOf: RpcError }),
    'streamWindow.bytes must be a positive integer (bytes), got "1MiB" (string)',
  );
  invalid(
    t,
    // @ts-expect-error no such option
    await t.throwsAsync(RpcServer.listen({ prot: 1 }), { instanceOf: RpcError }),
    'options has no option "prot"; known: host, port, tls, maxFrameSize, streamWindow, idleTimeoutMs, keepAliveMs, interceptors, admin',
  );
  invalid(
    t,
    await t.throwsAsync(RpcServer.listen({ keepAliveMs: 30_000 }), { instanceOf: RpcError }),
    'keepAliveMs must be an integer (ms) below idleTimeoutMs (30000), got 30000 (number)',
  );
  invalid(t, await t.throwsAsync(RpcServer.listen({ keepAliveMs: -1 }), { instanceOf: RpcError }), 'keepAliveMs must be a non-negative integer (ms), got -1 (number)');
  // Checked in Rust (an IP literal), and still a coded INVALID_ARGUMENT.
  const e = await t.throwsAsync(RpcServer.listen({ host: 'localhost.invalid' }), { instanceOf: RpcError });
  t.is(e?.code, 'INVALID_ARGUMENT');
});

test('RpcClient: connect options, call arguments and call options are checked', async (t) => {
  const { server, client, close } = await pair();
  server.unary('echo', (r) => r);
  server.serverStreaming('count', function* () {
    yield Buffer.from('1');
  });
  // @ts-expect-error the request is bytes
  invalid(t, await t.throwsAsync(client.call('echo', 'hello'), { instanceOf: RpcError }), 'request must be a Uint8Array or Buffer, got "hello" (string)');
  invalid(t, await t.throwsAsync(client.call('', Buffer.alloc(0)), { instanceOf: RpcError }), 'method must be a non-empty string, got "" (string)');
  invalid(
    t,
    // @ts-expect-error deadlineMs is a number
    await t.throwsAsync(client.call('echo', Buffer.alloc(0), { deadlineMs: '5' }), { instanceOf: RpcError }),
    'deadlineMs must be a non-negative number (ms) no larger than 4294967295, got "5" (string)',
  );
  invalid(
    t,
    // @ts-expect-error signal is an AbortSignal
    await t.throwsAsync(client.call('echo', Buffer.alloc(0), { signal: {} }), { instanceOf: RpcError }),
    'signal must be an AbortSignal, got an object',
  );
  invalid(
    t,
    // @ts-expect-error the request is bytes
    t.throws(() => client.callStreaming('count', [1, 2]), { instanceOf: RpcError }),
    'request must be a Uint8Array or Buffer, got an array',
  );
  t.is((await client.call('echo', new Uint8Array([1, 2]))).length, 2, 'a plain Uint8Array is fine');

  const pin = server.certFingerprint;
  // @ts-expect-error tls is required
  invalid(t, await t.throwsAsync(RpcClient.connect(server.address, {}), { instanceOf: RpcError }), 'tls must be an object giving tls.pin, tls.caFile or tls.systemRoots (there is no insecure mode), got undefined');
  // @ts-expect-error pin is a string
  invalid(t, await t.throwsAsync(RpcClient.connect(server.address, { tls: { pin: 5 } }), { instanceOf: RpcError }), 'tls.pin must be a non-empty string, got 5 (number)');
  invalid(
    t,
    await t.throwsAsync(RpcClient.connect(server.address, { tls: { pin }, connectTimeoutMs: 0 }), { instanceOf: RpcError }),
    'connectTimeoutMs must be a positive integer (ms), got 0 (number)',
  );
  for (const [lossDetectionMs, got] of [
    [0, '0 (number)'],
    [1.5, '1.5 (number)'],
    ['750', '"750" (string)'],
  ] as const) {
    invalid(
      t,
      await t.throwsAsync(RpcClient.connect(server.address, { tls: { pin }, lossDetectionMs: lossDetectionMs as number }), { instanceOf: RpcError }),
      `lossDetectionMs must be a positive integer (ms), got ${got}`,
    );
  }
  invalid(
    t,
    // @ts-expect-error no such option
    await t.throwsAsync(RpcClient.connect(server.address, { tls: { pin, insecure: true } }), { instanceOf: RpcError }),
    'tls has no option "insecure"; known: pin, caFile, systemRoots, serverName',
  );
  // @ts-expect-error the address is a string
  invalid(t, await t.throwsAsync(RpcClient.connect(7000, { tls: { pin } }), { instanceOf: RpcError }), 'address must be a non-empty string or a non-empty array of strings (host:port), got 7000 (number)');
  await close();
});

test('handlers and hooks must be functions; a handler returning non-bytes fails its call with INTERNAL', async (t) => {
  const { server, client, close } = await pair();
  // @ts-expect-error a handler is a function
  invalid(t, t.throws(() => server.unary('x', 'not a function'), { instanceOf: RpcError }), 'handler must be a function, got "not a function" (string)');
  // @ts-expect-error a handler returns bytes
  server.unary('text', () => 'text');
  const e = await t.throwsAsync(client.call('text', Buffer.alloc(0)), { instanceOf: RpcError });
  t.is(e?.code, 'INTERNAL');
  t.is(e?.message, 'the handler of "text" returned or yielded "text" (string), not a Uint8Array');
  await close();

  const director = await Director.start({ clusterDir });
  const worker = await RpcWorker.start({ id: 'worker-h', director: director.mgmtAddress, clusterDir });
  // @ts-expect-error a hook is a function
  invalid(t, t.throws(() => worker.setHooks({ captureState: 1 }), { instanceOf: RpcError }), 'captureState must be a function, got 1 (number)');
  // @ts-expect-error a policy hook is a function
  invalid(t, t.throws(() => director.setPolicy({ selectTarget: true }), { instanceOf: RpcError }), 'selectTarget must be a function, got true (boolean)');
  invalid(t, await t.throwsAsync(director.migrate('xyz'), { instanceOf: RpcError }), 'sessionId must be a session id of 16 hex digits, got "xyz" (string)');
  invalid(t, await t.throwsAsync(worker.drain(-1), { instanceOf: RpcError }), 'timeoutMs must be a positive integer (ms), got -1 (number)');
  invalid(t, await t.throwsAsync(director.waitForWorkers(1.5), { instanceOf: RpcError }), 'n must be a non-negative integer, got 1.5 (number)');
  await worker.close();
  await director.close();
});
