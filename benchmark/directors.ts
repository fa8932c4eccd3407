/**
 * Director benchmark (issue 7, section 6), in one run:
 *
 * 1. **Director upgrades and crashes.** Two directors and two workers (registered with both) are
 *    forked from dist/demo; this process is one resumable client (`resume: true`, both
 *    directors' addresses, the cluster CA) streaming `tokens` (one item every `--interval-ms`).
 *    Each event: find the director that holds the session (its `sessions` command), SIGTERM it
 *    (an upgrade: it sends MOVE and exits 0 once its client moved) or SIGKILL it (a crash: the
 *    client notices the silence after `lossDetectionMs`), wait until the client resumed on the
 *    other director and received an item there, restart the stopped director on the same ports,
 *    wait until both workers registered with it again, wait `--settle-ms`, repeat. `--events`
 *    SIGTERMs on one stream, then `--events` SIGKILLs on a new stream for each client
 *    `lossDetectionMs` of `--loss-detection-ms` (default 400, a resumable client's default,
 *    and 750, a plain client's).
 *    Per event: the pause the client saw (the gap between the last item before the event and
 *    the first after the resume, beyond the item interval), the time from the signal to the
 *    client's `reconnecting` event (noticing), and the resume itself (`reconnecting` to WELCOME,
 *    the client's `resumed.pauseMs`). Every stream must deliver every item exactly once, in
 *    order (no gap, no repeat, no item of another session); the run exits 1 otherwise.
 * 2. **The relay's cost.** The RPC benchmark's raw-bytes scenarios (common.ts `RAW_SCENARIOS`:
 *    unary 64 B at concurrency 1 and 100, a stream of 1 KiB items; not the protobuf or bidi ones),
 *    measured by its client (`client.ts`, a process per row) against a plain `RpcServer`
 *    (`rpcnet-server.ts`, certificate pinned) and through one director (forked from dist/demo) to
 *    one worker (`rpcnet-worker.ts`, the same handlers; the client trusts the cluster CA). Each
 *    server, the director and each client are their own process; one client runs at a time,
 *    direct and through the director alternately.
 *
 * ```sh
 * npm run bench:directors    # builds first
 * node --import @oxc-node/core/register benchmark/directors.ts [--events 50] [--interval-ms 10]
 *   [--loss-detection-ms 400,750] [--settle-ms 200] [--failover-after-ms 400]
 *   [--duration-ms 5000] [--warmup-ms 1000] [--rounds 2] [--parts events,relay] [--timeout-s 1800]
 *   [--json benchmark/results/directors.json]
 * ```
 * Writes the JSON file and prints markdown tables. A measurement, not a test: nothing asserts a
 * speed; only an exactly-once violation, or an event or row that could not be measured, makes
 * the exit code non-zero.
 * @module
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { streamTokens, type StreamRecord } from '../dist/demo/client.js';
import { startDirector, startWorker, type DirectorProc, type Proc } from '../dist/demo/harness.js';
import { firstJsonLine, percentile, RAW_SCENARIOS, type Scenario, type ServerReady } from './common.ts';
import { drainPipes, machineTicks, portOf, within } from './drain.ts';
import { childPids, HERE, killChildren, measureClient, scenarioArgs, spawnTs, stop, track, type Measured } from './driver.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '50' },
    'interval-ms': { type: 'string', default: '10' },
    'loss-detection-ms': { type: 'string', default: '400,750' },
    'settle-ms': { type: 'string', default: '200' },
    'failover-after-ms': { type: 'string', default: '400' },
    'duration-ms': { type: 'string', default: '5000' },
    'warmup-ms': { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '2' },
    parts: { type: 'string', default: 'events,relay' },
    'timeout-s': { type: 'string', default: '1800' },
    json: { type: 'string', default: join(HERE, 'results', 'directors.json') },
  },
});
const events = Number(values.events);
const intervalMs = Number(values['interval-ms']);
const lossDetections = values['loss-detection-ms'].split(',').filter(Boolean).map(Number);
const settleMs = Number(values['settle-ms']);
const failoverAfterMs = Number(values['failover-after-ms']);
const timing = { durationMs: Number(values['duration-ms']), warmupMs: Number(values['warmup-ms']) };
const rounds = Number(values.rounds);
const parts = values.parts.split(',');
if (
  !(events >= 1 && intervalMs > 0 && settleMs >= 0 && failoverAfterMs > 0 && rounds >= 1) ||
  lossDetections.some((x) => !(x > 0)) ||
  !(timing.durationMs > 0 && timing.warmupMs >= 0) ||
  parts.some((p) => p !== 'events' && p !== 'relay')
) {
  console.error('directors: bad option (see the module comment of benchmark/directors.ts)');
  process.exit(2);
}

/** The relay's cluster: the director's failure detector is not under test there, so a loaded worker is not failed over. */
const RELAY_FAILOVER_AFTER_MS = 2_000;
/** Time allowed for a resume after the signal (the client gives up after 30 s). */
const RESUME_TIMEOUT_MS = 35_000;
/** A director's SIGTERM shutdown waits at most 10 s for its clients to move. */
const EXIT_TIMEOUT_MS = 15_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Temporary cluster directories, removed at exit whatever happens. */
const tempDirs = new Set<string>();
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}
function removeTempDirs(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
/** Kills every child and removes the temporary directories (idempotent, sync). */
function cleanup(): void {
  killChildren();
  removeTempDirs();
}
const now = () => performance.now();

/** Resolves once `pred()` holds (checked every 5 ms); rejects after `ms` or when `failed()` returns an error. */
async function until(what: string, pred: () => boolean, ms: number, failed: () => Error | undefined = () => undefined): Promise<void> {
  const deadline = now() + ms;
  for (;;) {
    const error = failed();
    if (error) throw error;
    if (pred()) return;
    if (now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** p50, p99 (nearest rank) and max of `xs`. */
function spread(xs: number[]): { p50: number | null; p99: number | null; max: number | null } {
  const s = Float64Array.from(xs).sort();
  return { p50: percentile(s, 0.5), p99: percentile(s, 0.99), max: percentile(s, 1) };
}

// ---- load: how busy the machine was, and how much of it was us ----

/** utime + stime (+ cutime + cstime with `children`) of a process, in clock ticks; 0 if it is gone. */
function cpuTicks(pid: number | 'self', children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // Fields 14-17 of proc(5): utime, stime, cutime, cstime (f[0] is field 3).
    return f[11]! + f[12]! + (children ? f[13]! + f[14]! : 0);
  } catch {
    return 0;
  }
}

/** CPU of this process, its live children and its reaped ones, clock ticks. */
const ourTicks = () => cpuTicks('self', true) + childPids().reduce((a, pid) => a + cpuTicks(pid), 0);

/** The machine's load over a stretch of the run. */
interface Load {
  seconds: number;
  /** The 1-minute load average at the start and the end. */
  loadAvg: [number, number];
  /** Cores busy on average (all processes). */
  busyCores: number;
  /** Cores busy on average with this benchmark's processes. */
  ourCores: number;
  /** Cores busy on average with everything else on the machine. */
  otherCores: number;
}

function loadMeter(): () => Load {
  const t0 = now();
  const m0 = machineTicks();
  const o0 = ourTicks();
  const l0 = os.loadavg()[0]!;
  return () => {
    const m1 = machineTicks();
    const o1 = ourTicks();
    const cores = os.cpus().length;
    const seconds = (now() - t0) / 1000;
    const busyCores = ((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * cores;
    // /proc/stat and /proc/<pid>/stat both count USER_HZ ticks (100 per second on Linux).
    const ourCores = (o1 - o0) / 100 / seconds;
    const r = (x: number) => Math.round(x * 100) / 100;
    return { seconds: r(seconds), loadAvg: [r(l0), r(os.loadavg()[0]!)], busyCores: r(busyCores), ourCores: r(ourCores), otherCores: r(Math.max(0, busyCores - ourCores)) };
  };
}

// ---- part 1: director upgrades and crashes ----

type Signal = 'SIGTERM' | 'SIGKILL';

/** One director stopped under the client. */
interface EventSample {
  signal: Signal;
  /** The stopped director (0 or 1) and the address the client resumed at. */
  director: number;
  resumedAt: string;
  /** The resume was on the other director (as it should be: the stopped one was not back yet). */
  onOther: boolean;
  /** The first seq the client lacked at the resume. */
  seq: number;
  /** Gap between the last item before the event and the first after the resume, beyond the interval, ms (the client's view). */
  pauseMs: number;
  /** Signal to the client's `reconnecting` event, ms. */
  noticeMs: number;
  /** The resume itself: `reconnecting` to WELCOME (`resumed.pauseMs`), ms. */
  resumeMs: number;
  /** Signal to the director's exit, ms, and how it exited. */
  exitMs: number;
  exitCode: number | null;
  exitSignal: string | null;
  /** Signal to the restarted director having both workers registered again, ms. */
  restartedMs: number;
  /** The stopped director's stderr, when it wrote any (e.g. clients that did not move in time). */
  stderr?: string;
}

/** One stream (one resumable session) and the events it went through. */
interface Phase {
  signal: Signal;
  /** The client's `lossDetectionMs`. */
  lossDetectionMs: number;
  samples: EventSample[];
  items: number;
  gaps: number;
  duplicates: number;
  foreignConnection: number;
  /** Resumes beyond one per event (a healthy connection declared lost, e.g. on a stalled host). */
  extraResumptions: number;
  /** Changes of worker (a resume continues on the owner, so none are expected). */
  workerSwitches: number;
  pauseMs: ReturnType<typeof spread>;
  noticeMs: ReturnType<typeof spread>;
  resumeMs: ReturnType<typeof spread>;
  restartedMs: ReturnType<typeof spread>;
  load: Load;
  error?: string;
}

/** The cluster of part 1; the directors are replaced as they are restarted. */
interface Cluster {
  dir: string;
  directors: DirectorProc[];
  workers: Proc[];
}

/** The tail of each director's stderr (its warnings), kept with a sample that needs explaining. */
const stderrTails = new WeakMap<DirectorProc, () => string>();

async function director(dir: string, ports: { port?: number; mgmtPort?: number } = {}): Promise<DirectorProc> {
  const d = await startDirector(dir, { silent: true, failoverAfterMs, ...ports });
  track(d.proc.child);
  stderrTails.set(d, drainPipes(d.proc));
  return d;
}

async function startCluster(): Promise<Cluster> {
  const dir = tempDir('rpcnet-bench-directors-');
  const directors = [await director(dir), await director(dir)];
  const workers: Proc[] = [];
  for (const id of ['worker-a', 'worker-b']) {
    const w = await startWorker(id, directors, dir, { silent: true });
    track(w.child);
    drainPipes(w);
    workers.push(w);
  }
  for (const d of directors) {
    if (!(await d.proc.command<boolean>({ cmd: 'wait-workers', count: 2 }))) throw new Error('the workers did not register with both directors');
  }
  return { dir, directors, workers };
}

/** The index of the director that lists the session (polls both until one does). */
async function holder(c: Cluster, failed: () => Error | undefined): Promise<number> {
  let found = -1;
  const deadline = now() + 10_000;
  while (found < 0 && now() < deadline) {
    const error = failed();
    if (error) throw error;
    for (const [i, d] of c.directors.entries()) {
      const sessions = await d.proc.command<{ sessionId: string }[]>({ cmd: 'sessions' }, 5_000).catch(() => []);
      if (sessions.length > 0) found = i;
    }
    if (found < 0) await sleep(10);
  }
  if (found < 0) throw new Error('no director lists the session');
  return found;
}

/** One stream through `events` stops of its director by `signal`. */
async function runPhase(c: Cluster, signal: Signal, lossDetectionMs: number | undefined): Promise<Phase> {
  const meter = loadMeter();
  const stopStream = new AbortController();
  const reconnecting: number[] = [];
  let record: StreamRecord | undefined;
  let streamError: Error | undefined;
  let ended = false;
  const streaming = streamTokens({
    address: c.directors.map((d) => d.address),
    caFile: join(c.dir, 'ca.pem'),
    resume: true,
    lossDetectionMs,
    count: 2 ** 31,
    intervalMs,
    onConnected: (client) => client.on('reconnecting', () => reconnecting.push(now())),
    onItem: (_, r) => (record = r),
    stop: stopStream.signal,
  }).then(
    (r) => {
      record = r;
      ended = true;
      return r;
    },
    (e: Error) => {
      streamError = e;
      throw e;
    },
  );
  streaming.catch(() => undefined);
  const failed = () =>
    streamError ? new Error(`the stream failed: ${streamError.message}`) : ended && !stopStream.signal.aborted ? new Error('the stream ended early') : undefined;
  const samples: EventSample[] = [];
  let error: string | undefined;
  try {
    await until('the first items', () => (record?.items ?? 0) >= 10, 20_000, failed);
    for (let i = 0; i < events; i++) {
      const at = await holder(c, failed);
      const stopped = c.directors[at]!;
      const other = c.directors[1 - at]!;
      const before = record!.resumptions.length;
      const t0 = now();
      stopped.proc.kill(signal);
      const exit = await within(stopped.proc.exited, EXIT_TIMEOUT_MS);
      if (!exit) throw new Error(`director ${at} did not exit within ${EXIT_TIMEOUT_MS} ms of ${signal}`);
      const exitMs = now() - t0;
      await until(
        `the resume after ${signal} #${i + 1}`,
        () => record!.resumptions.length > before && record!.resumptions[before]!.seenPauseMs >= 0,
        RESUME_TIMEOUT_MS,
        failed,
      );
      const r = record!.resumptions[before]!;
      const notice = reconnecting.find((t) => t >= t0);
      // Restart the stopped director on its ports; the workers find it again by themselves.
      c.directors[at] = await director(c.dir, { port: portOf(stopped.address), mgmtPort: portOf(stopped.mgmtAddress) });
      if (!(await c.directors[at]!.proc.command<boolean>({ cmd: 'wait-workers', count: 2 }, 20_000))) {
        throw new Error(`the workers did not register again with director ${at} within 10 s of its restart`);
      }
      samples.push({
        signal,
        director: at,
        resumedAt: r.address,
        onOther: portOf(r.address) === portOf(other.address),
        seq: r.seq,
        pauseMs: r.seenPauseMs,
        noticeMs: notice === undefined ? NaN : notice - t0,
        resumeMs: r.pauseMs,
        exitMs,
        exitCode: exit.code,
        exitSignal: exit.signal,
        restartedMs: now() - t0,
        ...(stderrTails.get(stopped)?.() ? { stderr: stderrTails.get(stopped)!() } : {}),
      });
      process.stderr.write(
        `directors: ${signal} ${i + 1}/${events}${lossDetectionMs ? ` (lossDetectionMs ${lossDetectionMs})` : ''}: pause ${r.seenPauseMs.toFixed(1)} ms, resume ${r.pauseMs.toFixed(1)} ms\n`,
      );
      await sleep(settleMs);
    }
  } catch (e) {
    error = (e as Error).message;
    process.stderr.write(`directors: ${signal}: ${error}\n`);
  }
  stopStream.abort();
  const final = await within(streaming.catch(() => undefined), 10_000);
  const r = final ?? record;
  const stat = (f: (s: EventSample) => number) => spread(samples.map(f).filter((x) => Number.isFinite(x)));
  return {
    signal,
    lossDetectionMs: lossDetectionMs ?? 400,
    samples,
    items: r?.items ?? 0,
    gaps: r?.gaps ?? 0,
    duplicates: r?.duplicates ?? 0,
    foreignConnection: r?.foreignConnection ?? 0,
    extraResumptions: Math.max(0, (r?.resumptions.length ?? 0) - samples.length),
    workerSwitches: r?.switches.length ?? 0,
    pauseMs: stat((s) => s.pauseMs),
    noticeMs: stat((s) => s.noticeMs),
    resumeMs: stat((s) => s.resumeMs),
    restartedMs: stat((s) => s.restartedMs),
    load: meter(),
    ...(error ? { error } : streamError ? { error: streamError.message } : final ? {} : { error: 'the stream did not end within 10 s of being stopped' }),
  };
}

async function measureEvents(): Promise<Phase[]> {
  const c = await startCluster();
  try {
    const phases = [await runPhase(c, 'SIGTERM', undefined)];
    for (const ms of lossDetections) {
      // A failed phase leaves the cluster in an unknown state: stop there.
      if (phases.some((p) => p.error)) break;
      phases.push(await runPhase(c, 'SIGKILL', ms));
    }
    return phases;
  } finally {
    for (const p of [...c.workers, ...c.directors.map((d) => d.proc)]) p.kill('SIGKILL');
    rmSync(c.dir, { recursive: true, force: true });
  }
}

// ---- part 2: the relay's cost ----

type Path = 'direct' | 'director';

interface RelayRow extends Partial<Measured> {
  round: number;
  scenario: string;
  kind: Scenario['kind'];
  concurrency: number;
  path: Path;
  error?: string;
}

async function measureRelay(): Promise<{ rows: RelayRow[]; load: Load }> {
  const meter = loadMeter();
  const dir = tempDir('rpcnet-bench-relay-');
  const d = await startDirector(dir, { silent: true, failoverAfterMs: RELAY_FAILOVER_AFTER_MS });
  track(d.proc.child);
  drainPipes(d.proc);
  const worker = spawnTs('rpcnet-worker.ts', ['--director', d.mgmtAddress, '--cluster-dir', dir]);
  const server = spawnTs('rpcnet-server.ts', []);
  try {
    await firstJsonLine<ServerReady>(worker, 'relay worker', 30_000);
    if (!(await d.proc.command<boolean>({ cmd: 'wait-workers', count: 1 }))) throw new Error('the relay worker did not register');
    const direct = await firstJsonLine<ServerReady>(server, 'direct server', 30_000);
    const clientArgs = (path: Path, scenario: Scenario) =>
      path === 'direct'
        ? ['--system', 'rpcnet-ts', '--fingerprint', direct.fingerprint ?? '', ...scenarioArgs(scenario, direct.addr, timing)]
        : ['--system', 'rpcnet-ts', '--ca-file', join(dir, 'ca.pem'), ...scenarioArgs(scenario, d.address, timing)];
    const rows: RelayRow[] = [];
    for (let round = 1; round <= rounds; round++) {
      // Alternate which path goes first, so that a drift in the machine's load favours neither.
      const order: Path[] = round % 2 === 1 ? ['direct', 'director'] : ['director', 'direct'];
      for (const scenario of RAW_SCENARIOS) {
        for (const path of order) {
          const base = { round, scenario: scenario.name, kind: scenario.kind, concurrency: scenario.concurrency, path };
          process.stderr.write(`directors: relay round ${round}: ${scenario.name}, ${path} ...`);
          try {
            const m = await measureClient(`${path} client`, () => spawnTs('client.ts', clientArgs(path, scenario)), timing);
            process.stderr.write(` ${Math.round(m.opsPerSec)} ops/s${m.result.errors ? ` (${m.result.errors} errors)` : ''}\n`);
            rows.push({ ...base, ...m });
          } catch (e) {
            process.stderr.write(` failed: ${(e as Error).message}\n`);
            rows.push({ ...base, error: (e as Error).message });
          }
        }
      }
    }
    return { rows, load: meter() };
  } finally {
    await Promise.all([stop(worker), stop(server)]);
    d.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- output ----

const ms = (x: number | null) => (x === null || !Number.isFinite(x) ? '-' : `${x.toFixed(1)} ms`);
const int = (x: number) => Math.round(x).toLocaleString('en-US');

function eventsTable(phases: Phase[]): string {
  const lines = [
    '| event | client lossDetectionMs | events | client pause p50 | p99 | max | noticed after p50 | p99 | resume p50 | p99 | items | lost / repeated | director exit (SIGTERM: after p50 / max) |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const p of phases) {
    const exits = new Map<string, number>();
    for (const s of p.samples) {
      const k = s.exitSignal ?? `code ${s.exitCode}`;
      exits.set(k, (exits.get(k) ?? 0) + 1);
    }
    const exitMs = spread(p.samples.map((s) => s.exitMs));
    const exit = `${[...exits].map(([k, n]) => `${k} (${n})`).join(', ') || '-'}${p.signal === 'SIGTERM' ? `, after ${ms(exitMs.p50)} / ${ms(exitMs.max)}` : ''}`;
    const what = p.signal === 'SIGTERM' ? 'SIGTERM (upgrade)' : 'SIGKILL (crash)';
    lines.push(
      `| ${what} | ${p.signal === 'SIGTERM' ? '400 (default)' : p.lossDetectionMs} | ${p.samples.length}${p.error ? ' (failed)' : ''} | ${ms(p.pauseMs.p50)} | ${ms(p.pauseMs.p99)} | ${ms(p.pauseMs.max)} | ${ms(p.noticeMs.p50)} | ${ms(p.noticeMs.p99)} | ${ms(p.resumeMs.p50)} | ${ms(p.resumeMs.p99)} | ${int(p.items)} | ${p.gaps} / ${p.duplicates} | ${exit} |`,
    );
  }
  return lines.join('\n');
}

/** Mean over the rounds of a path's ops/s (and latencies) for one scenario. */
function relaySummary(rows: RelayRow[], scenario: Scenario, path: Path) {
  const ok = rows.filter((r) => r.scenario === scenario.name && r.path === path && r.opsPerSec !== undefined);
  if (!ok.length) return undefined;
  const mean = (f: (r: RelayRow) => number | null | undefined) => {
    const xs = ok.map(f).filter((x): x is number => typeof x === 'number');
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  };
  return {
    opsPerSec: mean((r) => r.opsPerSec)!,
    mibPerSec: mean((r) => r.mibPerSec)!,
    p50Ms: mean((r) => r.result?.p50Ms),
    p99Ms: mean((r) => r.result?.p99Ms),
    errors: ok.reduce((a, r) => a + (r.result?.errors ?? 0), 0),
  };
}

function relayTable(rows: RelayRow[]): { table: string; ratios: Record<string, number> } {
  const lat = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  const lines = [
    '| scenario | direct ops/s | p50 ms | p99 ms | through director ops/s | p50 ms | p99 ms | director / direct |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  const ratios: Record<string, number> = {};
  for (const scenario of RAW_SCENARIOS) {
    const a = relaySummary(rows, scenario, 'direct');
    const b = relaySummary(rows, scenario, 'director');
    const cell = (s: typeof a) =>
      s ? `${int(s.opsPerSec)}${s.errors ? ` (${s.errors} errors)` : ''} | ${lat(s.p50Ms)} | ${lat(s.p99Ms)}` : 'failed | - | -';
    const ratio = a && b ? b.opsPerSec / a.opsPerSec : undefined;
    if (ratio !== undefined) ratios[scenario.name] = ratio;
    // With several rounds, each round's own ratio too (the spread shows the noise).
    const perRound = [...new Set(rows.map((r) => r.round))].flatMap((round) => {
      const ops = (path: Path) => rows.find((r) => r.round === round && r.scenario === scenario.name && r.path === path)?.opsPerSec;
      const [x, y] = [ops('direct'), ops('director')];
      return x && y ? [`${((y / x) * 100).toFixed(0)}`] : [];
    });
    const rounds = perRound.length > 1 ? ` (${perRound.join(', ')})` : '';
    lines.push(`| ${scenario.name} | ${cell(a)} | ${cell(b)} | ${ratio === undefined ? '-' : `${(ratio * 100).toFixed(0)} %${rounds}`} |`);
  }
  return { table: lines.join('\n'), ratios };
}

/**
 * How many stopped directors took over 1 s and over 5 s to exit, and the warnings (without their
 * timestamps) their stderr held, each with a count.
 */
function slowExits(p: Phase): string {
  const slow = p.samples.filter((s) => s.exitMs > 1_000).length;
  const slower = p.samples.filter((s) => s.exitMs > 5_000).length;
  if (!slow) return '';
  const warnings = new Map<string, number>();
  for (const s of p.samples) {
    for (const line of (s.stderr ?? '').replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
      const m = / WARN (.*)$/.exec(line);
      if (m) warnings.set(m[1]!.trim(), (warnings.get(m[1]!.trim()) ?? 0) + 1);
    }
  }
  const said = [...warnings].map(([w, n]) => `"${w}" (${n})`).join(', ');
  return `${slow} of ${p.samples.length} directors took over 1 s to exit after SIGTERM, ${slower} over 5 s${said ? `; their warnings: ${said}` : ''}`;
}

/** The rank of the value with `below` larger ones: 'largest', 'second largest', ... */
function ordinal(below: number): string {
  return below === 0 ? 'largest' : below === 1 ? 'second largest' : below === 2 ? 'third largest' : `${below + 1}th largest`;
}

function loadNote(what: string, l: Load): string {
  return `${what}: ${l.seconds.toFixed(0)} s, load average ${l.loadAvg[0]} → ${l.loadAvg[1]}, ${l.busyCores} of ${os.cpus().length} cores busy on average (this benchmark's processes ${l.ourCores}, others ${l.otherCores})`;
}

// ---- main ----

async function main(): Promise<number> {
  const started = new Date().toISOString();
  const cpus = os.cpus();
  const meta = {
    date: started,
    node: process.version,
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    command: `node --import @oxc-node/core/register benchmark/directors.ts ${process.argv.slice(2).join(' ')}`.trim(),
    options: { events, intervalMs, lossDetections, settleMs, failoverAfterMs, relayFailoverAfterMs: RELAY_FAILOVER_AFTER_MS, ...timing, rounds, parts },
  };
  let phases: Phase[] = [];
  let relay: Awaited<ReturnType<typeof measureRelay>> | undefined;
  let failure: string | undefined;
  if (parts.includes('events')) {
    try {
      phases = await measureEvents();
    } catch (e) {
      failure = `events: ${(e as Error).message}`;
      console.error(`directors: ${failure}`);
    }
  }
  if (parts.includes('relay')) {
    try {
      relay = await measureRelay();
    } catch (e) {
      failure = `${failure ? `${failure}; ` : ''}relay: ${(e as Error).message}`;
      console.error(`directors: relay: ${(e as Error).message}`);
    }
  }

  const header = `rpcnet director benchmark — node ${meta.node}, ${meta.cpu}, ${meta.cores} cores, ${meta.platform}, ${started}`;
  console.log(`\n${header}\n`);
  if (phases.length) {
    console.log(
      `Director stopped under a resumable client streaming one item every ${intervalMs} ms (two directors, two workers; the stopped director restarted on its ports after each resume). ` +
        `Pause = the gap between the last item before the signal and the first after the resume, beyond the interval, as the client saw it; noticed after = signal to the client's \`reconnecting\`; ` +
        `resume = \`reconnecting\` to WELCOME on the other director (the client's \`resumed.pauseMs\`). p99 is nearest rank: of ${events} events, the ${ordinal(events - Math.ceil(0.99 * events))}.\n`,
    );
    console.log(eventsTable(phases));
    for (const p of phases) {
      const notes = [
        p.error ? `failed: ${p.error}` : '',
        p.foreignConnection ? `${p.foreignConnection} items of another session` : '',
        p.extraResumptions ? `${p.extraResumptions} resumes beyond one per event` : '',
        p.workerSwitches ? `${p.workerSwitches} changes of worker` : '',
        p.samples.some((s) => !s.onOther) ? `${p.samples.filter((s) => !s.onOther).length} resumes not on the other director` : '',
        p.signal === 'SIGTERM' ? slowExits(p) : '',
      ].filter(Boolean);
      if (notes.length) console.log(`\n${p.signal} ${p.lossDetectionMs}: ${notes.join('; ')}`);
    }
    console.log('');
    for (const p of phases) console.log(loadNote(`${p.signal}${p.signal === 'SIGKILL' ? ` ${p.lossDetectionMs}` : ''}`, p.load));
    console.log('');
  }
  let ratios: Record<string, number> = {};
  if (relay) {
    const t = relayTable(relay.rows);
    ratios = t.ratios;
    console.log(
      `The relay: direct = client → RpcServer; through director = client → director → worker (RpcWorker, the same handlers); each its own process, ${timing.durationMs} ms measured after ${timing.warmupMs} ms warm-up per row, ${rounds > 1 ? `${rounds} rounds (means; each round's own ratio in brackets)` : '1 round'}.\n`,
    );
    console.log(t.table);
    const streams = (['direct', 'director'] as const).map((path) => {
      const s = relaySummary(relay!.rows, RAW_SCENARIOS.find((x) => x.kind === 'stream')!, path);
      return s ? `${path === 'direct' ? 'direct' : 'through director'} ${s.mibPerSec.toFixed(1)} MiB/s` : undefined;
    });
    console.log(`\nstream payload throughput: ${streams.filter(Boolean).join(', ')}`);
    console.log(`\n${loadNote('relay', relay.load)}\n`);
  }

  const violations = phases.filter((p) => p.gaps || p.duplicates || p.foreignConnection);
  const jsonPath = resolve(values.json);
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(
    jsonPath,
    `${JSON.stringify({ meta, events: phases, relay: relay ? { ...relay, ratios } : undefined, exactlyOnce: violations.length === 0, failure }, null, 2)}\n`,
  );
  console.log(`raw results: ${jsonPath}`);
  if (violations.length) {
    console.error(`directors: EXACTLY-ONCE VIOLATED: ${violations.map((p) => `${p.signal} ${p.lossDetectionMs}: ${p.gaps} lost, ${p.duplicates} repeated, ${p.foreignConnection} foreign`).join('; ')}`);
    return 1;
  }
  const incomplete = failure || phases.some((p) => p.error) || relay?.rows.some((r) => r.error || r.result?.errors);
  return incomplete ? 1 : 0;
}

process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(130);
  });
}
const watchdog = setTimeout(() => {
  console.error(`directors: the run took longer than --timeout-s ${values['timeout-s']}; stopping`);
  cleanup();
  process.exit(2);
}, Number(values['timeout-s']) * 1000);

try {
  process.exitCode = await main();
} catch (e) {
  console.error(`directors: ${(e as Error).stack ?? e}`);
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  cleanup();
}
// The IPC channels of killed children may keep the event loop alive for a moment; nothing is left to do.
process.exit();
