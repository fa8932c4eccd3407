#!/usr/bin/env node
/**
 * The `rpcnet` command (package.json `bin`), built with commander: starts a director or a worker
 * from the command line and a config file (src/config.ts), so that a cluster runs without writing
 * a launcher. It exists as its own module so that the library never parses `process.argv`.
 *
 * ```sh
 * rpcnet director --config rpcnet.toml
 * rpcnet worker --handlers ./handlers.js --config rpcnet.toml --id worker-a --director 10.0.0.1:8081
 * ```
 *
 * A handlers module exports what the worker serves, in either shape:
 * - `export default function (worker) { worker.unary(...); worker.setHooks(...); }` (or a named
 *   `setup`), which may be async;
 * - `export const unary = { name: handler }`, `export const serverStreaming = { name: handler }`,
 *   `export const clientStreaming = { name: handler }`, `export const bidiStreaming = { name: handler }`,
 *   `export const hooks = { onMigrationRequest, captureState, restoreState }`.
 *
 * Both processes print where they listen (`--json`: one JSON object) and stop gracefully on
 * SIGTERM (a director moves its clients to the other directors, a worker drains). Bad input
 * exits with status 2 and a message that names it; a failure to start exits with 1.
 * @module
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { loadConfig, parseConfig, type RpcnetConfig } from './config.js';
import { Director } from './director.js';
import { RpcError } from './errors.js';
import type { BidiStreamingHandler, ClientStreamingHandler, ServerStreamingHandler, UnaryHandler } from './server.js';
import { RpcWorker, type WorkerHooks, type WorkerOptions } from './worker.js';

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

function config(path: string | undefined): RpcnetConfig {
  return path === undefined ? parseConfig('', process.env, 'the environment') : loadConfig(path);
}

function print(json: boolean, role: string, fields: Record<string, string | undefined>): void {
  if (json) console.log(JSON.stringify({ role, ...fields }));
  else console.log(`rpcnet ${role}: ${Object.entries(fields).map(([k, v]) => `${k} ${v ?? '-'}`).join(', ')}`);
}

async function director(options: { config?: string; json?: boolean }): Promise<void> {
  const d = await Director.start(config(options.config).director);
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

async function worker(options: { handlers: string; config?: string; id?: string; director?: string[]; json?: boolean }): Promise<void> {
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
  if (id === undefined) throw new RpcError('INVALID_ARGUMENT', 'the worker needs an id: --id, rpcnet.worker.id in the config, or RPCNET_WORKER_ID');
  if (directors === undefined) {
    throw new RpcError('INVALID_ARGUMENT', 'the worker needs its directors: --director, rpcnet.worker.directors in the config, or RPCNET_WORKER_DIRECTORS');
  }
  const w = await RpcWorker.start({ ...fromConfig, id, director: directors } as WorkerOptions);
  try {
    await install(w);
  } catch (e) {
    await w.close();
    throw e;
  }
  print(!!options.json, 'worker', { id: w.id, address: w.address, mgmtAddress: w.mgmtAddress, adminAddress: w.adminAddress });
}

/** The command line's program. */
function program(): Command {
  const p = new Command('rpcnet').description('rpcnet: QUIC RPC with live session migration').exitOverride();
  p.command('director')
    .description('start a director (clients connect to it; it relays calls to its workers)')
    .option('-c, --config <file>', 'TOML config file (RFC-001 Appendix B shape; environment variables override it)')
    .option('--json', 'print where it listens as one JSON object')
    .action(director);
  p.command('worker')
    .description('start a worker serving the handlers of a module')
    .requiredOption('--handlers <module>', 'ES module exporting the handlers and hooks')
    .option('-c, --config <file>', 'TOML config file (RFC-001 Appendix B shape; environment variables override it)')
    .option('--id <id>', 'the worker id (else rpcnet.worker.id / RPCNET_WORKER_ID)')
    .option('--director <host:port...>', "directors' management addresses (else rpcnet.worker.directors / RPCNET_WORKER_DIRECTORS)")
    .option('--json', 'print where it listens as one JSON object')
    .action(worker);
  return p;
}

async function main(): Promise<void> {
  try {
    await program().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2);
    const error = e instanceof RpcError ? e : new RpcError('INTERNAL', String((e as Error)?.message ?? e));
    console.error(`rpcnet: ${error.code}: ${error.message}`);
    process.exit(error.code === 'INVALID_ARGUMENT' ? 2 : 1);
  }
}

await main();
