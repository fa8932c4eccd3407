/**
 * What the benchmark's processes agree on: method names and payload sizes (the same as in
 * crates/rpcnet-runtime/examples/bench.rs), the protobuf scenario's request and reply, the bidi
 * echo's message size and window, the scenarios, the shape of a client's result line, and the small helpers the driver and the child
 * processes share (percentiles, JSON-line handshakes with a child process, waiting for the parent
 * to go away).
 * @module
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** rpcnet unary method: 64-byte request, 64-byte response. */
export const UNARY_METHOD = 'echo';
/** rpcnet server-streaming method: the request is a u32 big-endian item count; items are 1 KiB. */
export const STREAM_METHOD = 'stream';
/** rpcnet bidi method: echoes every request message as an item (rpcnet-server.ts only). */
export const BIDI_METHOD = 'bidi-echo';
/** grpc-js path of the unary method. */
export const GRPC_UNARY_PATH = '/rpcnet.bench.Bench/Echo';
/** grpc-js path of the server-streaming method. */
export const GRPC_STREAM_PATH = '/rpcnet.bench.Bench/Stream';
/** grpc-js path of the bidi echo method. */
export const GRPC_BIDI_PATH = '/rpcnet.bench.Bench/BidiEcho';
/** Unary request and response size, bytes. */
export const UNARY_SIZE = 64;
/** Streaming item size, bytes. */
export const ITEM_SIZE = 1024;
/** Bidi echo message size, bytes (requests and their echoes). */
export const BIDI_MESSAGE_SIZE = 1024;
/**
 * Messages a bidi echo call keeps unacknowledged: the client sends up to this many ahead of the
 * echoes it has received, then waits for the next echo (both systems).
 */
export const BIDI_WINDOW = 64;
/** Item count asked for by a streaming client: more than any run consumes; it cancels at the end. */
export const STREAM_COUNT = 0xffffffff;

/**
 * `name` of every `SayHello` request of the protobuf scenario, the same on both systems: 50 ASCII
 * bytes (a 52-byte `HelloRequest` on the wire).
 */
export const HELLO_NAME = 'B'.repeat(50);

/** What both servers answer `SayHello` with: `Hello, <name>` (57 bytes for {@link HELLO_NAME}). */
export function greeting(name: string): string {
  return `Hello, ${name}`;
}

/** Encodes a streaming request: the item count as a u32, big-endian. */
export function streamRequest(count: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(count);
  return b;
}

/** Decodes a streaming request (see {@link streamRequest}); 0 when it is too short. */
export function streamCount(request: Buffer): number {
  return request.length >= 4 ? request.readUInt32BE(0) : 0;
}

/** What {@link serveBenchMethods} registers on: an `RpcServer` or an `RpcWorker`. */
export interface BenchMethodTarget {
  unary(method: string, handler: (request: Buffer) => Uint8Array): unknown;
  serverStreaming(
    method: string,
    handler: (request: Buffer, ctx: { readonly signal: AbortSignal }) => AsyncIterable<Uint8Array>,
  ): unknown;
}

/**
 * Registers the benchmark's two methods on `target`: the unary `echo` (a 64-byte response) and
 * the server-streaming `stream` (1 KiB items, as many as the request's count, as fast as
 * backpressure lets them go). Served by `rpcnet-server.ts` (a plain `RpcServer`) and
 * `rpcnet-worker.ts` (an `RpcWorker` behind a director) alike.
 */
export function serveBenchMethods(target: BenchMethodTarget): void {
  const response = Buffer.alloc(UNARY_SIZE, 0x5a);
  const item = Buffer.alloc(ITEM_SIZE, 0xa5);
  target.unary(UNARY_METHOD, () => response);
  target.serverStreaming(STREAM_METHOD, async function* (request, ctx) {
    const count = streamCount(request);
    for (let i = 0; i < count && !ctx.signal.aborted; i++) yield item;
  });
}

/** The systems compared, in table order. */
export const SYSTEMS = ['grpc-js', 'rpcnet-ts', 'rpcnet-rust'] as const;
/** One of {@link SYSTEMS}. */
export type System = (typeof SYSTEMS)[number];

/** A scenario: what a client does during the measured window. */
export interface Scenario {
  /** Stable name, used in the table and the JSON. */
  name: string;
  /**
   * Unary calls of raw bytes (`unary`), one streaming call of raw bytes (`stream`), unary calls
   * of the protobuf `Greeter.SayHello` (`protobuf`), or bidi calls echoing raw 1 KiB messages
   * (`bidi`), also the `client.ts --scenario` value.
   */
  kind: 'unary' | 'stream' | 'protobuf' | 'bidi';
  /**
   * Call loops (unary) or bidi calls running at once on one connection/channel (1 for
   * server-streaming).
   */
  concurrency: number;
  /** The systems that can run it, when not all of {@link SYSTEMS}; the others' rows are "n/a". */
  systems?: readonly System[];
  /** With `systems`: why the others cannot run it (the note under the table). */
  notApplicable?: string;
}

/** The scenario kinds, for `run.ts --scenarios`. */
export const SCENARIO_KINDS: readonly Scenario['kind'][] = ['unary', 'stream', 'protobuf', 'bidi'];

/** Who runs the protobuf scenarios: the Rust-only client and server have no protobuf codec. */
const PROTOBUF: Pick<Scenario, 'systems' | 'notApplicable'> = {
  systems: ['grpc-js', 'rpcnet-ts'],
  notApplicable: 'rpcnet-rust has no protobuf codec (its client and server carry raw bytes), so the protobuf rows compare rpcnet-ts with grpc-js only',
};

/** Who runs the bidi scenarios: the Rust bench client (examples/bench.rs) makes no bidi calls. */
const BIDI: Pick<Scenario, 'systems' | 'notApplicable'> = {
  systems: ['grpc-js', 'rpcnet-ts'],
  notApplicable: "the Rust bench client (crates/rpcnet-runtime/examples/bench.rs) makes no bidi calls, so the bidi rows compare rpcnet-ts with grpc-js only",
};

/** The scenarios of `run.ts`, in table order. */
export const SCENARIOS: readonly Scenario[] = [
  { name: 'unary 64 B, c=1', kind: 'unary', concurrency: 1 },
  { name: 'unary 64 B, c=100', kind: 'unary', concurrency: 100 },
  { name: 'stream 1 KiB items', kind: 'stream', concurrency: 1 },
  { name: 'protobuf unary, c=1', kind: 'protobuf', concurrency: 1, ...PROTOBUF },
  { name: 'protobuf unary, c=100', kind: 'protobuf', concurrency: 100, ...PROTOBUF },
  { name: 'bidi echo 1 KiB, c=1', kind: 'bidi', concurrency: 1, ...BIDI },
  { name: 'bidi echo 1 KiB, c=16', kind: 'bidi', concurrency: 16, ...BIDI },
];

/**
 * The unary and server-streaming scenarios on raw bytes (not `protobuf`, not `bidi`): what
 * `directors.ts` measures through the relay, whose worker serves only those methods (directors
 * do not relay bidi calls yet).
 */
export const RAW_SCENARIOS: readonly Scenario[] = SCENARIOS.filter((s) => s.kind === 'unary' || s.kind === 'stream');

/** Whether `system` can run `scenario` (see {@link Scenario.systems}). */
export function appliesTo(scenario: Scenario, system: System): boolean {
  return !scenario.systems || scenario.systems.includes(system);
}

/**
 * The JSON line a client process prints (the TypeScript client and the Rust example print the same
 * fields). `ops` counts completed calls (unary), received items (streaming) or received echoes
 * (bidi) in the measured window; `bytes` the payload received (responses, items, echoes; for
 * protobuf the replies' `message` lengths); latencies are per call, ms, and `null` for streaming
 * and bidi.
 */
export interface ClientResult {
  ops: number;
  errors: number;
  bytes: number;
  elapsedMs: number;
  p50Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
}

/** The JSON line a server process prints once it listens. */
export interface ServerReady {
  /** `ip:port` for rpcnet, `127.0.0.1:port` for grpc-js. */
  addr: string;
  /** rpcnet only: SHA-256 of the certificate, for `tls.pin`. */
  fingerprint?: string;
}

/**
 * Nearest-rank percentile of an ascending array (q in 0..1); `null` for an empty one.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
  return sorted[rank - 1]!;
}

/**
 * Builds a {@link ClientResult} from a measured window: sorts the latencies (ms) in place.
 */
export function summarize(ops: number, errors: number, bytes: number, elapsedMs: number, latencies: number[]): ClientResult {
  const sorted = Float64Array.from(latencies).sort();
  let sum = 0;
  for (const l of sorted) sum += l;
  return {
    ops,
    errors,
    bytes,
    elapsedMs,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    meanMs: sorted.length ? sum / sorted.length : null,
  };
}

/**
 * Resolves with the first line of `child`'s stdout that parses as a JSON object. Rejects when the
 * child exits first or after `timeoutMs` (the caller kills the child).
 */
export function firstJsonLine<T>(child: ChildProcess, what: string, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (!child.stdout) {
      reject(new Error(`${what}: no stdout pipe`));
      return;
    }
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => finish(new Error(`${what}: no result within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null, signal: string | null) =>
      finish(new Error(`${what}: exited (code ${code}, signal ${signal}) before printing its JSON line`));
    child.once('exit', onExit);
    lines.on('line', (line) => {
      const text = line.trim();
      if (!text.startsWith('{')) return;
      try {
        finish(undefined, JSON.parse(text) as T);
      } catch {
        // not ours: keep reading
      }
    });
    let done = false;
    function finish(error: Error | undefined, value?: T): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
      if (error) reject(error);
      else resolve(value as T);
    }
  });
}

/**
 * For child processes: exit when stdin ends, i.e. when the driver that spawned us is gone, so that
 * no server outlives a killed benchmark.
 */
export function exitWhenParentGoes(): void {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

/** Prints one JSON line on stdout (the child-to-driver protocol). */
export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
