/**
 * The HTTP admin endpoint of a process (disabled unless configured with the `admin` option of
 * {@link Director.start}, {@link RpcWorker.start} or {@link RpcServer.listen}): Prometheus
 * metrics and the health probes Kubernetes expects, with `node:http` (no framework: four fixed
 * routes). It exists apart from the QUIC ports so that a probe or a scraper needs no TLS client
 * certificate and no rpcnet client.
 *
 * - `GET /metrics`: the process's metrics (src/metrics.ts) in Prometheus text format.
 * - `GET /health/live`: 200 while the process serves this endpoint.
 * - `GET /health/ready`: 200 when ready, else 503 with the reason: a worker is ready when a
 *   director accepted it and it is not draining; a director when it has a live worker; a plain
 *   server while it listens.
 * - `GET /migrations` (directors): the migrations in progress, as JSON.
 *
 * The metrics registry is the process's: every endpoint of one process serves the same series,
 * so configure one endpoint per process (a process that runs a director and a worker gives the
 * option to one of them).
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RpcError } from './errors.js';
import { registry } from './metrics.js';
import { optionalPort, optionalString, record } from './options.js';

/** Where the admin endpoint listens. */
export interface AdminOptions {
  /** Host to bind (an IP address or a DNS name). Default `127.0.0.1`. */
  host?: string;
  /** TCP port, 0..65535; 0 picks a free one (see `adminAddress`). Required. */
  port: number;
}

/** What the endpoint reports about its owner. @internal */
export interface AdminSource {
  /** `undefined` when ready, else why not (the 503 body). */
  notReady(): string | undefined;
  /** The migrations in progress; `undefined` when this process kind has none to report. */
  migrations?(): unknown[];
}

/**
 * Checks the `admin` option; `undefined` when it is absent.
 * @throws {RpcError} `INVALID_ARGUMENT` naming the bad key.
 * @internal
 */
export function checkAdmin(value: AdminOptions | undefined): { host: string; port: number } | undefined {
  if (value === undefined) return undefined;
  const o = record('admin', value, ['host', 'port']);
  const port = optionalPort('admin.port', o.port);
  if (port === undefined) throw new RpcError('INVALID_ARGUMENT', 'admin.port must be given (a TCP port, 0..65535; 0 picks a free one)');
  return { host: optionalString('admin.host', o.host) ?? '127.0.0.1', port };
}

/**
 * An admin endpoint, listening.
 * @internal
 */
export class AdminEndpoint {
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  /**
   * Listens on `options` and answers for `source`.
   * @throws {RpcError} `UNAVAILABLE` when the port cannot be bound.
   */
  static async start(options: { host: string; port: number }, source: AdminSource): Promise<AdminEndpoint> {
    const server = createServer((req, res) => {
      answer(req, res, source).catch((e: unknown) => send(res, 500, 'text/plain', `admin endpoint failed: ${(e as Error)?.message ?? String(e)}\n`));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new RpcError('UNAVAILABLE', `admin endpoint cannot listen on ${options.host}:${options.port}: ${e.message}`, { cause: e })));
      server.listen(options.port, options.host, () => resolve());
    });
    return new AdminEndpoint(server);
  }

  /** The bound address, `host:port`. */
  get address(): string {
    const a = this.#server.address() as AddressInfo;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  /** Stops listening and closes open connections. */
  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

async function answer(req: IncomingMessage, res: ServerResponse, source: AdminSource): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'only GET\n');
  switch (path) {
    case '/metrics':
      return send(res, 200, registry.contentType, await registry.metrics());
    case '/health/live':
      return send(res, 200, 'text/plain', 'ok\n');
    case '/health/ready': {
      const why = source.notReady();
      return why === undefined ? send(res, 200, 'text/plain', 'ready\n') : send(res, 503, 'text/plain', `not ready: ${why}\n`);
    }
    case '/migrations': {
      const list = source.migrations?.();
      if (list === undefined) return send(res, 404, 'text/plain', 'this process runs no director: no migrations to list\n');
      return send(res, 200, 'application/json', `${JSON.stringify(list)}\n`);
    }
    default:
      return send(res, 404, 'text/plain', 'unknown path; try /metrics, /health/live, /health/ready or /migrations\n');
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type });
  res.end(body);
}
