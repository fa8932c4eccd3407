/**
 * Shared test helpers: a server on loopback and a client pinned to its certificate, and what the
 * multi-process tests ask a director process (dist/demo/harness).
 */
import { RpcClient, RpcServer, type ServerOptions } from '../dist/index.js';
import type { DirectorProc } from '../dist/demo/harness.js';

export async function pair(options: ServerOptions = {}) {
  const server = await RpcServer.listen({ port: 0, ...options });
  const client = await RpcClient.connect(server.address, { tls: { pin: server.certFingerprint } });
  const close = async () => {
    await client.close();
    await server.close();
  };
  return { server, client, close };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Resolves when `signal` aborts, with its reason. */
export function whenAborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}

/** The id of the first session a director process reports, waiting up to 2 s for one. */
export async function sessionOf(director: DirectorProc): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const sessions = await director.proc.command<{ sessionId: string }[]>({ cmd: 'sessions' });
    if (sessions.length > 0) return sessions[0]!.sessionId;
    await sleep(20);
  }
  throw new Error('no session appeared');
}
