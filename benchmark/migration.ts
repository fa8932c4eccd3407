/**
 * Migration benchmark: the pause a client sees when its live stream migrates between workers
 * (the gap between two items beyond the item interval), over many migrations, for 1 KiB, 64 KiB
 * and 1 MiB of application state; plus the director's own figures per migration (total time,
 * time the calls were frozen) and the snapshot pipeline alone (Rust, no I/O).
 *
 * Real processes on loopback: a director and two workers are forked from dist/demo; this
 * process is the client. Run with `npm run bench:migration` (builds first). Writes
 * benchmark/results/migration.json and prints a markdown table. Its last row is a drain of
 * `--drain-sessions` sessions (default 1000; 0 skips it), measured by `drain.ts`.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { streamTokens, type StreamRecord } from '../dist/demo/client.js';
import { startDirector, startWorker } from '../dist/demo/harness.js';
import type { MigrationReport } from '../dist/index.js';
import { drainTable, measureDrain } from './drain.ts';

const { values } = parseArgs({
  options: {
    migrations: { type: 'string', default: '200' },
    'interval-ms': { type: 'string', default: '5' },
    'gap-ms': { type: 'string', default: '30' },
    json: { type: 'string', default: 'benchmark/results/migration.json' },
    'drain-sessions': { type: 'string', default: '1000' },
  },
});
const migrations = Number(values.migrations);
const intervalMs = Number(values['interval-ms']);
const gapMs = Number(values['gap-ms']);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.round((s.length - 1) * p))]! : NaN;
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
    };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    director.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

const results = [];
for (const size of [1024, 64 * 1024, 1024 * 1024]) {
  process.stderr.write(`measuring ${size} B of application state...\n`);
  results.push(await measure(size));
}
const drainSessions = Number(values['drain-sessions']);
const drain = drainSessions > 0 ? await measureDrain(drainSessions) : undefined;
const pipeline = execFileSync('cargo', ['run', '--release', '-q', '-p', 'rpcnet-protocol', '--example', 'snapshot_pipeline', '200'], {
  encoding: 'utf8',
})
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as Record<string, { p50_us: number; p99_us: number }> & { state_bytes: number; sealed_bytes: number });

const f = (x: number) => x.toFixed(2);
const kib = (b: number) => (b >= 1048576 ? `${b / 1048576} MiB` : `${b / 1024} KiB`);
console.log(`rpcnet migration benchmark — node ${process.version}, ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, ${new Date().toISOString()}`);
console.log(`${migrations} back-and-forth migrations per size, one item every ${intervalMs} ms, ${gapMs} ms between migrations; pause = gap between two items beyond the interval, as the client saw it\n`);
console.log('| app state | migrations (completed / seen by client) | items lost / repeated | client pause p50 | p99 | calls frozen p50 | p99 | migration total p50 | p99 | sealed snapshot |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${kib(r.stateBytes)} | ${r.completed} / ${r.observedSwitches} | ${r.gaps} / ${r.duplicates} | ${f(r.pause.p50)} ms | ${f(r.pause.p99)} ms | ${f(r.frozen.p50)} ms | ${f(r.frozen.p99)} ms | ${f(r.total.p50)} ms | ${f(r.total.p99)} ms | ${r.snapshotBytes} B |`,
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
mkdirSync('benchmark/results', { recursive: true });
writeFileSync(values.json!, JSON.stringify({ node: process.version, date: new Date().toISOString(), intervalMs, gapMs, results, drain, pipeline }, null, 2));
