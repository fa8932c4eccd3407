/**
 * `close()` releases the UDP ports before its promise resolves: a server, a worker and a director
 * (over real QUIC on loopback, with connections open) can bind the same ports again at once.
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { Director, RpcClient, RpcError, RpcServer, RpcWorker } from '../dist/index.js';

const clusterDir = mkdtempSync(join(tmpdir(), 'rpcnet-close-'));
test.after.always(() => rmSync(clusterDir, { recursive: true, force: true }));

function split(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** Binds (then closes) a UDP socket on `address`, `ip:port`; rejects if it is in use. */
function bindUdp(address: string): Promise<void> {
  const { host, port } = split(address);
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', (e) => {
      socket.close();
      reject(e);
    });
    socket.bind(port, host, () => socket.close(() => resolve()));
  });
}

test.serial('server.close() frees its port at once', async (t) => {
  const server = await RpcServer.listen({ port: 0 });
  server.unary('echo', async (req) => req);
  const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint } });
  t.is((await client.call('echo', Buffer.from('hi'))).toString(), 'hi');

  await server.close();
  await t.notThrowsAsync(bindUdp(server.address), 'the port is free once close() resolved');
  const again = await RpcServer.listen({ port: split(server.address).port });
  t.is(again.address, server.address);
  await again.close();
  await client.close();
});

test.serial('worker.close() and director.close() free their ports at once', async (t) => {
  const director = await Director.start({ clusterDir });
  const worker = await RpcWorker.start({ id: 'worker-a', director: director.mgmtAddress, clusterDir });
  worker.unary('who', () => Buffer.from('worker-a'));
  const client = await RpcClient.connect(director.address, { tls: { pin: director.certFingerprint } });
  t.is((await client.call('who', Buffer.alloc(0))).toString(), 'worker-a');

  await worker.close();
  await t.notThrowsAsync(bindUdp(worker.address), 'the user port is free');
  await t.notThrowsAsync(bindUdp(worker.mgmtAddress), 'the management port is free');

  const { address, mgmtAddress } = director;
  await director.close();
  const again = await Director.start({ clusterDir, port: split(address).port, mgmtPort: split(mgmtAddress).port });
  t.is(again.address, address);
  t.is(again.mgmtAddress, mgmtAddress);
  await again.close();
  await client.close();
});

test.serial('directors of one cluster, one after another on the same port, present identities the cluster CA vouches for', async (t) => {
  const first = await Director.start({ clusterDir });
  t.is(first.caFile, join(clusterDir, 'ca.pem'));
  const viaCa = await RpcClient.connect(first.address, { tls: { caFile: first.caFile } });
  await viaCa.close();
  const pinned = first.certFingerprint;
  await first.close();

  const second = await Director.start({ clusterDir, port: split(first.address).port, serverNames: ['rpc.example.test'] });
  t.is(second.address, first.address);
  t.not(second.certFingerprint, pinned, 'each start issues a fresh certificate');
  for (const serverName of ['localhost', '127.0.0.1', 'rpc.example.test']) {
    const client = await RpcClient.connect(second.address, { tls: { caFile: second.caFile, serverName } });
    await client.close();
  }
  const unknownName = await t.throwsAsync(RpcClient.connect(second.address, { tls: { caFile: second.caFile, serverName: 'other.example.test' } }));
  t.is((unknownName as RpcError).code, 'UNAVAILABLE');
  const stalePin = await t.throwsAsync(RpcClient.connect(second.address, { tls: { pin: pinned } }));
  t.is((stalePin as RpcError).code, 'UNAVAILABLE', 'a pin does not survive a restart; the CA does');
  const badName = await t.throwsAsync(Director.start({ clusterDir, serverNames: ['not a name!'] }));
  t.is((badName as RpcError).code, 'INVALID_ARGUMENT');
  t.regex(badName!.message, /"not a name!"/);
  await second.close();
});
