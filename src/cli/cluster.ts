/**
 * `rpcnet cluster init DIR` and `rpcnet cluster issue NAME --role ROLE`: make a cluster's CA once,
 * then each host's own credentials ({@link initCluster}, {@link issueCredentials}), so that the
 * CA's private key stays with whoever runs these commands.
 * @module
 */
import { resolve } from 'node:path';
import { initCluster, issueCredentials, type Role } from '../credentials.js';
import { RpcError } from '../errors.js';
import { defaultClusterDir } from '../worker.js';
import { printJson } from './output.js';

/**
 * `rpcnet cluster init DIR`.
 * @throws {RpcError} those of {@link initCluster}.
 */
export async function init(dir: string, flags: { json?: boolean }): Promise<void> {
  const path = resolve(dir);
  await initCluster(path);
  if (flags.json) return printJson({ dir: path, files: ['ca.pem', 'ca.key', 'secret.bin'].map((f) => `${path}/${f}`) });
  console.log(`rpcnet: created the cluster CA in ${path} (ca.pem, ca.key, secret.bin).`);
  console.log('Keep ca.key there, off the cluster\'s hosts. Give each host its own credentials:');
  console.log(`  rpcnet cluster issue NAME --role worker|director|admin --ca ${path} --out DIR`);
  console.log(`Clients trust ${path}/ca.pem.`);
}

/**
 * `rpcnet cluster issue NAME --role ROLE [--ca DIR] [--out DIR] [--host NAME...]`.
 * @throws {RpcError} those of {@link issueCredentials}; `INVALID_ARGUMENT` for a pattern
 * without `--out`.
 */
export async function issue(name: string, flags: { role: Role; ca?: string; out?: string; host?: string[]; json?: boolean }): Promise<void> {
  const caDir = resolve(flags.ca ?? defaultClusterDir());
  if (flags.out === undefined && name.endsWith('*')) {
    throw new RpcError('INVALID_ARGUMENT', `${name} is a pattern: say where to write its credentials with --out DIR`);
  }
  const out = resolve(flags.out ?? name);
  const issued = await issueCredentials(name, flags.role, { caDir, out, hosts: flags.host });
  if (flags.json) return printJson(issued);
  console.log(`rpcnet: issued ${issued.role === "admin" ? "an" : "a"} ${issued.role} certificate for ${issued.name} into ${issued.dir}`);
  console.log(`  valid for: ${issued.names.join(', ')}`);
  console.log(`  fingerprint: ${issued.fingerprint}`);
  console.log(
    issued.role === 'admin'
      ? `Give it to the admin commands: rpcnet sessions --cluster-dir ${issued.dir} --director HOST:PORT`
      : `Copy ${issued.dir} to the host and use it as its cluster directory (--cluster-dir, cluster_dir, RPCNET_CLUSTER_DIR or clusterDir).`,
  );
}
