/**
 * Drain benchmark (issue 6, section 5): how long a graceful drain of one worker takes when it
 * owns many sessions, and what its clients see. Every session is one client connection with one
 * `tokens` streaming call; all of them live on `worker-a`; SIGTERM makes `worker-a` drain (the
 * director migrates each session to `worker-b`, up to its concurrent-migration limit at once)
 * and exit.
 *
 * Real processes on loopback: a director and two workers forked from dist/demo, and the clients
 * spread over a few forked `drain-client.ts` processes (one QUIC connection per session), so
 * this process only orchestrates and measures. `worker-b` starts only once every session streams,
 * so placement (fewest sessions) has put them all on `worker-a`.
 *
 * Measured: SIGTERM to the worker's exit, SIGTERM to the director's last migration report,
 * migrations completed / aborted, each migration's report (phases, total, frozen), each
 * session's client pause at its switch (the gap between two items beyond the item interval),
 * items lost / repeated per session, and the CPU time of every process (and of its threads, by
 * name) between SIGTERM and the worker's exit, from /proc.
 *
 * ```sh
 * npm run bench:drain                        # builds first; 100 and 1,000 sessions
 * node --import @oxc-node/core/register benchmark/drain.ts --sessions 1000
 * node --import @oxc-node/core/register benchmark/drain.ts --sessions 100,1000,10000 \
 *   [--interval-ms N] [--clients N] [--state-bytes 1024] [--failover-after-ms N] [--perf DIR] [--repeat N] [--json PATH]
 * ```
 * Writes (merges, by session count) benchmark/results/drain.json and prints a markdown table.
 * @module
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { startDirector, startWorker, type Proc } from '../dist/demo/harness.js';
import type { DirectorEvent, MigrationReport } from '../dist/index.js';
import { percentile } from './common.ts';
import type { SessionRecord } from './drain-client.ts';

/** Options of {@link measureDrain}; every one has a default. */
export interface DrainOptions {
  /** Interval between two items of one session, ms. Default `max(100, sessions / 5)`: 5,000 items/s in all at most. */
  intervalMs?: number;
  /** Client processes the sessions are spread over. Default `ceil(sessions / 2000)`. */
  clients?: number;
  /** Connections each client process opens at once while opening its sessions. Default 16. */
  connectConcurrency?: number;
  /**
   * The director's `failoverAfterMs`: a worker silent this long is declared dead, ms. Default
   * 2000, not the demo director's 400: on a loaded 2-core machine a director or worker starved of
   * CPU for 400 ms is declared dead in the middle of a large drain (a false failover), which
   * measures the failure detector rather than the drain.
   */
  failoverAfterMs?: number;
  /** Application state per session (captureState / restoreState), bytes. Default 1024. */
  stateBytes?: number;
  /**
   * Time between the second worker's registration and the SIGTERM, ms; CPU use over its second
   * half is the steady-state baseline. Default 2000.
   */
  settleMs?: number;
  /** Time the sessions keep streaming after the drain ended, ms. Default `max(1000, 3 * intervalMs)`. */
  tailMs?: number;
  /** Longest the drain may take before the run gives up on it, ms. Default `60000 + 20 * sessions`. */
  timeoutMs?: number;
  /**
   * Directory for a `perf record -g` of the director and both workers from just before the SIGTERM
   * to the drained worker's exit (`drain-<sessions>.perf.data`; the workers then run with
   * `--perf-basic-prof`, so that perf names their JavaScript functions; node leaves their symbol
   * maps in `/tmp/perf-<pid>.map`, which `perf script` reads later). Default: none.
   */
  perfDir?: string;
  /** Progress lines on stderr. Default true. */
  verbose?: boolean;
}

/** p50 / p99 / max of a set of values (ms); `null` when empty. */
export interface Spread {
  /** Median (nearest rank), ms. */
  p50: number | null;
  /** 99th percentile (nearest rank), ms. */
  p99: number | null;
  /** Largest, ms. */
  max: number | null;
}

/** CPU time one process used during the drain (SIGTERM to the worker's exit), from /proc. */
export interface ProcessCpu {
  /** `director`, `worker-a`, `worker-b`, `clients` (all client processes), `bench` (this one). */
  role: string;
  /** User + system CPU time, s. */
  cpuS: number;
  /** `cpuS` over the drain's wall time: 1.0 = one core busy the whole time. */
  cores: number;
  /**
   * Time its threads were runnable but waiting for a CPU (/proc schedstat), summed over threads,
   * s: how much CPU contention (its own processes' and the machine's other work) delayed it.
   */
  runQueueWaitS: number;
  /** CPU time by thread name (`node` = the JS main thread, `tokio-runtime-w`, ...), s. */
  threads: Record<string, number>;
}

/** One phase of RFC-001 over all the drain's migrations (the director's whole-ms counts). */
export interface PhaseTotals {
  /** Sum over the migrations, ms. */
  sumMs: number;
  /** Mean per migration, ms. */
  meanMs: number;
  /** p99 per migration, ms. */
  p99Ms: number | null;
}

/** The result of one {@link measureDrain}. */
export interface DrainResult {
  /** Sessions asked for. */
  sessions: number;
  /** Sessions that were streaming before the SIGTERM. */
  opened: number;
  /** Time to open every session and receive each one's first item, ms. */
  openMs: number;
  /**
   * While opening: connection attempts that failed and were retried, sessions that could not be
   * opened at all (three attempts), and up to five errors of failed attempts.
   */
  connect: { retries: number; failures: number; errors: string[] };
  /** Sessions whose stream failed after opening and before the SIGTERM, and up to five of their errors. */
  diedBeforeDrain: { count: number; errors: string[] };
  /**
   * UDP datagrams the kernel dropped for a full socket receive buffer: `machine` is
   * `RcvbufErrors` of /proc/net/snmp (every process, others' too) while opening and during the
   * drain (SIGTERM to the worker's exit); the others, per process role, are the `drops` of
   * /proc/net/udp over the sockets it holds, from the first session to the stop of the clients.
   */
  udpDrops: { machine: { opening: number; drain: number }; byRole: Record<string, number> };
  /** Interval between two items of one session, ms. */
  intervalMs: number;
  /** Client processes. */
  clients: number;
  /** Application state per session, bytes. */
  stateBytes: number;
  /** The director's `failoverAfterMs`, ms. */
  failoverAfterMs: number;
  /** SIGTERM to the drained worker's exit, ms; `null` if it did not exit within the timeout. */
  drainMs: number | null;
  /**
   * SIGTERM to the drained worker's `drained` message (its drain request answered: every session
   * moved and every relay off it ended), ms; the rest of `drainMs` is its close and exit.
   */
  drainedMs: number | null;
  /** SIGTERM to the director's first migration-started event (as received here), ms. */
  firstMigrationMs: number | null;
  /** SIGTERM to the director's last migration report (as received here), ms. */
  lastMigrationMs: number | null;
  /** Times (from SIGTERM, ms) at which 10 %, 50 %, 90 % and 100 % of the migrations had ended. */
  progressMs: { p10: number | null; p50: number | null; p90: number | null; p100: number | null };
  /** The drained worker's exit code (0 = its drain succeeded). */
  workerExitCode: number | null;
  /** Migrations started during the drain. */
  started: number;
  /** Migrations completed (session on worker-b). */
  completed: number;
  /** Migrations aborted (session stayed on worker-a). */
  aborted: number;
  /** Abort causes (`phase: error`) and their counts. */
  abortCauses: Record<string, number>;
  /** Most migrations running at once (from the started / ended events). */
  maxConcurrent: number;
  /** Per migration: director's total time (slot already taken), ms. */
  migrationMs: Spread;
  /** Per migration: time its calls were frozen (State Capture to Pivot), ms. */
  frozenMs: Spread;
  /** Per migration: SIGTERM to its migration-started event (mostly waiting for a slot), ms. */
  queuedMs: Spread;
  /** Per phase, in RFC-001 order. */
  phases: Record<string, PhaseTotals>;
  /** Sealed snapshot size of one migration, bytes. */
  snapshotBytes: number;
  /** Client pause at each switch of worker: gap between two items beyond the interval, ms. */
  pauseMs: Spread;
  /** Per session: largest gap beyond the interval between two items of the same worker since the SIGTERM (load, not the switch), ms. */
  stallMs: Spread;
  /** Sessions that switched worker exactly once / never / more than once. */
  switched: { once: number; never: number; more: number };
  /** Sessions that received no item after the SIGTERM. */
  silent: number;
  /** Items missing, over all sessions. */
  lost: number;
  /** Items received twice, over all sessions. */
  repeated: number;
  /** Items carrying another session's connectionId, over all sessions. */
  foreign: number;
  /** Sessions whose stream failed after the SIGTERM, and up to five of their errors. */
  streamErrors: { count: number; samples: string[] };
  /** Sessions per owner after the drain (director's view). */
  owners: Record<string, number>;
  /** CPU time by process during the drain. */
  cpu: ProcessCpu[];
  /**
   * CPU time by process over half the settle time before the SIGTERM (everything streams,
   * nothing migrates): the streaming load to subtract from {@link DrainResult.cpu}.
   */
  steadyCpu: ProcessCpu[];
  /** Share of the machine's CPU (all cores, all processes, others' too) busy during the drain, 0..1. */
  machineBusy: number;
  /** The same over the steady window. */
  steadyMachineBusy: number;
  /** The machine's 1-minute load average at the SIGTERM (others' work included). */
  loadAvg: number;
  /**
   * CLOCK_MONOTONIC at the SIGTERM and at the worker's exit, µs (the clock of `perf` samples,
   * to cut the drain out of a longer recording).
   */
  monotonicUs: { sigterm: number; exit: number };
  /** Peak resident memory of the director, KiB (VmHWM). */
  directorPeakKiB: number | null;
  /** When the run started (ISO 8601). */
  date: string;
}

const HERE = fileURLToPath(new URL('.', import.meta.url));
/** Unix time now, ms, with sub-ms precision (comparable with the client processes' times). */
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `p`'s value, or `undefined` after `ms` (the timer does not outlive the race). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function spread(xs: number[]): Spread {
  const s = Float64Array.from(xs).sort();
  return { p50: percentile(s, 0.5), p99: percentile(s, 0.99), max: s.length ? s[s.length - 1]! : null };
}

/** Ticks of CPU time (user + system) of a /proc stat line, and the thread's name. */
function statOf(path: string): { name: string; ticks: number } | undefined {
  try {
    const line = readFileSync(path, 'utf8');
    const close = line.lastIndexOf(')');
    const rest = line.slice(close + 2).split(' ');
    return { name: line.slice(line.indexOf('(') + 1, close), ticks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

/** CPU ticks of one process, and of each of its threads (by tid) with its run-queue wait, ns. */
interface ProcSample {
  ticks: number;
  threads: Map<string, { name: string; ticks: number; waitNs: number }>;
}

function sampleProcess(pid: number): ProcSample | undefined {
  const total = statOf(`/proc/${pid}/stat`);
  if (!total) return undefined;
  const threads = new Map<string, { name: string; ticks: number; waitNs: number }>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const t = statOf(`/proc/${pid}/task/${tid}/stat`);
      if (!t) continue;
      let waitNs = 0;
      try {
        // run time on a CPU, time runnable but waiting for one, timeslices (ns, ns, count)
        waitNs = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1]);
      } catch {
        // no schedstats
      }
      threads.set(tid, { ...t, waitNs });
    }
  } catch {
    // gone meanwhile
  }
  return { ticks: total.ticks, threads };
}

/** The machine's count of UDP datagrams dropped for a full receive buffer (/proc/net/snmp). */
function udpRcvbufErrors(): number {
  const [names, values] = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'))
    .map((l) => l.split(/\s+/));
  return Number(values?.[names?.indexOf('RcvbufErrors') ?? -1] ?? NaN);
}

/** Resident memory of process `pid` now, MiB. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/**
 * UDP datagrams dropped so far on the sockets process `pid` holds (/proc/net/udp `drops`), by
 * local port.
 */
function udpSocketDrops(pid: number): Map<number, number> {
  const inodes = new Set<string>();
  const byPort = new Map<number, number>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]!);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return byPort;
  }
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length <= 12 || !inodes.has(f[9]!)) continue;
      const port = parseInt(f[1]!.split(':')[1]!, 16);
      byPort.set(port, (byPort.get(port) ?? 0) + Number(f[12]));
    }
  }
  return byPort;
}

const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);
export const portOf = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

/** Busy and total jiffies of the whole machine (/proc/stat). */
export function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/**
 * Samples the CPU time of a set of processes every 100 ms; {@link CpuMeter.stop} returns each
 * role's use between the first sample and its last (a process that exits keeps its last one).
 */
class CpuMeter {
  readonly #first = new Map<number, ProcSample>();
  readonly #last = new Map<number, ProcSample>();
  readonly #machine = machineTicks();
  readonly #timer: NodeJS.Timeout;
  readonly #roles: { role: string; pid: number }[];
  readonly #hz = 100;

  constructor(roles: { role: string; pid: number }[]) {
    this.#roles = roles;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), 100);
  }

  #sample(): void {
    for (const { pid } of this.#roles) {
      const s = sampleProcess(pid);
      if (!s) continue;
      if (!this.#first.has(pid)) this.#first.set(pid, s);
      this.#last.set(pid, s);
    }
  }

  /** Stops sampling; returns CPU use by role over `wallMs`, and the machine's busy share. */
  stop(wallMs: number): { cpu: ProcessCpu[]; machineBusy: number } {
    clearInterval(this.#timer);
    const m = machineTicks();
    const byRole = new Map<string, ProcessCpu>();
    for (const { role, pid } of this.#roles) {
      const a = this.#first.get(pid);
      const b = this.#last.get(pid);
      if (!a || !b) continue;
      const r = byRole.get(role) ?? { role, cpuS: 0, cores: 0, runQueueWaitS: 0, threads: {} };
      r.cpuS += (b.ticks - a.ticks) / this.#hz;
      for (const [tid, t] of b.threads) {
        const before = a.threads.get(tid);
        const d = (t.ticks - (before?.ticks ?? 0)) / this.#hz;
        if (d > 0) r.threads[t.name] = (r.threads[t.name] ?? 0) + d;
        r.runQueueWaitS += (t.waitNs - (before?.waitNs ?? 0)) / 1e9;
      }
      byRole.set(role, r);
    }
    const cpu = [...byRole.values()].map((r) => ({
      ...r,
      cpuS: round(r.cpuS),
      cores: round(r.cpuS / (wallMs / 1000)),
      runQueueWaitS: round(r.runQueueWaitS),
      threads: Object.fromEntries(Object.entries(r.threads).map(([k, v]) => [k, round(v)])),
    }));
    return { cpu, machineBusy: round((m.busy - this.#machine.busy) / Math.max(1, m.total - this.#machine.total)) };
  }
}

const round = (x: number) => Math.round(x * 100) / 100;

/** A forked `drain-client.ts` process and the messages it sent. */
interface ClientProc {
  child: ChildProcess;
  message(type: string, timeoutMs: number): Promise<Record<string, unknown>>;
}

function forkClient(args: string[]): ClientProc {
  const child = fork(join(HERE, 'drain-client.ts'), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const got: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  child.on('message', (m: Record<string, unknown>) => {
    got.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const message = (type: string, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error(`client ${child.pid}: no '${type}' within ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        const m = got.find((x) => x.type === type);
        if (m) {
          clearTimeout(deadline);
          resolve(m);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(deadline);
          reject(new Error(`client ${child.pid} exited (${child.exitCode ?? child.signalCode})`));
        } else waiters.push(check);
      };
      child.once('exit', () => waiters.splice(0).forEach((w) => w()));
      check();
    });
  return { child, message };
}

/** Keeps a silent child's output pipes flowing (a full pipe would block it); keeps stderr's tail. */
export function drainPipes(p: Proc): () => string {
  let tail = '';
  p.child.stdout?.resume();
  p.child.stderr?.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-4000)));
  return () => tail;
}

/** Starts `perf record` on `pids`; `stop` ends it (SIGINT) and waits until the file is written. */
async function startPerf(dir: string, name: string, pids: number[]): Promise<{ stop(): Promise<void> }> {
  mkdirSync(dir, { recursive: true });
  const perf = spawn('perf', ['record', '-F', '999', '-g', '-o', join(dir, `${name}.perf.data`), '-p', pids.join(',')], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => perf.once('exit', () => r()));
  await sleep(500); // attaching takes a moment
  return {
    async stop() {
      perf.kill('SIGINT');
      await within(exited, 30_000);
    },
  };
}

/**
 * Runs `start` (which forks through the demo harness) with `args` added to the node arguments
 * its children inherit (`fork` defaults to `process.execArgv`).
 */
async function withNodeArgs<T>(args: string[], start: () => Promise<T>): Promise<T> {
  process.execArgv.push(...args);
  try {
    return await start();
  } finally {
    process.execArgv.splice(process.execArgv.length - args.length, args.length);
  }
}

/** What {@link migrationStats} reads from the director's events. */
type MigrationStats = Pick<
  DrainResult,
  | 'firstMigrationMs'
  | 'lastMigrationMs'
  | 'progressMs'
  | 'started'
  | 'completed'
  | 'aborted'
  | 'abortCauses'
  | 'maxConcurrent'
  | 'migrationMs'
  | 'frozenMs'
  | 'queuedMs'
  | 'phases'
  | 'snapshotBytes'
>;

/** The drain's migrations from the director's events (received at `at`, unix ms) after the SIGTERM at `t0`. */
function migrationStats(events: { at: number; e: DirectorEvent }[], t0: number): MigrationStats {
  const reports: { at: number; r: MigrationReport }[] = [];
  const startedAt: number[] = [];
  let running = 0;
  let maxConcurrent = 0;
  for (const { at, e } of events) {
    if (e.kind === 'migration-started') {
      startedAt.push(at - t0);
      maxConcurrent = Math.max(maxConcurrent, ++running);
    } else if (e.kind === 'migration-completed' || e.kind === 'migration-aborted') {
      running--;
      reports.push({ at, r: e.report });
    }
  }
  const endTimes = reports.map((x) => x.at - t0).sort((a, b) => a - b);
  const endedBy = (q: number) => (endTimes.length ? round(endTimes[Math.max(0, Math.ceil(q * endTimes.length) - 1)]!) : null);
  const perPhase = new Map<string, number[]>();
  for (const { r } of reports) {
    for (const p of r.phases) {
      const list = perPhase.get(p.phase) ?? [];
      list.push(p.ms);
      perPhase.set(p.phase, list);
    }
  }
  const phases: Record<string, PhaseTotals> = {};
  for (const [phase, ms] of perPhase) {
    const total = ms.reduce((a, b) => a + b, 0);
    phases[phase] = { sumMs: total, meanMs: round(total / reports.length), p99Ms: spread(ms).p99 };
  }
  const abortCauses: Record<string, number> = {};
  for (const { r } of reports) {
    if (r.completed) continue;
    const cause = `${r.abortedIn ?? '?'}: ${(r.error ?? '?').slice(0, 120)}`;
    abortCauses[cause] = (abortCauses[cause] ?? 0) + 1;
  }
  return {
    firstMigrationMs: startedAt.length ? round(Math.min(...startedAt)) : null,
    lastMigrationMs: endedBy(1),
    progressMs: { p10: endedBy(0.1), p50: endedBy(0.5), p90: endedBy(0.9), p100: endedBy(1) },
    started: startedAt.length,
    completed: reports.filter((x) => x.r.completed).length,
    aborted: reports.filter((x) => !x.r.completed).length,
    abortCauses,
    maxConcurrent,
    migrationMs: spread(reports.map((x) => x.r.durationMs)),
    frozenMs: spread(reports.map((x) => x.r.frozenMs)),
    queuedMs: spread(startedAt),
    phases,
    snapshotBytes: reports[0]?.r.snapshotBytes ?? 0,
  };
}

/** What {@link sessionStats} reads from the clients' records. */
type SessionStats = Pick<
  DrainResult,
  'diedBeforeDrain' | 'pauseMs' | 'stallMs' | 'switched' | 'silent' | 'lost' | 'repeated' | 'foreign' | 'streamErrors'
>;

/** What the sessions saw, from the clients' records; `t0` is the SIGTERM (unix ms). */
function sessionStats(records: SessionRecord[], t0: number): SessionStats {
  const errors = records.filter((r) => r.error && r.errorAtMs! >= t0);
  const died = records.filter((r) => r.error && r.errorAtMs! < t0);
  return {
    diedBeforeDrain: { count: died.length, errors: died.slice(0, 5).map((r) => r.error!) },
    pauseMs: spread(records.flatMap((r) => r.switches.map((s) => s.pauseMs))),
    stallMs: spread(records.map((r) => r.stallMs)),
    switched: {
      once: records.filter((r) => r.switches.length === 1).length,
      never: records.filter((r) => r.switches.length === 0).length,
      more: records.filter((r) => r.switches.length > 1).length,
    },
    silent: records.filter((r) => r.itemsSinceMark === 0).length,
    lost: records.reduce((a, r) => a + r.lost, 0),
    repeated: records.reduce((a, r) => a + r.repeated, 0),
    foreign: records.reduce((a, r) => a + r.foreign, 0),
    streamErrors: { count: errors.length, samples: errors.slice(0, 5).map((r) => r.error!) },
  };
}

/**
 * Drains a worker that owns `sessions` streaming sessions and measures it (see the module docs).
 * Forks and, at the end, stops every process it started.
 * @param sessions - client sessions (connections), each with one streaming call
 * @param opts - see {@link DrainOptions} (times in ms)
 * @returns the measurements; a drain that fails (aborted migrations, a worker that exits 1 or
 * not at all) is measured and returned, not thrown
 */
export async function measureDrain(sessions: number, opts: DrainOptions = {}): Promise<DrainResult> {
  const intervalMs = opts.intervalMs ?? Math.max(100, Math.round(sessions / 5));
  const clients = Math.min(sessions, opts.clients ?? Math.ceil(sessions / 2000));
  const stateBytes = opts.stateBytes ?? 1024;
  const failoverAfterMs = opts.failoverAfterMs ?? 2000;
  const tailMs = opts.tailMs ?? Math.max(1000, 3 * intervalMs);
  const timeoutMs = opts.timeoutMs ?? 60_000 + 20 * sessions;
  const say = (line: string) => (opts.verbose ?? true) && process.stderr.write(`drain ${sessions}: ${line}\n`);
  const date = new Date().toISOString();
  // --perf-basic-prof also writes a V8 log: into the perf directory, not the working one.
  const workerArgs = opts.perfDir ? ['--perf-basic-prof', `--logfile=${join(opts.perfDir, 'v8-%p.log')}`, '--no-logfile-per-isolate'] : [];

  const dir = mkdtempSync(join(os.tmpdir(), 'rpcnet-drain-'));
  const procs: Proc[] = [];
  const clientProcs: ClientProc[] = [];
  try {
    const director = await startDirector(dir, { silent: true, failoverAfterMs });
    procs.push(director.proc);
    drainPipes(director.proc);
    const events: { at: number; e: DirectorEvent }[] = [];
    director.proc.child.on('message', (m: { type: string; event?: DirectorEvent }) => {
      if (m.type === 'event' && m.event) events.push({ at: nowMs(), e: m.event });
    });
    const workerA = await withNodeArgs(workerArgs, () => startWorker('worker-a', director, dir, { silent: true, stateBytes }));
    procs.push(workerA);
    const workerATail = drainPipes(workerA);

    const opening = nowMs();
    const udpAtOpen = udpRcvbufErrors();
    for (let i = 0; i < clients; i++) {
      const n = Math.floor(sessions / clients) + (i < sessions % clients ? 1 : 0);
      clientProcs.push(
        forkClient([
          '--address', director.address,
          '--pin', director.fingerprint,
          '--sessions', String(n),
          '--interval-ms', String(intervalMs),
          '--connect-concurrency', String(opts.connectConcurrency ?? 16),
        ]),
      );
    }
    say(`opening ${sessions} sessions from ${clients} client process(es), one item every ${intervalMs} ms each`);
    const progress = setInterval(() => {
      void director.proc
        .command<{ id: string; sessions: number }[]>({ cmd: 'workers' })
        .then((ws) => say(`  ${ws.map((w) => `${w.id}: ${w.sessions}`).join(', ')} sessions; director ${rssMiB(director.proc.child.pid!)} MiB`))
        .catch(() => undefined);
    }, 5000);
    const streaming = await Promise.all(clientProcs.map((c) => c.message('streaming', 60_000 + 50 * sessions))).finally(() => clearInterval(progress));
    const openMs = nowMs() - opening;
    const udpAtOpened = udpRcvbufErrors();
    const connect = {
      retries: streaming.reduce((a, m) => a + (m.retries as number), 0),
      failures: streaming.reduce((a, m) => a + (m.openFailures as number), 0),
      errors: streaming.flatMap((m) => m.errors as string[]).slice(0, 5),
    };
    const before = await director.proc.command<{ worker: string }[]>({ cmd: 'sessions' });
    const opened = before.filter((s) => s.worker === 'worker-a').length;
    say(`${before.length} sessions streaming after ${(openMs / 1000).toFixed(1)} s, ${opened} on worker-a; connect retries ${connect.retries}, failures ${connect.failures} ${connect.errors[0] ?? ''}`);

    const workerB = await withNodeArgs(workerArgs, () => startWorker('worker-b', director, dir, { silent: true, stateBytes }));
    procs.push(workerB);
    drainPipes(workerB);
    const roles = [
      { role: 'director', pid: director.proc.child.pid! },
      { role: 'worker-a', pid: workerA.child.pid! },
      { role: 'worker-b', pid: workerB.child.pid! },
      ...clientProcs.map((c) => ({ role: 'clients', pid: c.child.pid! })),
      { role: 'bench', pid: process.pid },
    ];
    // The same processes' CPU use while every session streams and nothing migrates.
    const settleMs = opts.settleMs ?? 2000;
    await sleep(settleMs / 2);
    const steady = new CpuMeter(roles);
    const steadyFrom = nowMs();
    await sleep(settleMs / 2);
    const baseline = steady.stop(nowMs() - steadyFrom);
    const perf = opts.perfDir ? await startPerf(opts.perfDir, `drain-${sessions}`, roles.slice(0, 3).map((r) => r.pid)) : undefined;

    for (const c of clientProcs) c.child.send({ cmd: 'mark' });
    const meter = new CpuMeter(roles);
    const firstEvent = events.length;
    let drainedAt: number | undefined;
    workerA.child.on('message', (m: { type?: string }) => {
      if (m.type === 'drained') drainedAt = nowMs();
    });
    const loadAvg = os.loadavg()[0]!;
    const udpAtSigterm = udpRcvbufErrors();
    const workerADrops = sum(udpSocketDrops(workerA.child.pid!));
    const t0 = nowMs();
    const monoSigterm = process.hrtime.bigint();
    say('SIGTERM worker-a');
    workerA.kill('SIGTERM');
    const exit = await within(workerA.exited, timeoutMs);
    const tExit = nowMs();
    const monoExit = process.hrtime.bigint();
    const { cpu, machineBusy } = meter.stop(tExit - t0);
    if (perf) await perf.stop();
    const udpAtExit = udpRcvbufErrors();
    const drainMs = exit ? tExit - t0 : null;
    say(exit ? `worker-a exited (code ${exit.code}) after ${(drainMs! / 1000).toFixed(2)} s` : `worker-a did not exit within ${timeoutMs} ms`);
    if (exit?.code) say(`worker-a stderr: ${workerATail().trim()}`);

    // Every started migration reports (the last ones may still be on their way over IPC).
    for (let i = 0; i < 100; i++) {
      const m = migrationStats(events.slice(firstEvent), t0);
      if (m.completed + m.aborted >= m.started) break;
      await sleep(50);
    }
    await sleep(tailMs);
    const after = await director.proc.command<{ worker: string }[]>({ cmd: 'sessions' });
    const directorDrops = udpSocketDrops(director.proc.child.pid!);
    const userPort = directorDrops.get(portOf(director.address)) ?? 0;
    const mgmtPort = directorDrops.get(portOf(director.mgmtAddress)) ?? 0;
    const byRole: Record<string, number> = {
      'director user port': userPort,
      'director management port': mgmtPort,
      'director links to workers': sum(directorDrops) - userPort - mgmtPort,
      'worker-a (at the SIGTERM)': workerADrops,
      'worker-b': sum(udpSocketDrops(workerB.child.pid!)),
      clients: clientProcs.reduce((a, c) => a + sum(udpSocketDrops(c.child.pid!)), 0),
    };
    say('stopping the clients');
    for (const c of clientProcs) c.child.send({ cmd: 'stop' });
    const records = (await Promise.all(clientProcs.map((c) => c.message('records', 60_000)))).flatMap((m) => m.records as SessionRecord[]);
    say('records received');
    const status = readFileSync(`/proc/${director.proc.child.pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+)/.exec(status);

    const owners: Record<string, number> = {};
    for (const s of after) owners[s.worker] = (owners[s.worker] ?? 0) + 1;
    return {
      sessions,
      opened,
      openMs: Math.round(openMs),
      connect,
      udpDrops: { machine: { opening: udpAtOpened - udpAtOpen, drain: udpAtExit - udpAtSigterm }, byRole },
      intervalMs,
      clients,
      stateBytes,
      failoverAfterMs,
      drainMs: drainMs === null ? null : round(drainMs),
      drainedMs: drainedAt === undefined ? null : round(drainedAt - t0),
      workerExitCode: exit?.code ?? null,
      ...migrationStats(events.slice(firstEvent), t0),
      ...sessionStats(records, t0),
      owners,
      cpu,
      steadyCpu: baseline.cpu,
      machineBusy,
      steadyMachineBusy: baseline.machineBusy,
      loadAvg: round(loadAvg),
      monotonicUs: { sigterm: Number(monoSigterm / 1000n), exit: Number(monoExit / 1000n) },
      directorPeakKiB: hwm ? Number(hwm[1]) : null,
      date,
    };
  } finally {
    say('stopping the cluster');
    for (const c of clientProcs) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => within(p.exited, 10_000)));
    rmSync(dir, { recursive: true, force: true });
    say('stopped');
  }
}

const ms = (x: number | null) => (x === null ? '-' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`);

/** The markdown table of `results`, one row per run. */
export function drainTable(results: DrainResult[]): string {
  const lines = [
    '| sessions | time to drain | migrations completed / aborted | client pause p50 | p99 | items lost / repeated | last migration done | migration p50 / p99 | frozen p99 | stall p99 | item interval | load avg |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.sessions.toLocaleString('en')} | ${ms(r.drainMs)} | ${r.completed} / ${r.aborted} | ${ms(r.pauseMs.p50)} | ${ms(r.pauseMs.p99)} | ${r.lost} / ${r.repeated} | ${ms(r.lastMigrationMs)} | ${ms(r.migrationMs.p50)} / ${ms(r.migrationMs.p99)} | ${ms(r.frozenMs.p99)} | ${ms(r.stallMs.p99)} | ${r.intervalMs} ms | ${r.loadAvg.toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string', default: '100,1000' },
      'interval-ms': { type: 'string' },
      clients: { type: 'string' },
      'state-bytes': { type: 'string' },
      'failover-after-ms': { type: 'string' },
      perf: { type: 'string' },
      repeat: { type: 'string', default: '1' },
      json: { type: 'string', default: 'benchmark/results/drain.json' },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const results: DrainResult[] = [];
  for (const n of values.sessions!.split(',').map(Number)) {
    for (let i = 0; i < Number(values.repeat); i++) {
      const options: DrainOptions = {
        intervalMs: num(values['interval-ms']),
        clients: num(values.clients),
        stateBytes: num(values['state-bytes']),
        failoverAfterMs: num(values['failover-after-ms']),
        perfDir: values.perf,
      };
      results.push(await measureDrain(n, options));
    }
  }
  // Merge with earlier runs of other sizes (the runs of this invocation replace those of the same size).
  const path = values.json!;
  const old = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { results: DrainResult[] }).results : [];
  const merged = [...old.filter((o) => !results.some((r) => r.sessions === o.sessions)), ...results].sort((a, b) => a.sessions - b.sessions);
  mkdirSync('benchmark/results', { recursive: true });
  writeFileSync(path, `${JSON.stringify({ node: process.version, cpus: `${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}`, results: merged }, null, 2)}\n`);
  console.log(`rpcnet drain benchmark — node ${process.version}, ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}, ${new Date().toISOString()}`);
  console.log('one streaming call per session, all on worker-a; SIGTERM worker-a; time to drain = SIGTERM to its exit; pause = gap between two items beyond the interval at the switch\n');
  console.log(drainTable(results));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
