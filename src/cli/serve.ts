/**
 * `rpcnet director` and `rpcnet worker`: start a cluster process from the command line and a
 * config file (src/config.ts), so that a cluster runs without writing a launcher.
 *
 * A handlers module exports what the worker serves, in either shape:
 * - `export default function (worker) { worker.unary(...); worker.setHooks(...); }` (or a named
 *   `setup`), which may be async;
 * - `export const unary = { name: handler }`, `export const serverStreaming = { name: handler }`,
 *   `export const clientStreaming = { name: handler }`, `export const bidiStreaming = { name: handler }`,
 *   `export const hooks = { onMigrationRequest, captureState, restoreState }`.
 *
 * Both processes print where they listen (`--json`: one JSON object) and stop gracefully on
 * SIGTERM (a director moves its clients to the other directors, a worker drains).
 * @module
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { loadConfig, parseConfig, type RpcnetConfig } from '../config.js';
import { Director } from '../director.js';
import { RpcError } from '../errors.js';
import type { BidiStreamingHandler, ClientStreamingHandler, ServerStreamingHandler, UnaryHandler } from '../server.js';
import { RpcWorker, type WorkerHooks, type WorkerOptions } from '../worker.js';
import { printJson } from './output.js';

/** What a handlers module may export (see the module docs). */
interface HandlersModule {
  default?: unknown;
  setup?: unknown;
  unary?: Record<string, UnaryHandler>;
  serverStreaming?: Record<string, ServerStreamingHandler>;
  clientStreaming?: Record<string, ClientStreamingHandler>;
  bidiStreaming?: Record<string, BidiStreamingHandler>;
  hooks?: WorkerHooks;
}

/**
 * The config file at `path`, or the environment alone.
 * @throws {RpcError} `INVALID_ARGUMENT` naming the key, value and what was expected.
 */
export function config(path: string | undefined): RpcnetConfig {
  return path === undefined ? parseConfig('', process.env, 'the environment') : loadConfig(path);
}

function print(json: boolean, role: string, fields: Record<string, string | undefined>): void {
  if (json) printJson({ role, ...fields });
  else console.log(`rpcnet ${role}: ${Object.entries(fields).map(([k, v]) => `${k} ${v ?? '-'}`).join(', ')}`);
}

/** `rpcnet director`: starts a director and prints where it listens. */
export async function director(options: { config?: string; clusterDir?: string; json?: boolean }): Promise<void> {
  const fromConfig = config(options.config).director;
  const d = await Director.start(options.clusterDir === undefined ? fromConfig : { ...fromConfig, clusterDir: options.clusterDir });
  print(!!options.json, 'director', { address: d.address, mgmtAddress: d.mgmtAddress, adminAddress: d.adminAddress, caFile: d.caFile });
}

/**
 * What registers `module`'s exports on a worker, checked before the worker starts.
 * @throws {RpcError} `INVALID_ARGUMENT` when the module exports nothing usable.
 */
function installer(path: string, module: HandlersModule): (worker: RpcWorker) => Promise<void> {
  const setup = typeof module.default === 'function' ? module.default : module.setup;
  if (typeof setup === 'function') return async (worker) => void (await (setup as (w: RpcWorker) => unknown)(worker));
  if (!module.unary && !module.serverStreaming && !module.clientStreaming && !module.bidiStreaming) {
    throw new RpcError(
      'INVALID_ARGUMENT',
      `${path} exports no handlers: export a default function (worker) => ..., or objects named unary / serverStreaming / clientStreaming / bidiStreaming`,
    );
  }
  return async (worker) => {
    for (const [name, fn] of Object.entries(module.unary ?? {})) worker.unary(name, fn);
    for (const [name, fn] of Object.entries(module.serverStreaming ?? {})) worker.serverStreaming(name, fn);
    for (const [name, fn] of Object.entries(module.clientStreaming ?? {})) worker.clientStreaming(name, fn);
    for (const [name, fn] of Object.entries(module.bidiStreaming ?? {})) worker.bidiStreaming(name, fn);
    if (module.hooks) worker.setHooks(module.hooks);
  };
}

/** `rpcnet worker`: starts a worker serving a handlers module and prints where it listens. */
export async function worker(options: { handlers: string; config?: string; clusterDir?: string; id?: string; director?: string[]; json?: boolean }): Promise<void> {
  const path = resolve(options.handlers);
  let module: HandlersModule;
  try {
    module = (await import(pathToFileURL(path).href)) as HandlersModule;
  } catch (e) {
    throw new RpcError('INVALID_ARGUMENT', `cannot load the handlers module ${path}: ${(e as Error).message}`, { cause: e });
  }
  const install = installer(path, module);
  const fromConfig = config(options.config).worker;
  const id = options.id ?? fromConfig.id;
  const directors = options.director ?? fromConfig.director;
  if (directors === undefined) {
    throw new RpcError('INVALID_ARGUMENT', 'the worker needs its directors: --director, rpcnet.worker.directors in the config, or RPCNET_WORKER_DIRECTORS');
  }
  const clusterDir = options.clusterDir ?? fromConfig.clusterDir;
  const w = await RpcWorker.start({ ...fromConfig, id, director: directors, ...(clusterDir === undefined ? {} : { clusterDir }) } as WorkerOptions);
  try {
    await install(w);
  } catch (e) {
    await w.close();
    throw e;
  }
  print(!!options.json, 'worker', { id: w.id, address: w.address, mgmtAddress: w.mgmtAddress, adminAddress: w.adminAddress });
}
