/**
 * Cluster credentials (PROTOCOL.md section 14.2, README "Credentials"): creating a cluster's CA
 * once and issuing each host its own certificate and key, so that only whoever ran
 * {@link initCluster} holds the CA's private key. What `rpcnet cluster init` and
 * `rpcnet cluster issue` run.
 * @module
 */
import { native } from './binding.js';
import { fromBinding } from './errors.js';
import { invalid, string, stringList } from './options.js';

/** What a certificate allows its holder to do: serve sessions, direct, or administer. */
export type Role = 'worker' | 'director' | 'admin';

/** Every {@link Role}. */
export const ROLES: readonly Role[] = ['worker', 'director', 'admin'];

/** What {@link issueCredentials} wrote. */
export interface IssuedCredentials {
  /** The host's cluster directory (give it as `clusterDir` / `cluster_dir`). */
  dir: string;
  /** The certificate's name: a worker's id, a director's name. */
  name: string;
  /** Its role. */
  role: Role;
  /** Every DNS name and IP address the certificate is valid for. */
  names: string[];
  /** SHA-256 of the certificate (DER), 64 lowercase hex digits. */
  fingerprint: string;
  /** The files written. */
  files: string[];
}

/**
 * Creates a new cluster in `dir` (created, mode 0700): `ca.pem` (the CA certificate, public),
 * `ca.key` (its private key, mode 0600) and `secret.bin` (the 32-byte cluster secret, mode
 * 0600). Keep `dir` where certificates are issued, not on the cluster's hosts.
 * @throws {RpcError} `INVALID_ARGUMENT` when `dir` already holds a cluster or cannot be written.
 */
export async function initCluster(dir: string): Promise<void> {
  const path = string('dir', dir);
  try {
    await native.clusterInit(path);
  } catch (e) {
    throw fromBinding(e);
  }
}

/** Options of {@link issueCredentials}. */
export interface IssueOptions {
  /** The CA directory made by {@link initCluster}. */
  caDir: string;
  /** Where to write the host's directory (created, mode 0700). */
  out: string;
  /**
   * More names the certificate is valid for, each a DNS name or an IP address: for a director,
   * the names clients connect to (`localhost`, `127.0.0.1` and `::1` are always included).
   */
  hosts?: string[];
}

/**
 * Issues a host's credentials with the CA in `options.caDir`: writes `ca.pem`, `cert.pem`
 * (ECDSA P-256, valid 1 year, for `name` and `role`), `key.pem` (mode 0600) and, for a worker or
 * a director, `secret.bin` into `options.out`. A worker's id is `name`: it can register only
 * under it. A worker's `name` may be a pattern `PREFIX*`, for interchangeable workers that share
 * the certificate (a Deployment's pods): each then registers under an id of its own that starts
 * with `PREFIX` (PROTOCOL.md section 14.2).
 * @param name - 1..253 characters of `A-Za-z0-9._-` (a worker's may end in `*`)
 * @throws {RpcError} `INVALID_ARGUMENT` for a bad name, role or host, a missing or incomplete CA
 * directory (naming the file), an `out` that already holds a `cert.pem` / `key.pem`, or `hosts`
 * for a role other than director (only a director's certificate names hosts).
 */
export async function issueCredentials(name: string, role: Role, options: IssueOptions): Promise<IssuedCredentials> {
  const n = string('name', name);
  if (typeof options !== 'object' || options === null) throw invalid('options', 'an object with caDir and out', options);
  if (!ROLES.includes(role)) throw invalid('role', 'worker, director or admin', role);
  const hosts = options.hosts === undefined || options.hosts.length === 0 ? [] : stringList('hosts', options.hosts, 'DNS names or IP addresses');
  try {
    const issued = await native.clusterIssue(string('caDir', options.caDir), n, role, hosts, string('out', options.out));
    return { ...issued, role: issued.role as Role };
  } catch (e) {
    throw fromBinding(e);
  }
}
