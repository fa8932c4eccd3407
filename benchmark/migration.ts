/**
 * Migration benchmark: the pause a client sees when its live stream migrates between workers
 * (the gap between two items beyond the item interval), over many migrations, for 1 KiB, 64 KiB
 * and 1 MiB of application state; plus the director's own figures per migration (total time,
 * time the calls were frozen) and the snapshot pipeline alone (Rust, no I/O).
 *
 * Real processes on loopback: a director and two workers are forked from dist/demo; this
 * process is the client. Run with `npm run bench:migration` (builds first). Writes
 * benchmark/results/migration.json and prints markdown tables. The pause table breaks the freeze
 * window down into RFC-001's State Capture (the source freezes its calls, runs `captureState`,
 * seals; one round trip) and State Transfer (the target opens, runs `restoreState`, installs the
 * calls; one round trip) as the director timed them. A drain of `--drain-sessions` sessions
 * (default 1000; 0 skips it), measured by `drain.ts`, follows.
 *
 * Memory (issue 6, section 5): one more cluster (1 KiB of state) streams while its session
 * migrates back and forth `--rss-migrations` times (default 10000) as fast as it can; each
 * process's memory (RSS from /proc, V8 heap used and resident) is sampled after a warm-up and a
 * full GC, after each quarter of the migrations (after a full GC), and right after them, and
 * the growth per migration is reported, over the whole run and over its second half (a leak
 * keeps growing there; Node's, V8's and the allocator's warm-up does not). `--memory-only` runs just that part and updates the `memory` section of the JSON file
 * (for long runs: `npm run bench:migration -- --memory-only --rss-migrations 10000`).
 * @module
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { streamTokens, type StreamRecord } from '../dist/demo/client.js';
import { startDirector, startWorker, type Proc } from '../dist/demo/harness.js';
import type { MemorySample } from '../dist/demo/memory.js';
import type { MigrationReport } from '../dist/index.js';
import { drainTable, measureDrain } from './drain.ts';

const { values } = parseArgs({
  options: {
    migrations: { type: 'string', default: '200' },
    'interval-ms': { type: 'string', default: '5' },
    'gap-ms': { type: 'string', default: '30' },
    'rss-migrations': { type: 'string', default: '10000' },
    'memory-only': { type: 'boolean', default: false },
    json: { type: 'string', default: 'benchmark/results/migration.json' },
    'drain-sessions': { type: 'string', default: '1000' },
  },
});
const migrations = Number(values.migrations);
const intervalMs = Number(values['interval-ms']);
const gapMs = Number(values['gap-ms']);
const rssMigrations = Number(values['rss-migrations']);
/** Migrations before the first memory sample (connections, windows and caches settle). */
const RSS_WARM_UP = 200;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.round((s.length - 1) * p))]! : NaN;
}

/** p50 and p99 of the time the completed migrations of `reports` spent in `phase`, ms. */
function phaseStats(reports: MigrationReport[], phase: string) {
  const ms = reports.filter((r) => r.completed).map((r) => r.phases.find((p) => p.phase === phase)?.ms ?? NaN);
  return { p50: pct(ms, 0.5), p99: pct(ms, 0.99) };
}

/** One size: forks a cluster, streams, migrates back and forth `migrations` times. */
async function measure(stateBytes: number) {
  const dir = mkdtempSync(join(os.tmpdir(), 'rpcnet-bench-'));
  const director = await startDirector(dir, { silent: true });
  const workers = [
    await startWorker('worker-a', director, dir, { silent: true, stateBytes }),
    await startWorker('worker-b', director, dir, { silent: true, stateBytes }),
  ];
  try {
    // Enough items to outlast the migrations; the stream is cancelled by ending early otherwise.
    const count = Math.ceil(((migrations * (gapMs + 10)) / intervalMs) * 1.5) + 200;
    let record: StreamRecord | undefined;
    const streaming = streamTokens({ address: director.address, pin: director.fingerprint, count, intervalMs }).then((r) => (record = r));
    let sessionId = '';
    for (let i = 0; i < 200 && !sessionId; i++) {
      const s = await director.proc.command<{ sessionId: string }[]>({ cmd: 'sessions' });
      sessionId = s[0]?.sessionId ?? '';
      if (!sessionId) await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 100));
    const reports = await director.proc.command<MigrationReport[]>({ cmd: 'migrate-many', sessionId, count: migrations, pauseMs: gapMs }, 600_000);
    await streaming;
    const r = record!;
    const pauses = r.switches.map((s) => s.pauseMs);
    return {
      stateBytes,
      migrations: reports.length,
      completed: reports.filter((x) => x.completed).length,
      observedSwitches: r.switches.length,
      items: r.items,
      expectedItems: count,
      gaps: r.gaps,
      duplicates: r.duplicates,
      snapshotBytes: reports[0]?.snapshotBytes ?? 0,
      pause: { p50: pct(pauses, 0.5), p99: pct(pauses, 0.99), max: pct(pauses, 1) },
      frozen: { p50: pct(reports.map((x) => x.frozenMs), 0.5), p99: pct(reports.map((x) => x.frozenMs), 0.99) },
      total: { p50: pct(reports.map((x) => x.durationMs), 0.5), p99: pct(reports.map((x) => x.durationMs), 0.99) },
      capture: phaseStats(reports, 'StateCapture'),
      transfer: phaseStats(reports, 'StateTransfer'),
    };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    director.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Memory samples taken while the session migrates, in this many equal chunks. */
const RSS_CHUNKS = 4;

/** One process's memory over the migrations, bytes. */
interface ProcessMemory {
  /** `director`, `worker-a` or `worker-b`. */
  process: string;
  /** After the warm-up and a full GC. */
  before: MemorySample;
  /** Right after the migrations, no GC. */
  after: MemorySample;
  /** After the migrations and a full GC. */
  afterGc: MemorySample;
  /** After each chunk of migrations and a full GC (the last one is `afterGc`). */
  series: MemorySample[];
  /** (RSS after GC - RSS before) / completed migrations, bytes. */
  rssGrowthPerMigration: number;
  /** The same over the second half of the run only (a steady leak shows here; warm-up does not). */
  rssGrowthPerMigrationSecondHalf: number;
  /** The same as `rssGrowthPerMigration` for RSS minus V8's resident heap (native memory: Rust,
   * quinn, Node, the allocator), bytes. */
  nativeGrowthPerMigration: number;
  /** The same over the second half of the run only. */
  nativeGrowthPerMigrationSecondHalf: number;
}

/** Memory of the director and both workers over `n` back-and-forth migrations of one live session. */
async function measureMemory(n: number) {
  const dir = mkdtempSync(join(os.tmpdir(), 'rpcnet-bench-'));
  const director = await startDirector(dir, { silent: true });
  const workers = [
    await startWorker('worker-a', director, dir, { silent: true, stateBytes: 1024 }),
    await startWorker('worker-b', director, dir, { silent: true, stateBytes: 1024 }),
  ];
  const procs: [string, Proc][] = [
    ['director', director.proc],
    ['worker-a', workers[0]!],
    ['worker-b', workers[1]!],
  ];
  const sample = async (gc: boolean) => Promise.all(procs.map(([, p]) => p.command<MemorySample>({ cmd: 'memory', gc })));
  try {
    // A stream that outlasts the migrations; it ends when the processes are killed.
    void streamTokens({ address: director.address, pin: director.fingerprint, count: 2 ** 31, intervalMs }).catch(() => undefined);
    let sessionId = '';
    for (let i = 0; i < 200 && !sessionId; i++) {
      const s = await director.proc.command<{ sessionId: string }[]>({ cmd: 'sessions' });
      sessionId = s[0]?.sessionId ?? '';
      if (!sessionId) await new Promise((r) => setTimeout(r, 10));
    }
    const many = (count: number) =>
      director.proc.command<{ completed: number; aborted: number }>({ cmd: 'migrate-many', sessionId, count, pauseMs: 0, summary: true }, 3_600_000);
    await many(RSS_WARM_UP);
    const before = await sample(true);
    const series: MemorySample[][] = [];
    let completed = 0;
    let aborted = 0;
    let after: MemorySample[] = before;
    const started = performance.now();
    for (let chunk = 0; chunk < RSS_CHUNKS; chunk++) {
      const size = Math.floor((n * (chunk + 1)) / RSS_CHUNKS) - Math.floor((n * chunk) / RSS_CHUNKS);
      const run = await many(size);
      completed += run.completed;
      aborted += run.aborted;
      if (chunk === RSS_CHUNKS - 1) after = await sample(false);
      series.push(await sample(true));
    }
    const seconds = (performance.now() - started) / 1000;
    const afterGc = series[RSS_CHUNKS - 1]!;
    const mid = series[RSS_CHUNKS / 2 - 1]!;
    const per = (a: number, b: number, migrations: number) => Math.round((b - a) / Math.max(1, migrations));
    const native = (m: MemorySample) => m.rss - m.heapPhysical;
    const processes: ProcessMemory[] = procs.map(([name], i) => ({
      process: name,
      before: before[i]!,
      after: after[i]!,
      afterGc: afterGc[i]!,
      series: series.map((s) => s[i]!),
      rssGrowthPerMigration: per(before[i]!.rss, afterGc[i]!.rss, completed),
      rssGrowthPerMigrationSecondHalf: per(mid[i]!.rss, afterGc[i]!.rss, completed / 2),
      nativeGrowthPerMigration: per(native(before[i]!), native(afterGc[i]!), completed),
      nativeGrowthPerMigrationSecondHalf: per(native(mid[i]!), native(afterGc[i]!), completed / 2),
    }));
    return { migrations: n, warmUp: RSS_WARM_UP, completed, aborted, seconds, stateBytes: 1024, processes };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    director.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const f = (x: number) => x.toFixed(2);
const kib = (b: number) => (b >= 1048576 ? `${b / 1048576} MiB` : `${b / 1024} KiB`);
const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
console.log(`rpcnet migration benchmark — node ${process.version}, ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, ${new Date().toISOString()}`);

let results: Awaited<ReturnType<typeof measure>>[] = [];
const drainSessions = Number(values['drain-sessions']);
let drain: Awaited<ReturnType<typeof measureDrain>> | undefined;
let pipeline: (Record<string, { p50_us: number; p99_us: number }> & { state_bytes: number; sealed_bytes: number })[] = [];
if (!values['memory-only']) {
  for (const size of [1024, 64 * 1024, 1024 * 1024]) {
    process.stderr.write(`measuring ${size} B of application state...\n`);
    results.push(await measure(size));
  }
  if (drainSessions > 0) {
    process.stderr.write(`measuring a drain of ${drainSessions} sessions...\n`);
    drain = await measureDrain(drainSessions);
  }
  pipeline = execFileSync('cargo', ['run', '--release', '-q', '-p', 'rpcnet-protocol', '--example', 'snapshot_pipeline', '200'], {
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, { p50_us: number; p99_us: number }> & { state_bytes: number; sealed_bytes: number });

  console.log(`${migrations} back-and-forth migrations per size, one item every ${intervalMs} ms, ${gapMs} ms between migrations; pause = gap between two items beyond the interval, as the client saw it\n`);
  console.log('| app state | migrations (completed / seen by client) | items lost / repeated | client pause p50 | p99 | calls frozen p50 | p99 | of which State Capture p50 | p99 | State Transfer p50 | p99 | migration total p50 | p99 | sealed snapshot |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    console.log(
      `| ${kib(r.stateBytes)} | ${r.completed} / ${r.observedSwitches} | ${r.gaps} / ${r.duplicates} | ${f(r.pause.p50)} ms | ${f(r.pause.p99)} ms | ${f(r.frozen.p50)} ms | ${f(r.frozen.p99)} ms | ${f(r.capture.p50)} ms | ${f(r.capture.p99)} ms | ${f(r.transfer.p50)} ms | ${f(r.transfer.p99)} ms | ${f(r.total.p50)} ms | ${f(r.total.p99)} ms | ${r.snapshotBytes} B |`,
    );
  }
  if (drain) {
    console.log(`\nDrain: SIGTERM to a worker owning ${drainSessions} streaming sessions, one item every ${drain.intervalMs} ms each (benchmark/drain.ts)\n`);
    console.log(drainTable([drain]));
  }
  console.log('\nSnapshot pipeline alone (Rust, no I/O; 200 iterations; µs):\n');
  console.log('| app state | encode | compress | seal | open | decompress | decode | total p50 | total p99 |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const p of pipeline) {
    const s = (k: string) => p[k]!.p50_us.toFixed(0);
    console.log(`| ${kib(p.state_bytes)} | ${s('encode')} | ${s('compress')} | ${s('seal')} | ${s('open')} | ${s('decompress')} | ${s('decode')} | ${p.total!.p50_us.toFixed(0)} | ${p.total!.p99_us.toFixed(0)} |`);
  }
  console.log('');
}

process.stderr.write(`measuring memory over ${rssMigrations} migrations...\n`);
const memory = await measureMemory(rssMigrations);
console.log(
  `Memory: ${memory.migrations} back-and-forth migrations of one streaming session (1 KiB of state, one item every ${intervalMs} ms, no pause between migrations; ${memory.completed} completed, ${memory.aborted} aborted, ${memory.seconds.toFixed(1)} s), after ${memory.warmUp} warm-up migrations. "GC" = a full garbage collection (global.gc) just before sampling; growth per migration is measured after GC; native = RSS minus V8's resident heap.\n`,
);
console.log('| process | RSS before | RSS after | RSS after GC | RSS growth per migration | second half | native growth per migration | second half | V8 heap used before → after | V8 heap resident before → after |');
console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
for (const p of memory.processes) {
  console.log(
    `| ${p.process} | ${mb(p.before.rss)} | ${mb(p.after.rss)} | ${mb(p.afterGc.rss)} | ${p.rssGrowthPerMigration} B | ${p.rssGrowthPerMigrationSecondHalf} B | ${p.nativeGrowthPerMigration} B | ${p.nativeGrowthPerMigrationSecondHalf} B | ${mb(p.before.heapUsed)} → ${mb(p.afterGc.heapUsed)} | ${mb(p.before.heapPhysical)} → ${mb(p.afterGc.heapPhysical)} |`,
  );
}
const trail = (f: (m: MemorySample) => number) =>
  memory.processes.map((p) => `${p.process} ${[p.before, ...p.series].map((x) => (f(x) / 1048576).toFixed(1)).join(' → ')} MB`).join('; ');
console.log(`\nAfter GC, every ${memory.migrations / RSS_CHUNKS} migrations. RSS: ${trail((m) => m.rss)}. Native: ${trail((m) => m.rss - m.heapPhysical)}.`);

mkdirSync('benchmark/results', { recursive: true });
if (values['memory-only'] && existsSync(values.json!)) {
  // Keep the other measurements of the file; replace its memory section.
  const previous = JSON.parse(readFileSync(values.json!, 'utf8')) as Record<string, unknown>;
  writeFileSync(values.json!, JSON.stringify({ ...previous, memory: { node: process.version, date: new Date().toISOString(), ...memory } }, null, 2));
} else {
  writeFileSync(values.json!, JSON.stringify({ node: process.version, date: new Date().toISOString(), intervalMs, gapMs, results, drain, pipeline, memory }, null, 2));
}
