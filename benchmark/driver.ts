/**
 * What the benchmark drivers (`run.ts`, `directors.ts`) share for the processes they spawn: every
 * child is registered so that {@link killChildren} can end them all (on exit, on a signal, after a
 * failure), and {@link measureClient} runs one `client.ts` process for one scenario and turns its
 * JSON line into ops/s.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstJsonLine, type ClientResult, type Scenario } from './common.ts';

/** The repository's root directory. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The benchmark/ directory. */
export const HERE = join(ROOT, 'benchmark');
/** Node arguments of the TypeScript children: load .ts through @oxc-node/core, as the drivers. */
const TS_NODE_ARGS = ['--import', '@oxc-node/core/register'];
/** Time a client may take beyond warm-up + duration (connect, teardown). */
const CLIENT_SLACK_MS = 30_000;

const children = new Set<ChildProcess>();

/** Registers a child (spawned or forked elsewhere) so that {@link killChildren} ends it. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** The process ids of the registered children still running. */
export function childPids(): number[] {
  return [...children].filter((c) => c.exitCode === null && c.signalCode === null && c.pid !== undefined).map((c) => c.pid!);
}

/** SIGKILLs every registered child still running (idempotent, sync). */
export function killChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
}

/** Spawns a registered child; stdout is a pipe (for its JSON lines), stderr is inherited. */
export function spawnChild(command: string, args: string[]): ChildProcess {
  // stdin is a pipe that we never write to: children exit when it closes, i.e. when we die.
  return track(spawn(command, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] }));
}

/** Spawns `benchmark/<file>` (TypeScript) as a registered child. */
export function spawnTs(file: string, args: string[]): ChildProcess {
  return spawnChild(process.execPath, [...TS_NODE_ARGS, join(HERE, file), ...args]);
}

/** SIGTERM, then SIGKILL after 3 s; resolves once the child has exited. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}

/** A client run's raw result and its rates. */
export interface Measured {
  result: ClientResult;
  /** Calls (unary) or items (streaming) per second in the measured window. */
  opsPerSec: number;
  /** Payload MiB per second received by the client (response or item bytes). */
  mibPerSec: number;
}

/**
 * Runs one client process (`spawnClient`) for `scenario` and resolves with its rates; the
 * client is stopped whatever happens. `what` names it in errors.
 */
export async function measureClient(
  what: string,
  spawnClient: () => ChildProcess,
  timing: { warmupMs: number; durationMs: number },
): Promise<Measured> {
  const client = spawnClient();
  try {
    const result = await firstJsonLine<ClientResult>(client, what, timing.warmupMs + timing.durationMs + CLIENT_SLACK_MS);
    return {
      result,
      opsPerSec: result.ops / (result.elapsedMs / 1000),
      mibPerSec: result.bytes / (result.elapsedMs / 1000) / (1024 * 1024),
    };
  } finally {
    await stop(client);
  }
}

/** The `client.ts` arguments every scenario passes. */
export function scenarioArgs(scenario: Scenario, addr: string, timing: { warmupMs: number; durationMs: number }): string[] {
  return [
    '--scenario', scenario.kind,
    '--concurrency', String(scenario.concurrency),
    '--duration-ms', String(timing.durationMs),
    '--warmup-ms', String(timing.warmupMs),
    '--addr', addr,
  ];
}
