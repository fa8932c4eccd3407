/**
 * The TypeScript benchmark client, run as its own process by `benchmark/run.ts` once per scenario:
 * connects to the rpcnet TypeScript server ({@link RpcClient}, certificate pinned; or a director,
 * `--ca-file` = the cluster CA, for `directors.ts`) or to the grpc-js
 * server (TLS, the self-signed certificate as root CA), runs the warm-up and then the measured
 * window, and prints one JSON line ({@link ClientResult}). The protobuf scenario calls
 * `Greeter.SayHello` as an application would: rpcnet through `createClient(fromProtobuf(Greeter))`,
 * grpc-js through `greeterService`'s protobuf (de)serializers. The bidi scenario opens
 * `--concurrency` bidi echo calls, each keeping up to `BIDI_WINDOW` 1 KiB messages ahead of the
 * echoes it has received, and counts the echoes of the measured window. The Rust-only client is
 * crates/rpcnet-runtime/examples/bench.rs, which prints the same fields (it has no protobuf and
 * no bidi).
 * @module
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { createClient, fromProtobuf, RpcClient } from '../dist/index.js';
import { Greeter, type HelloReply } from '../__test__/proto/greeter_pb.ts';
import {
  BIDI_MESSAGE_SIZE,
  BIDI_METHOD,
  BIDI_WINDOW,
  exitWhenParentGoes,
  greeting,
  GRPC_BIDI_PATH,
  GRPC_STREAM_PATH,
  GRPC_UNARY_PATH,
  HELLO_NAME,
  printJsonLine,
  STREAM_COUNT,
  STREAM_METHOD,
  streamRequest,
  summarize,
  UNARY_METHOD,
  UNARY_SIZE,
  type ClientResult,
} from './common.ts';
import { GRPC_SAY_HELLO_PATH, helloReply, helloRequest, raw, type HelloRequestInit } from './grpc-service.ts';

/** What one measured window produced. */
interface Window {
  ops: number;
  errors: number;
  bytes: number;
  elapsedMs: number;
  latencies: number[];
}

/** One system's client, reduced to the operations the scenarios need. */
interface BenchClient {
  /** One unary call of the 64-byte request; resolves with the response. */
  unary(request: Buffer): Promise<Buffer>;
  /** One `Greeter.SayHello` call (protobuf); resolves with the decoded reply. */
  sayHello(request: HelloRequestInit): Promise<HelloReply>;
  /**
   * One streaming call: discards items until `warmEnd`, counts those that arrive before `end`
   * (performance.now() times), then cancels the call.
   */
  stream(warmEnd: number, end: number): Promise<Window>;
  /**
   * One bidi echo call: sends `message` while fewer than {@link BIDI_WINDOW} of its messages
   * await their echo, discards echoes until `warmEnd`, counts those that arrive before `end`
   * (performance.now() times), then cancels the call.
   */
  bidi(message: Buffer, warmEnd: number, end: number): Promise<Window>;
  close(): Promise<void>;
}

const { values } = parseArgs({
  options: {
    system: { type: 'string' },
    scenario: { type: 'string' },
    addr: { type: 'string' },
    fingerprint: { type: 'string' },
    'ca-file': { type: 'string' },
    ca: { type: 'string' },
    concurrency: { type: 'string', default: '1' },
    'duration-ms': { type: 'string', default: '5000' },
    'warmup-ms': { type: 'string', default: '1000' },
  },
});

exitWhenParentGoes();

const addr = values.addr ?? fail('--addr is required');
const concurrency = Math.max(1, Number(values.concurrency));
const durationMs = Number(values['duration-ms']);
const warmupMs = Number(values['warmup-ms']);

function fail(message: string): never {
  throw new Error(`client: ${message}`);
}

async function rpcnetClient(): Promise<BenchClient> {
  // A plain server's certificate is pinned; a director's is issued by the cluster CA (`--ca-file`).
  const tls = values['ca-file'] ? { caFile: values['ca-file'] } : { pin: values.fingerprint ?? fail('--fingerprint or --ca-file is required') };
  const client = await RpcClient.connect(addr, { tls });
  const greeter = createClient(fromProtobuf(Greeter), client);
  return {
    unary: (request) => client.call(UNARY_METHOD, request),
    sayHello: (request) => greeter.sayHello(request),
    async stream(warmEnd, end) {
      const w: Window = { ops: 0, errors: 0, bytes: 0, elapsedMs: end - warmEnd, latencies: [] };
      // Breaking out of the loop cancels the call.
      for await (const item of client.callStreaming(STREAM_METHOD, streamRequest(STREAM_COUNT))) {
        const t = performance.now();
        if (t < warmEnd) continue;
        if (t >= end) break;
        w.ops++;
        w.bytes += item.length;
      }
      return w;
    },
    async bidi(message, warmEnd, end) {
      const w: Window = { ops: 0, errors: 0, bytes: 0, elapsedMs: end - warmEnd, latencies: [] };
      let inFlight = 0;
      let stopped = false;
      let wake: (() => void) | undefined;
      const resume = () => {
        const f = wake;
        wake = undefined;
        f?.();
      };
      // The requests: one message whenever fewer than BIDI_WINDOW await their echo.
      async function* requests(): AsyncGenerator<Buffer> {
        while (!stopped) {
          if (inFlight >= BIDI_WINDOW) {
            await new Promise<void>((r) => (wake = r));
            continue;
          }
          inFlight++;
          yield message;
        }
      }
      try {
        // Breaking out of the loop cancels the call (both directions).
        for await (const echo of client.callBidiStreaming(BIDI_METHOD, requests())) {
          inFlight--;
          resume();
          const t = performance.now();
          if (t < warmEnd) continue;
          if (t >= end) {
            stopped = true;
            break;
          }
          if (echo.length === message.length) w.ops++;
          else w.errors++;
          w.bytes += echo.length;
        }
      } finally {
        stopped = true;
        resume();
      }
      if (performance.now() < end) fail('the bidi call ended before the window did');
      return w;
    },
    close: () => client.close(),
  };
}

async function grpcClient(): Promise<BenchClient> {
  const ca = readFileSync(values.ca ?? fail('--ca is required'));
  // Connect to the IP but verify (and send SNI / :authority for) the certificate's DNS name.
  const client = new grpc.Client(addr, grpc.credentials.createSsl(ca), {
    'grpc.ssl_target_name_override': 'localhost',
    'grpc.default_authority': 'localhost',
  });
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (error) => (error ? reject(error) : resolve())),
  );
  return {
    unary: (request) =>
      new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest<Buffer, Buffer>(GRPC_UNARY_PATH, raw, raw, request, (error, value) =>
          error ? reject(error) : resolve(value!),
        ),
      ),
    sayHello: (request) =>
      new Promise<HelloReply>((resolve, reject) =>
        client.makeUnaryRequest<HelloRequestInit, HelloReply>(
          GRPC_SAY_HELLO_PATH,
          helloRequest.serialize,
          helloReply.deserialize,
          request,
          (error, value) => (error ? reject(error) : resolve(value!)),
        ),
      ),
    stream(warmEnd, end) {
      return new Promise<Window>((resolve, reject) => {
        const w: Window = { ops: 0, errors: 0, bytes: 0, elapsedMs: end - warmEnd, latencies: [] };
        const call = client.makeServerStreamRequest<Buffer, Buffer>(GRPC_STREAM_PATH, raw, raw, streamRequest(STREAM_COUNT));
        let done = false;
        const finish = (error?: Error) => {
          if (done) return;
          done = true;
          clearTimeout(safety);
          call.cancel();
          if (error) reject(error);
          else resolve(w);
        };
        // If items stop arriving, end the window anyway.
        const safety = setTimeout(() => finish(), end - performance.now() + 5_000);
        call.on('data', (item: Buffer) => {
          const t = performance.now();
          if (t < warmEnd) return;
          if (t >= end) return finish();
          w.ops++;
          w.bytes += item.length;
        });
        call.on('error', (error) => finish(error));
        call.on('end', () => finish(new Error('stream ended before the window did')));
      });
    },
    bidi(message, warmEnd, end) {
      return new Promise<Window>((resolve, reject) => {
        const w: Window = { ops: 0, errors: 0, bytes: 0, elapsedMs: end - warmEnd, latencies: [] };
        const call = client.makeBidiStreamRequest<Buffer, Buffer>(GRPC_BIDI_PATH, raw, raw);
        let inFlight = 0;
        let done = false;
        const finish = (error?: Error) => {
          if (done) return;
          done = true;
          clearTimeout(safety);
          call.cancel();
          if (error) reject(error);
          else resolve(w);
        };
        // If echoes stop arriving, end the window anyway.
        const safety = setTimeout(() => finish(), end - performance.now() + 5_000);
        // Send while fewer than BIDI_WINDOW messages await their echo.
        const fill = () => {
          while (!done && inFlight < BIDI_WINDOW) {
            inFlight++;
            call.write(message);
          }
        };
        call.on('data', (echo: Buffer) => {
          inFlight--;
          const t = performance.now();
          if (t >= end) return finish();
          if (t >= warmEnd) {
            if (echo.length === message.length) w.ops++;
            else w.errors++;
            w.bytes += echo.length;
          }
          fill();
        });
        call.on('error', (error) => finish(error));
        call.on('end', () => finish(new Error('bidi call ended before the window did')));
        fill();
      });
    },
    close: async () => client.close(),
  };
}

/**
 * Runs `concurrency` loops of `call` for `ms`, each with one call outstanding at a time; `size`
 * gives the payload bytes of a response.
 */
async function unaryWindow<R>(call: () => Promise<R>, size: (response: R) => number, ms: number, record: boolean): Promise<Window> {
  const w: Window = { ops: 0, errors: 0, bytes: 0, elapsedMs: 0, latencies: [] };
  const start = performance.now();
  const end = start + ms;
  let firstError: unknown;
  const loop = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        const response = await call();
        const t1 = performance.now();
        w.ops++;
        w.bytes += size(response);
        if (record) w.latencies.push(t1 - t0);
      } catch (error) {
        firstError ??= error;
        w.errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  w.elapsedMs = performance.now() - start;
  if (firstError) console.error('client: a unary call failed:', firstError);
  return w;
}

/** Warm-up, then the measured window, of unary calls. */
async function unaryScenario<R>(call: () => Promise<R>, size: (response: R) => number): Promise<Window> {
  await unaryWindow(call, size, warmupMs, false);
  return unaryWindow(call, size, durationMs, true);
}

const client = values.system === 'rpcnet-ts' ? await rpcnetClient() : values.system === 'grpc-js' ? await grpcClient() : fail(`unknown --system ${values.system}`);
let window: Window;
if (values.scenario === 'unary') {
  const request = Buffer.alloc(UNARY_SIZE, 0x42);
  window = await unaryScenario(() => client.unary(request), (response) => response.length);
} else if (values.scenario === 'protobuf') {
  const request: HelloRequestInit = { name: HELLO_NAME };
  // One checked call first: the window counts replies, so make sure they are the right ones.
  const first = await client.sayHello(request);
  if (first.message !== greeting(HELLO_NAME)) fail(`SayHello answered ${JSON.stringify(first.message)}`);
  window = await unaryScenario(() => client.sayHello(request), (reply) => reply.message.length);
} else if (values.scenario === 'stream') {
  const warmEnd = performance.now() + warmupMs;
  window = await client.stream(warmEnd, warmEnd + durationMs);
} else if (values.scenario === 'bidi') {
  const message = Buffer.alloc(BIDI_MESSAGE_SIZE, 0x42);
  const warmEnd = performance.now() + warmupMs;
  const end = warmEnd + durationMs;
  // `concurrency` bidi calls on one connection/channel, over the same window; their echoes add up.
  const calls = await Promise.all(Array.from({ length: concurrency }, () => client.bidi(message, warmEnd, end)));
  window = { ops: 0, errors: 0, bytes: 0, elapsedMs: durationMs, latencies: [] };
  for (const c of calls) {
    window.ops += c.ops;
    window.errors += c.errors;
    window.bytes += c.bytes;
  }
} else {
  fail(`unknown --scenario ${values.scenario}`);
}
const result: ClientResult = summarize(window.ops, window.errors, window.bytes, window.elapsedMs, window.latencies);
printJsonLine(result);
await client.close();
process.exit(0);
