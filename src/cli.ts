#!/usr/bin/env node
/**
 * The `rpcnet` command (package.json `bin`), built with commander. It exists as its own module
 * so that the library never parses `process.argv`; each group of commands lives in src/cli/:
 *
 * ```sh
 * rpcnet director --config rpcnet.toml                      # src/cli/serve.ts
 * rpcnet worker --handlers ./handlers.js --config rpcnet.toml
 * rpcnet sessions --director 10.0.0.1:7001                   # src/cli/admin.ts
 * rpcnet workers | migrate SESSION [--to WORKER] | drain WORKER
 * rpcnet cluster init DIR                                    # src/cli/cluster.ts
 * rpcnet cluster issue NAME --role worker|director|admin
 * ```
 *
 * Every command has `--help`. Bad input exits with status 2 and a message that names it; a
 * failure (a director unreachable, a migration rolled back, a refused certificate) exits with 1.
 * @module
 */
import { Command, CommanderError, Option } from 'commander';
import { ROLES } from './credentials.js';
import { RpcError } from './errors.js';
import * as admin from './cli/admin.js';
import * as cluster from './cli/cluster.js';
import * as serve from './cli/serve.js';

const CONFIG_HELP = 'TOML config file (RFC-001 Appendix B shape; environment variables override it)';
const CLUSTER_DIR_HELP = "this host's credentials (rpcnet cluster issue; else rpcnet.cluster_dir / RPCNET_CLUSTER_DIR, else .rpcnet/cluster)";

/** Adds the options every admin command takes. */
function adminCommand(program: Command, name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('-d, --director <host:port>', `the director's management address (else ${admin.DIRECTOR_ENV})`)
    .option('--cluster-dir <dir>', 'admin credentials (rpcnet cluster issue NAME --role admin); default $RPCNET_CLUSTER_DIR or .rpcnet/cluster')
    .option('--timeout-ms <ms>', 'how long the request may take (default 60000)')
    .option('--json', 'print one JSON document instead of a table');
}

/** The command line's program. */
function program(): Command {
  const p = new Command('rpcnet').description('rpcnet: QUIC RPC with live session migration').exitOverride();
  p.command('director')
    .description('start a director (clients connect to it; it relays calls to its workers)')
    .option('-c, --config <file>', CONFIG_HELP)
    .option('--cluster-dir <dir>', CLUSTER_DIR_HELP)
    .option('--json', 'print where it listens as one JSON object')
    .action(serve.director);
  p.command('worker')
    .description('start a worker serving the handlers of a module')
    .requiredOption('--handlers <module>', 'ES module exporting the handlers and hooks')
    .option('-c, --config <file>', CONFIG_HELP)
    .option('--cluster-dir <dir>', CLUSTER_DIR_HELP)
    .option('--id <id>', "the worker id (else rpcnet.worker.id / RPCNET_WORKER_ID, else the name in the worker's certificate)")
    .option('--director <host:port...>', "directors' management addresses (else rpcnet.worker.directors / RPCNET_WORKER_DIRECTORS)")
    .option('--json', 'print where it listens as one JSON object')
    .action(serve.worker);
  adminCommand(p, 'sessions', "list a director's open sessions").action(admin.sessions);
  adminCommand(p, 'workers', "list a director's live workers").action(admin.workers);
  adminCommand(p, 'migrate', 'move a session to another worker (all RFC-001 phases)')
    .argument('<session>', 'session id, 16 hex digits (rpcnet sessions)')
    .option('--to <worker>', 'target worker (default: the one with the fewest sessions)')
    .action(admin.migrate);
  adminCommand(p, 'drain', 'move every session off a worker and place no new ones there')
    .argument('<worker>', 'worker id')
    .action(admin.drain);
  const c = p.command('cluster').description("manage the cluster's credentials");
  c.command('init')
    .description('create a cluster CA (ca.pem, ca.key) and secret (secret.bin) in DIR')
    .argument('<dir>', 'a new or empty directory')
    .option('--json', 'print what was written as one JSON object')
    .action(cluster.init);
  c.command('issue')
    .description("issue a host's own certificate and key with the cluster CA")
    .argument('<name>', "the host's name: a worker's id, a director's name")
    .addOption(new Option('--role <role>', 'what the certificate allows').choices(ROLES).makeOptionMandatory())
    .option('--ca <dir>', 'the CA directory (rpcnet cluster init); default $RPCNET_CLUSTER_DIR or .rpcnet/cluster')
    .option('--out <dir>', 'where to write the credentials (default ./NAME)')
    .option('--host <name...>', 'more DNS names or IP addresses the certificate is valid for (a director: what clients connect to)')
    .option('--json', 'print what was written as one JSON object')
    .action(cluster.issue);
  return p;
}

async function main(): Promise<void> {
  try {
    await program().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
    const error = e instanceof RpcError ? e : new RpcError('INTERNAL', String((e as Error)?.message ?? e));
    console.error(`rpcnet: ${error.code}: ${error.message}`);
    process.exit(error.code === 'INVALID_ARGUMENT' ? 2 : 1);
  }
}

await main();
