/**
 * Starts the demo's processes (director, workers) as real OS processes with `fork`, and talks to
 * them over IPC. Shared by `npm run demo` and the multi-process tests.
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = (name: string) => fileURLToPath(new URL(`./${name}.js`, import.meta.url));

/** A forked process and its messages. */
export class Proc {
  readonly child: ChildProcess;
  readonly messages: Record<string, unknown>[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #next = 1;
  #waiters: ((m: Record<string, unknown>) => boolean)[] = [];

  constructor(script: string, args: string[], options: { silent?: boolean } = {}) {
    // The children run compiled JavaScript and need none of this process's flags (a TypeScript
    // loader inherited from a test or benchmark would cost each ~40 MB); --expose-gc lets the
    // `memory` command collect garbage before it measures.
    this.child = fork(here(script), args, {
      stdio: options.silent ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: ['--expose-gc'],
    });
    this.child.on('message', (m: Record<string, unknown>) => {
      this.messages.push(m);
      this.#waiters = this.#waiters.filter((w) => !w(m));
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Resolves with the first message (already received or future) matching `pred`. */
  waitFor(pred: (m: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    const found = this.messages.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a message from ${this.child.pid}`)), timeoutMs);
      this.#waiters.push((m) => {
        if (!pred(m)) return false;
        clearTimeout(timer);
        resolve(m);
        return true;
      });
    });
  }

  /** Sends a command and resolves with its result (rejects with the command's error). */
  async command<T>(cmd: Record<string, unknown>, timeoutMs = 60_000): Promise<T> {
    const id = this.#next++;
    this.child.send({ ...cmd, id });
    const reply = await this.waitFor((m) => m.type === 'reply' && m.id === id, timeoutMs);
    if (reply.error) {
      const e = reply.error as { code: string; message: string };
      throw Object.assign(new Error(e.message), { code: e.code });
    }
    return reply.result as T;
  }

  /** Sends a signal (no-op if the process is gone). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/** A director process with its addresses. */
export interface DirectorProc {
  proc: Proc;
  address: string;
  mgmtAddress: string;
  fingerprint: string;
}

/**
 * Forks a director and waits until it listens. `port` and `mgmtPort` (default 0: any) bind
 * given ports, e.g. those of a director that ran before (a restart).
 */
export async function startDirector(
  clusterDir: string,
  options: { silent?: boolean; failoverAfterMs?: number; port?: number; mgmtPort?: number } = {},
): Promise<DirectorProc> {
  const args = ['--cluster-dir', clusterDir];
  if (options.failoverAfterMs) args.push('--failover-after-ms', String(options.failoverAfterMs));
  if (options.port) args.push('--port', String(options.port));
  if (options.mgmtPort) args.push('--mgmt-port', String(options.mgmtPort));
  const proc = new Proc('director', args, options);
  const ready = await proc.waitFor((m) => m.type === 'ready');
  return { proc, address: ready.address as string, mgmtAddress: ready.mgmtAddress as string, fingerprint: ready.fingerprint as string };
}

/** Forks a worker, waits until it registered with the director (with one of `director`, if several). */
export async function startWorker(
  id: string,
  director: DirectorProc | DirectorProc[],
  clusterDir: string,
  options: { silent?: boolean; stateBytes?: number; confirmDelayMs?: number; restoreDelayMs?: number; defaultSigterm?: boolean } = {},
): Promise<Proc> {
  const directors = (Array.isArray(director) ? director : [director]).map((d) => d.mgmtAddress).join(',');
  const args = ['--id', id, '--director', directors, '--cluster-dir', clusterDir];
  if (options.stateBytes !== undefined) args.push('--state-bytes', String(options.stateBytes));
  if (options.confirmDelayMs) args.push('--confirm-delay-ms', String(options.confirmDelayMs));
  if (options.restoreDelayMs) args.push('--restore-delay-ms', String(options.restoreDelayMs));
  if (options.defaultSigterm) args.push('--default-sigterm');
  const proc = new Proc('worker', args, options);
  await Promise.race([
    proc.waitFor((m) => m.type === 'ready'),
    proc.exited.then((e) => Promise.reject(new Error(`worker ${id} exited early: ${JSON.stringify(e)}`))),
  ]);
  return proc;
}
