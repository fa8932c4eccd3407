/**
 * The benchmark driver (`npm run bench`): measures rpcnet's TypeScript API, grpc-js and a Rust-only
 * rpcnet client/server on loopback, one system at a time, and prints a markdown table plus a JSON
 * file of the raw numbers. It exists to record honestly where rpcnet stands against the project's
 * aim (at least 3x grpc-js) and what the N-API layer costs over the Rust floor.
 *
 * Every server and every client runs in its own OS process, all over TLS on 127.0.0.1. This file
 * builds nothing: it expects `npm run build` (dist/) and
 * `cargo build --release -p rpcnet-runtime --examples` (target/release/examples/bench) to be done.
 *
 * Besides raw bytes, a protobuf unary scenario (`Greeter.SayHello` from
 * __test__/proto/greeter_pb.ts) measures the typed API against grpc-js with protobuf-es
 * (de)serializers; rpcnet-rust has no protobuf, so its rows there are "n/a". A bidi echo scenario
 * (1 KiB messages, up to 64 unacknowledged per call, 1 and 16 calls) counts echoes per second;
 * the Rust bench client makes no bidi calls, so its rows there are "n/a" too.
 *
 * ```sh
 * node --import @oxc-node/core/register benchmark/run.ts [--duration-ms 5000] [--warmup-ms 1000]
 *   [--json benchmark/results/latest.json] [--systems grpc-js,rpcnet-ts,rpcnet-rust]
 *   [--scenarios unary,stream,protobuf,bidi]
 * ```
 * @module
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  appliesTo,
  firstJsonLine,
  SCENARIO_KINDS,
  SCENARIOS,
  SYSTEMS,
  type ClientResult,
  type Scenario,
  type ServerReady,
  type System,
} from './common.ts';
import { HERE, killChildren, measureClient, ROOT, scenarioArgs, spawnChild, spawnTs, stop } from './driver.ts';

/** One row of the results: a scenario measured on a system. */
export interface Row {
  scenario: string;
  kind: Scenario['kind'];
  concurrency: number;
  system: System;
  /** Set when the run failed; the numbers are then absent. */
  error?: string;
  /** Set when the system cannot run the scenario (why: {@link Scenario.notApplicable}); nothing was run. */
  notApplicable?: string;
  result?: ClientResult;
  /** Calls (unary), items (streaming) or echoes (bidi) per second in the measured window. */
  opsPerSec?: number;
  /** Payload MiB per second received by the client (response, item or echo bytes). */
  mibPerSec?: number;
  /** opsPerSec ÷ grpc-js opsPerSec for the same scenario. */
  vsGrpcJs?: number;
}

const RUST_BENCH = join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'release', 'examples', 'bench');
const SERVER_READY_TIMEOUT_MS = 30_000;

let tempDir: string | undefined;

/** Kills every child still running and removes the temporary directory (idempotent, sync). */
function cleanup(): void {
  killChildren();
  if (tempDir) {
    rmSync(tempDir, { recursive: true, force: true });
    tempDir = undefined;
  }
}

/** Self-signed ECDSA P-256 certificate for localhost / 127.0.0.1 (like rcgen's), via the openssl CLI. */
function makeCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return { cert, key };
}

interface Settings {
  durationMs: number;
  warmupMs: number;
  /** The scenarios selected (`--scenarios`), in table order. */
  scenarios: readonly Scenario[];
  cert: { cert: string; key: string };
}

function startServer(system: System, s: Settings): ChildProcess {
  switch (system) {
    case 'grpc-js':
      return spawnTs('grpc-server.ts', ['--cert', s.cert.cert, '--key', s.cert.key]);
    case 'rpcnet-ts':
      return spawnTs('rpcnet-server.ts', []);
    case 'rpcnet-rust':
      return spawnChild(RUST_BENCH, ['server', '--watch-stdin']);
  }
}

function startClient(system: System, scenario: Scenario, server: ServerReady, s: Settings): ChildProcess {
  const common = scenarioArgs(scenario, server.addr, s);
  switch (system) {
    case 'grpc-js':
      return spawnTs('client.ts', ['--system', system, '--ca', s.cert.cert, ...common]);
    case 'rpcnet-ts':
      return spawnTs('client.ts', ['--system', system, '--fingerprint', server.fingerprint ?? '', ...common]);
    case 'rpcnet-rust':
      return spawnChild(RUST_BENCH, ['client', '--watch-stdin', '--fingerprint', server.fingerprint ?? '', ...common]);
  }
}

/**
 * Runs every selected scenario against one system: one server process, one client process per
 * scenario; a scenario the system cannot run gets an "n/a" row (no server at all if none is left).
 */
async function runSystem(system: System, s: Settings): Promise<Row[]> {
  const base = (scenario: Scenario): Row => ({ scenario: scenario.name, kind: scenario.kind, concurrency: scenario.concurrency, system });
  const rows: Row[] = s.scenarios
    .filter((scenario) => !appliesTo(scenario, system))
    .map((scenario) => ({ ...base(scenario), notApplicable: scenario.notApplicable ?? `${system} does not run ${scenario.name}` }));
  const scenarios = s.scenarios.filter((scenario) => appliesTo(scenario, system));
  if (!scenarios.length) return rows;
  const server = startServer(system, s);
  try {
    let ready: ServerReady;
    try {
      ready = await firstJsonLine<ServerReady>(server, `${system} server`, SERVER_READY_TIMEOUT_MS);
    } catch (e) {
      const error = (e as Error).message;
      console.error(`bench: ${error}`);
      return [...rows, ...scenarios.map((scenario) => ({ ...base(scenario), error }))];
    }
    for (const scenario of scenarios) {
      process.stderr.write(`bench: ${system}: ${scenario.name} ...`);
      try {
        const measured = await measureClient(`${system} client`, () => startClient(system, scenario, ready, s), s);
        process.stderr.write(` ${Math.round(measured.opsPerSec)} ops/s\n`);
        rows.push({ ...base(scenario), ...measured });
      } catch (e) {
        const error = (e as Error).message;
        process.stderr.write(` failed: ${error}\n`);
        rows.push({ ...base(scenario), error });
      }
    }
  } finally {
    await stop(server);
  }
  return rows;
}

const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');
const fmtMs = (n: number | null | undefined) => (n === null || n === undefined ? '-' : n.toFixed(3));

/** Renders the results as a markdown table, scenario by scenario, systems in {@link SYSTEMS} order. */
export function markdownTable(rows: Row[]): string {
  const lines = ['| scenario | system | ops/s | p50 ms | p99 ms | vs grpc-js |', '|---|---|--:|--:|--:|--:|'];
  for (const scenario of SCENARIOS) {
    for (const system of SYSTEMS) {
      const row = rows.find((r) => r.scenario === scenario.name && r.system === system);
      if (!row) continue;
      if (row.notApplicable) {
        lines.push(`| ${scenario.name} | ${system} | n/a | - | - | - |`);
        continue;
      }
      if (!row.result || row.opsPerSec === undefined) {
        lines.push(`| ${scenario.name} | ${system} | failed | - | - | - |`);
        continue;
      }
      const errors = row.result.errors ? ` (${row.result.errors} errors)` : '';
      const ratio = row.vsGrpcJs === undefined ? '-' : `${row.vsGrpcJs.toFixed(2)}x`;
      lines.push(
        `| ${scenario.name} | ${system}${errors} | ${fmtInt(row.opsPerSec)} | ${fmtMs(row.result.p50Ms)} | ${fmtMs(row.result.p99Ms)} | ${ratio} |`,
      );
    }
  }
  return lines.join('\n');
}

/** The note under the table on its "n/a" rows: why each is (empty when there are none). */
export function notApplicableNote(rows: Row[]): string {
  const reasons = [...new Set(rows.flatMap((r) => (r.notApplicable ? [r.notApplicable] : [])))];
  return reasons.length ? `n/a: ${reasons.join('; ')}.` : '';
}

/** The scenarios of the comma-separated kinds `list` (`--scenarios`), in table order. */
function selectScenarios(list: string): Scenario[] {
  const kinds = list.split(',').map((kind) => {
    if (!(SCENARIO_KINDS as readonly string[]).includes(kind)) throw new Error(`unknown scenario kind ${kind}; known: ${SCENARIO_KINDS.join(', ')}`);
    return kind as Scenario['kind'];
  });
  return SCENARIOS.filter((scenario) => kinds.includes(scenario.kind));
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'duration-ms': { type: 'string', default: '5000' },
      'warmup-ms': { type: 'string', default: '1000' },
      json: { type: 'string', default: join(HERE, 'results', 'latest.json') },
      systems: { type: 'string', default: SYSTEMS.join(',') },
      scenarios: { type: 'string', default: SCENARIO_KINDS.join(',') },
    },
  });
  const durationMs = Number(values['duration-ms']);
  const warmupMs = Number(values['warmup-ms']);
  if (!(durationMs > 0) || !(warmupMs >= 0)) throw new Error('--duration-ms must be > 0 and --warmup-ms >= 0');
  const systems = values.systems.split(',').map((name) => {
    if (!(SYSTEMS as readonly string[]).includes(name)) throw new Error(`unknown system ${name}; known: ${SYSTEMS.join(', ')}`);
    return name as System;
  });
  const scenarios = selectScenarios(values.scenarios);
  const missing = [join(ROOT, 'dist', 'index.js'), RUST_BENCH].filter((p) => !existsSync(p));
  if (missing.length) {
    throw new Error(
      `missing ${missing.join(', ')}: run \`npm run build && cargo build --release -p rpcnet-runtime --examples\` first`,
    );
  }

  tempDir = mkdtempSync(join(os.tmpdir(), 'rpcnet-bench-'));
  const settings: Settings = { durationMs, warmupMs, scenarios, cert: makeCertificate(tempDir) };
  const cpus = os.cpus();
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    durationMs,
    warmupMs,
    command: `node --import @oxc-node/core/register benchmark/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
  };

  const rows: Row[] = [];
  for (const system of systems) rows.push(...(await runSystem(system, settings)));
  for (const row of rows) {
    const base = rows.find((r) => r.scenario === row.scenario && r.system === 'grpc-js');
    if (row.opsPerSec !== undefined && base?.opsPerSec) row.vsGrpcJs = row.opsPerSec / base.opsPerSec;
  }

  const header =
    `node ${meta.node}, ${meta.cpu}, ${meta.cores} cores, ${meta.platform}, ${meta.date}; ` +
    `${durationMs} ms measured after ${warmupMs} ms warm-up per row`;
  const streams = rows
    .filter((r) => r.kind === 'stream' && r.mibPerSec !== undefined)
    .map((r) => `${r.system} ${r.mibPerSec!.toFixed(1)} MiB/s`);
  console.log(`\n${header}\n\n${markdownTable(rows)}\n`);
  const note = notApplicableNote(rows);
  if (note) console.log(`${note}\n`);
  if (streams.length) console.log(`stream payload throughput: ${streams.join(', ')}\n`);
  const bidis = rows
    .filter((r) => r.kind === 'bidi' && r.mibPerSec !== undefined)
    .map((r) => `${r.system} c=${r.concurrency} ${r.mibPerSec!.toFixed(1)} MiB/s`);
  if (bidis.length) console.log(`bidi echo payload throughput (echoes received; as much again sent): ${bidis.join(', ')}\n`);

  const jsonPath = resolve(values.json);
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, `${JSON.stringify({ meta, results: rows }, null, 2)}\n`);
  console.log(`raw results: ${jsonPath}`);
  return rows.some((r) => r.error) ? 1 : 0;
}

process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(130);
  });
}

try {
  process.exitCode = await main();
} catch (e) {
  console.error(`bench: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
