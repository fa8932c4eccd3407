/**
 * `npm run example`: a server and a client on loopback, printing what they exchange. Shows a
 * unary call, a server-streaming call, an error with its code, a deadline and cancellation.
 * @module
 */
import { RpcClient, RpcError, RpcServer } from '../index.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const server = await RpcServer.listen({ port: 0 });
server.unary('echo', async (req, ctx) => {
  console.log(`server  <- echo ${JSON.stringify(req.toString())} on connection ${ctx.connection.id}`);
  return req;
});
server.serverStreaming('count', async function* (req, ctx) {
  const n = req.readUInt32BE(0);
  for (let i = 0; i < n && !ctx.signal.aborted; i++) {
    yield Buffer.from(`token-${i}`);
    await sleep(20);
  }
});
server.unary('slow', async (_req, ctx) => {
  await sleep(1000);
  return Buffer.from(ctx.signal.aborted ? 'too late' : 'done');
});
console.log(`server  listening on ${server.address}, certificate sha256 ${server.certFingerprint}`);

const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint } });
console.log(`client  connected: connectionId ${client.connectionId}`);

const reply = await client.call('echo', Buffer.from('hello over QUIC'), { deadlineMs: 1000 });
console.log(`client  -> echo replied ${JSON.stringify(reply.toString())}`);

const n = Buffer.alloc(4);
n.writeUInt32BE(5);
let seq = 0;
for await (const item of client.callStreaming('count', n)) {
  console.log(`client  -> count item seq=${seq++} ${item.toString()}`);
}

try {
  await client.call('missing', Buffer.alloc(0));
} catch (e) {
  console.log(`client  -> missing failed: ${(e as RpcError).code}: ${(e as RpcError).message}`);
}
try {
  await client.call('slow', Buffer.alloc(0), { deadlineMs: 100 });
} catch (e) {
  console.log(`client  -> slow failed: ${(e as RpcError).code}: ${(e as RpcError).message}`);
}
const controller = new AbortController();
n.writeUInt32BE(1000);
let received = 0;
try {
  for await (const _ of client.callStreaming('count', n, { signal: controller.signal })) {
    if (++received === 3) controller.abort();
  }
} catch (e) {
  console.log(`client  -> count cancelled after ${received} items: ${(e as RpcError).code}`);
}

const s = client.stats();
console.log(
  `client  stats: rtt ${s.rttMs.toFixed(3)} ms, cwnd ${s.cwnd} B, sent ${s.bytesSent} B, received ${s.bytesReceived} B, lost ${s.lostPackets} packets`,
);
await client.close();
await server.close();
console.log('done');
