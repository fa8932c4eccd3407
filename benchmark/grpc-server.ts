/**
 * The grpc-js server of the benchmark, run as its own process by `benchmark/run.ts`: HTTP/2 + TLS
 * on 127.0.0.1 with the PEM certificate and key given as `--cert` / `--key` (the driver makes a
 * self-signed pair with the openssl CLI), serving the same three raw methods as the rpcnet server
 * (unary `Echo`, server-streaming `Stream`, bidi `BidiEcho`) and the protobuf `Greeter.SayHello`
 * (`greeterService`, grpc-service.ts). It prints `{"addr"}` as one JSON line and serves until
 * killed or until stdin closes.
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import type { HelloRequest } from '../__test__/proto/greeter_pb.ts';
import { exitWhenParentGoes, greeting, ITEM_SIZE, printJsonLine, streamCount, UNARY_SIZE, type ServerReady } from './common.ts';
import { benchService, greeterService, type HelloReplyInit } from './grpc-service.ts';

exitWhenParentGoes();

const { values } = parseArgs({
  options: {
    cert: { type: 'string' },
    key: { type: 'string' },
  },
});
if (!values.cert || !values.key) throw new Error('grpc-server: --cert and --key (PEM files) are required');

const response = Buffer.alloc(UNARY_SIZE, 0x5a);
const item = Buffer.alloc(ITEM_SIZE, 0xa5);

const server = new grpc.Server();
server.addService(benchService, {
  Echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, response),
  Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    const count = streamCount(call.request);
    let sent = 0;
    let cancelled = false;
    call.on('cancelled', () => {
      cancelled = true;
    });
    // Write until the stream's buffer is full, then continue on 'drain' (backpressure).
    const pump = (): void => {
      while (!cancelled && sent < count) {
        sent++;
        if (!call.write(item)) {
          call.once('drain', pump);
          return;
        }
      }
      if (!cancelled) call.end();
    };
    pump();
  },
  // Every request message back as a response, in order; the client bounds what is in flight.
  BidiEcho: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
    call.on('data', (message: Buffer) => call.write(message));
    call.on('end', () => call.end());
    // The client cancels the call at the end of its window.
    call.on('error', () => {});
  },
});

server.addService(greeterService, {
  SayHello: (call: grpc.ServerUnaryCall<HelloRequest, HelloReplyInit>, callback: grpc.sendUnaryData<HelloReplyInit>) =>
    callback(null, { message: greeting(call.request.name) }),
});

const credentials = grpc.ServerCredentials.createSsl(null, [
  { cert_chain: readFileSync(values.cert), private_key: readFileSync(values.key) },
]);
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', credentials, (error, p) => (error ? reject(error) : resolve(p))),
);

const ready: ServerReady = { addr: `127.0.0.1:${port}` };
printJsonLine(ready);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.forceShutdown();
    process.exit(0);
  });
}
