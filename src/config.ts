/**
 * The TOML config file (RFC-001 Appendix B's shape, parsed with smol-toml) and its environment
 * overrides, turned into the options of {@link Director.start} and {@link RpcWorker.start}. It
 * exists so that a cluster can be started from a file (and tuned per host from the environment)
 * with the same options, checked the same way, as from code: every key below is one option.
 *
 * ```toml
 * [rpcnet]
 * host = "0.0.0.0"               # host
 * cluster_dir = "/etc/rpcnet"    # clusterDir
 *
 * [rpcnet.dual_port]
 * userspace_port = 8080          # port
 * management_port = 8081         # mgmtPort
 *
 * [rpcnet.migration]
 * timeout_ms = 5000              # totalTimeoutMs (director)
 * phase_timeout_ms = 2000        # phaseTimeoutMs (director)
 * max_concurrent = 100           # maxConcurrentMigrations (director)
 * failover_after_ms = 500        # failoverAfterMs (director)
 * compression = "zstd"           # what rpcnet does; no other value
 * encryption = "aes256gcm"       # what rpcnet does; no other value
 *
 * [rpcnet.migration.security]
 * require_auth = true            # what rpcnet does; no other value
 * hmac_algorithm = "sha256"      # what rpcnet does; no other value
 *
 * [rpcnet.admin]
 * port = 9464                    # admin.port
 * host = "0.0.0.0"               # admin.host
 *
 * [rpcnet.worker]
 * id = "worker-a"                # id (worker)
 * directors = ["10.0.0.1:8081"]  # director (worker)
 * heartbeat_ms = 250             # heartbeatMs (worker)
 * ```
 *
 * **Environment.** Every key can be set by a variable named after its path below `rpcnet`, in
 * capitals with `_` for `.`: `RPCNET_DUAL_PORT_USERSPACE_PORT`, `RPCNET_MIGRATION_MAX_CONCURRENT`,
 * `RPCNET_WORKER_DIRECTORS` (comma-separated), `RPCNET_HOST`, ... A variable overrides the file.
 * @module
 */
import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import type { DirectorOptions } from './director.js';
import { RpcError } from './errors.js';
import { describe, U32_MAX } from './options.js';
import type { WorkerOptions } from './worker.js';

/** The options a config file gives, ready for {@link Director.start} and {@link RpcWorker.start}. */
export interface RpcnetConfig {
  /** Options of {@link Director.start}. */
  director: DirectorOptions;
  /** Options of {@link RpcWorker.start} (`id` and `director` when the file gives them). */
  worker: Partial<WorkerOptions>;
}

type Kind = 'string' | 'bool' | 'port' | 'ms' | 'count' | 'strings';

/** One key: its kind, where it goes, and (for settings rpcnet does not vary) its only value. */
interface Key {
  kind: Kind;
  director?: string;
  worker?: string;
  only?: string | boolean;
  why?: string;
}

const KEYS: Record<string, Key> = {
  'rpcnet.host': { kind: 'string', director: 'host', worker: 'host' },
  'rpcnet.cluster_dir': { kind: 'string', director: 'clusterDir', worker: 'clusterDir' },
  'rpcnet.dual_port.userspace_port': { kind: 'port', director: 'port', worker: 'port' },
  'rpcnet.dual_port.management_port': { kind: 'port', director: 'mgmtPort', worker: 'mgmtPort' },
  'rpcnet.migration.timeout_ms': { kind: 'ms', director: 'totalTimeoutMs' },
  'rpcnet.migration.phase_timeout_ms': { kind: 'ms', director: 'phaseTimeoutMs' },
  'rpcnet.migration.max_concurrent': { kind: 'count', director: 'maxConcurrentMigrations' },
  'rpcnet.migration.failover_after_ms': { kind: 'ms', director: 'failoverAfterMs' },
  'rpcnet.migration.compression': { kind: 'string', only: 'zstd', why: 'snapshots are always zstd-compressed' },
  'rpcnet.migration.encryption': { kind: 'string', only: 'aes256gcm', why: 'snapshots are always sealed with AES-256-GCM' },
  'rpcnet.migration.security.require_auth': { kind: 'bool', only: true, why: 'migration tokens are always checked' },
  'rpcnet.migration.security.hmac_algorithm': { kind: 'string', only: 'sha256', why: 'tokens are always HMAC-SHA256' },
  'rpcnet.admin.port': { kind: 'port', director: 'admin.port', worker: 'admin.port' },
  'rpcnet.admin.host': { kind: 'string', director: 'admin.host', worker: 'admin.host' },
  'rpcnet.worker.id': { kind: 'string', worker: 'id' },
  'rpcnet.worker.directors': { kind: 'strings', worker: 'director' },
  'rpcnet.worker.heartbeat_ms': { kind: 'ms', worker: 'heartbeatMs' },
};

/** RFC-001 Appendix B keys that rpcnet does not have, and what it does instead. */
const NOT_SUPPORTED: Record<string, string> = {
  'rpcnet.migration.buffer_size_mb': 'snapshots are bounded at 64 MiB decompressed instead',
  'rpcnet.migration.security.token_rotation_interval': 'migration tokens are single-use and expire with their migration instead',
  'rpcnet.migration.performance.thread_pool_size': 'set TOKIO_WORKER_THREADS instead',
  'rpcnet.migration.performance.batch_size': 'items are batched by the stream windows instead',
  'rpcnet.migration.performance.state_cache_ttl': 'detached sessions are kept for the 30 s resume window instead',
};

function configError(message: string): RpcError {
  return new RpcError('INVALID_ARGUMENT', message);
}

/** The file's keys as dotted paths (tables are walked; arrays are values). */
function flatten(table: Record<string, unknown>, prefix: string, out: Map<string, unknown>): void {
  for (const [k, v] of Object.entries(table)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) flatten(v as Record<string, unknown>, path, out);
    else out.set(path, v);
  }
}

/** The environment variable of a key: `rpcnet.dual_port.userspace_port` -> `RPCNET_DUAL_PORT_USERSPACE_PORT`. */
export function envName(key: string): string {
  return key.replace(/\./g, '_').toUpperCase();
}

/** An environment variable's text as the kind of value `key` takes. */
function fromEnv(key: string, kind: Kind, text: string): unknown {
  if (kind === 'strings') return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (kind === 'string') return text;
  if (kind === 'bool') {
    if (text === 'true' || text === 'false') return text === 'true';
    throw configError(`${envName(key)} (${key}) must be true or false, got ${JSON.stringify(text)}`);
  }
  if (/^\d+$/.test(text)) return Number(text);
  throw configError(`${envName(key)} (${key}) must be a whole number, got ${JSON.stringify(text)}`);
}

/** Checks one value against its key; returns it. `source` names where it came from. */
function check(key: string, spec: Key, value: unknown, source: string): unknown {
  const got = `${describe(value)} (${source})`;
  if (spec.only !== undefined) {
    if (value !== spec.only) throw configError(`${key} must be ${JSON.stringify(spec.only)}: ${spec.why}; got ${got}`);
    return value;
  }
  switch (spec.kind) {
    case 'string':
      if (typeof value !== 'string' || value.length === 0) throw configError(`${key} must be a non-empty string, got ${got}`);
      return value;
    case 'strings':
      if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string' || v.length === 0)) {
        throw configError(`${key} must be a non-empty array of "host:port" strings, got ${got}`);
      }
      return value;
    case 'port':
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) throw configError(`${key} must be a port, an integer in 0..65535, got ${got}`);
      return value;
    case 'ms':
    case 'count':
      if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > U32_MAX) {
        throw configError(`${key} must be a positive integer${spec.kind === 'ms' ? ' (ms)' : ''}, got ${got}`);
      }
      return value;
  }
}

/** Sets `path` (e.g. `admin.port`) in `target`. */
function put(target: Record<string, unknown>, path: string, value: unknown): void {
  const [head, tail] = path.split('.', 2) as [string, string | undefined];
  if (tail === undefined) {
    target[head] = value;
    return;
  }
  const inner = (target[head] ??= {}) as Record<string, unknown>;
  inner[tail] = value;
}

/**
 * The options that the TOML text `text` and the environment `env` give (see the module docs).
 * @param source - where `text` came from, for messages (a file name)
 * @throws {RpcError} `INVALID_ARGUMENT` naming the key, the value and what was expected: a TOML
 * syntax error (with its line), an unknown key, a wrong type or range, a setting rpcnet does
 * not vary with another value, an RFC-001 key rpcnet does not have (and what it does instead).
 */
export function parseConfig(text: string, env: Record<string, string | undefined> = process.env, source = 'the config'): RpcnetConfig {
  let table: Record<string, unknown>;
  try {
    table = parse(text) as Record<string, unknown>;
  } catch (e) {
    const where = e instanceof TomlError ? ` at line ${e.line}, column ${e.column}` : '';
    throw new RpcError('INVALID_ARGUMENT', `${source} is not valid TOML${where}: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  const values = new Map<string, unknown>();
  flatten(table, '', values);
  const director: Record<string, unknown> = {};
  const worker: Record<string, unknown> = {};
  for (const [key, value] of values) {
    if (NOT_SUPPORTED[key]) throw configError(`${key} (${source}) is an RFC-001 setting rpcnet does not have: ${NOT_SUPPORTED[key]}`);
    if (!KEYS[key]) throw configError(`${key} (${source}) is not an rpcnet setting; known: ${Object.keys(KEYS).join(', ')}`);
  }
  for (const [key, spec] of Object.entries(KEYS)) {
    // An empty variable counts as unset (as RPCNET_CLUSTER_DIR does in the runtime).
    const fromVariable = env[envName(key)] || undefined;
    const [value, from] = fromVariable !== undefined ? [fromEnv(key, spec.kind, fromVariable), `environment ${envName(key)}`] : [values.get(key), source];
    if (value === undefined) continue;
    const checked = check(key, spec, value, from);
    if (spec.director) put(director, spec.director, checked);
    if (spec.worker) put(worker, spec.worker, checked);
  }
  return { director: director as DirectorOptions, worker: worker as Partial<WorkerOptions> };
}

/**
 * {@link parseConfig} of the file at `path`.
 * @throws {RpcError} `INVALID_ARGUMENT` when the file cannot be read (naming it), or as
 * {@link parseConfig}.
 */
export function loadConfig(path: string, env: Record<string, string | undefined> = process.env): RpcnetConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new RpcError('INVALID_ARGUMENT', `cannot read the config file ${path}: ${(e as Error).message}`, { cause: e });
  }
  return parseConfig(text, env, path);
}
