/**
 * deploy/kubernetes/: the example manifests, validated offline against the Kubernetes schemas
 * (strict: an unknown field fails, as a typo would on a real cluster) with kubernetes-validate
 * from PyPI, which bundles the schemas. It runs in a Python venv made on first use and cached
 * under node_modules/.cache (gitignored; needs `python3` with its venv module and PyPI once). A
 * deliberately broken copy must fail, so the check can fail. The ConfigMap's rpcnet.toml is
 * parsed with rpcnet's own parseConfig, and the manifests must agree with it and with the CLI:
 * ports, mount paths, probes, the directors' Services, the commands' options. And the
 * credentials: the commands in the comments issue a certificate per director replica and one
 * for the workers' pod names, no object names ca.key, and each init container, run here on a
 * stand-in Secret, installs its pod's ca.pem, cert.pem, key.pem and secret.bin with mode 0600.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import test from 'ava';
import { parseConfig } from '../dist/index.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy', 'kubernetes');
const CLI = join(ROOT, 'dist', 'cli.js');
/** The validator, pinned: its release fixes the schemas it bundles. */
const VALIDATOR = 'kubernetes-validate==1.37.0';
/** The oldest Kubernetes the manifests are for (kubernetes-validate 1.37.0 bundles 1.25 to 1.37). */
const KUBERNETES = '1.30.0';
const VENV = join(ROOT, 'node_modules', '.cache', `rpcnet-${VALIDATOR.replace('==', '-')}`);
const BIN = join(VENV, process.platform === 'win32' ? 'Scripts' : 'bin');
/** What `rpcnet worker` gives a drain on SIGTERM (src/worker.ts, `drain()`'s default), s. */
const WORKER_DRAIN_S = 30;
/** What `rpcnet director` gives its resumable clients to move on SIGTERM (src/director.ts), s. */
const DIRECTOR_SHUTDOWN_S = 10;

const dir = mkdtempSync(join(tmpdir(), 'rpcnet-kubernetes-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const manifests = readdirSync(DEPLOY)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort()
  .map((f) => join(DEPLOY, f));

/** Runs a command; never throws: the exit code and both outputs. */
async function exec(file: string, args: string[], timeout = 60_000, env?: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(file, args, { timeout, maxBuffer: 16 << 20, env });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { code: typeof err.code === 'number' ? err.code : -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}` };
  }
}

let venv: Promise<void> | undefined;
/** The venv with the validator: reused when it works, else made again (about 10 s, from PyPI). */
function validatorVenv(): Promise<void> {
  return (venv ??= (async () => {
    const python = join(BIN, 'python');
    if (existsSync(join(VENV, '.complete')) && (await exec(python, ['-c', 'import kubernetes_validate, yaml'])).code === 0) return;
    rmSync(VENV, { recursive: true, force: true });
    const made = await exec(process.env.PYTHON ?? 'python3', ['-m', 'venv', VENV]);
    if (made.code !== 0) {
      throw new Error(`cannot make a Python venv at ${VENV}: this test needs python3 with its venv module (Debian/Ubuntu: apt-get install python3-venv)\n${made.out}`);
    }
    const pip = await exec(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--quiet', VALIDATOR], 240_000);
    if (pip.code !== 0) throw new Error(`pip install ${VALIDATOR} failed (it needs PyPI once; the venv is cached after)\n${pip.out}`);
    writeFileSync(join(VENV, '.complete'), `${VALIDATOR}\n`);
  })());
}

/** `kubernetes-validate --strict` of `files` against {@link KUBERNETES}. */
async function validate(files: string[]): Promise<{ code: number; out: string }> {
  await validatorVenv();
  return exec(join(BIN, 'kubernetes-validate'), ['--strict', '--kubernetes-version', KUBERNETES, ...files]);
}

/** A loose view of the objects, enough for the checks below. */
type K8s = any;

/** Every document of every manifest, as JSON, read with the venv's PyYAML (what the validator reads). */
async function objects(): Promise<K8s[]> {
  await validatorVenv();
  const script = 'import json, sys, yaml\nprint(json.dumps([d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d is not None]))';
  const { code, out } = await exec(join(BIN, 'python'), ['-c', script, ...manifests]);
  if (code !== 0) throw new Error(out);
  return JSON.parse(out) as K8s[];
}

/**
 * The shell commands in the manifests' comments, one string each: the lines that start with
 * `prefix` once `#` is stripped and `\` continuations are joined.
 */
function commentCommands(prefix: string): string[] {
  const commands: string[] = [];
  let open = '';
  for (const f of manifests) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const text = /^\s*#(.*)$/.exec(line)?.[1]?.trim();
      if (text === undefined) {
        open = '';
        continue;
      }
      const whole = open + text;
      if (whole.endsWith('\\')) open = `${whole.slice(0, -1)} `;
      else {
        open = '';
        if (whole.startsWith(prefix)) commands.push(whole);
      }
    }
  }
  return commands;
}

/**
 * A shell command's words, single quotes and a trailing comment removed: the one after the
 * first `skip` (`first`), then each `--option` with its values (`--option=value` or words up to
 * the next option).
 */
function words(command: string, skip: number): { first: string; options: Map<string, string[]> } {
  const all = command.replace(/\s+#.*$/, '').split(/\s+/).map((w) => w.replace(/^'(.*)'$/, '$1'));
  const options = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const w of all.slice(skip + 1)) {
    if (w.startsWith('--')) {
      const [name, value] = w.split(/=(.*)/s) as [string, string | undefined];
      options.set(name, [...(options.get(name) ?? []), ...(value === undefined ? [] : [value])]);
      current = value === undefined ? options.get(name) : undefined;
    } else if (current) current.push(w);
    else throw new Error(`${command}: ${w} follows no option`);
  }
  return { first: all[skip]!, options };
}

function find(all: K8s[], kind: string, name: string): K8s {
  const o = all.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  return o;
}

test('the manifests are valid Kubernetes objects (strict schemas, offline)', async (t) => {
  t.timeout(300_000);
  t.true(manifests.length >= 3, `manifests: ${manifests.join(', ')}`);
  const started = performance.now();
  const { code, out } = await validate(manifests);
  t.log(`kubernetes-validate ${KUBERNETES} of ${manifests.length} files: ${(performance.now() - started).toFixed(0)} ms (the venv included)`);
  t.is(code, 0, out);
  const passed = out.split('\n').filter((l) => / passed for resource /.test(l));
  t.is(passed.length, (await objects()).length, out);
  t.notRegex(out, /WARN|ERROR/, out);
});

test('a manifest with a typo or a wrong type fails the validation', async (t) => {
  t.timeout(300_000);
  const worker = readFileSync(join(DEPLOY, 'worker.yaml'), 'utf8');
  const typo = worker.replace('terminationGracePeriodSeconds:', 'terminationGracePeriodSecond:');
  const type = worker.replace(/replicas: \d+/, 'replicas: three');
  t.not(typo, worker);
  t.not(type, worker);
  writeFileSync(join(dir, 'typo.yaml'), typo);
  writeFileSync(join(dir, 'type.yaml'), type);
  for (const [file, expected] of [
    ['typo.yaml', /'terminationGracePeriodSecond' was unexpected/],
    ['type.yaml', /'three' is not of type 'integer'/],
  ] as const) {
    const { code, out } = await validate([join(dir, file)]);
    t.not(code, 0, `${file}: ${out}`);
    t.regex(out, expected, `${file}: ${out}`);
    t.regex(out, /ERROR .* did not validate for resource deployment\/rpcnet-worker/, out);
  }
});

test('the ConfigMap is a config parseConfig accepts, and the manifests agree with it and with the CLI', async (t) => {
  t.timeout(300_000);
  const all = await objects();
  const toml = find(all, 'ConfigMap', 'rpcnet-config').data['rpcnet.toml'] as string;
  const config = parseConfig(toml, {}, 'deploy/kubernetes/config.yaml');
  const { director, worker } = config;
  t.is(director.host, '0.0.0.0');
  t.deepEqual(director.admin, { host: '0.0.0.0', port: director.admin?.port });
  t.true(typeof director.clusterDir === 'string' && director.clusterDir.startsWith('/'));
  t.deepEqual(
    { port: worker.port, mgmtPort: worker.mgmtPort, admin: worker.admin, clusterDir: worker.clusterDir },
    { port: director.port, mgmtPort: director.mgmtPort, admin: director.admin, clusterDir: director.clusterDir },
  );
  // The worker Deployment gives the id from the environment, as a pod name.
  const named = parseConfig(toml, { RPCNET_WORKER_ID: 'rpcnet-worker-7c9d5b8f4-x2k4q' }, 'deploy/kubernetes/config.yaml');
  t.is(named.worker.id, 'rpcnet-worker-7c9d5b8f4-x2k4q');

  const bin = Object.keys(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).bin as Record<string, string>)[0];
  const statefulSet = find(all, 'StatefulSet', 'rpcnet-director');
  const deployment = find(all, 'Deployment', 'rpcnet-worker');
  for (const [role, workload] of [['director', statefulSet], ['worker', deployment]] as const) {
    const pod = workload.spec.template.spec;
    const what = `${workload.kind} ${workload.metadata.name}`;
    for (const [k, v] of Object.entries(workload.spec.selector.matchLabels)) t.is(workload.spec.template.metadata.labels[k], v, what);
    t.is(pod.containers.length, 1, what);
    const c = pod.containers[0];
    // The CLI's bin itself (node is process 1 and gets SIGTERM), with options `rpcnet <role> --help` lists.
    t.is(c.command[0], `/app/node_modules/.bin/${bin}`, what);
    t.is(c.command[1], role, what);
    const help = await exec(process.execPath, [CLI, role, '--help']);
    t.is(help.code, 0, help.out);
    for (const option of c.command.slice(2).filter((a: string) => a.startsWith('--'))) t.true(help.out.includes(option), `${what}: ${option} is not an option of rpcnet ${role}`);
    const configFile = c.command[c.command.indexOf('--config') + 1] as string;
    const volume = (name: string) => pod.volumes.find((v: K8s) => v.name === name);
    const mount = (container: K8s, path: string) => container.volumeMounts.find((m: K8s) => m.mountPath === path);
    const configMount = c.volumeMounts.find((m: K8s) => configFile === `${m.mountPath}/rpcnet.toml`);
    t.truthy(configMount, `${what}: nothing mounted at ${configFile}`);
    t.is(volume(configMount.name).configMap.name, 'rpcnet-config', what);
    // The cluster directory: a read-only mount of the volume the init container fills from the Secret.
    const clusterMount = mount(c, director.clusterDir!);
    t.truthy(clusterMount, `${what}: nothing mounted at cluster_dir ${director.clusterDir}`);
    t.true(clusterMount.readOnly, what);
    t.truthy(volume(clusterMount.name).emptyDir, what);
    // (What the init container copies there is the next test's.)
    t.is(pod.initContainers.length, 1, what);
    t.truthy(mount(pod.initContainers[0], director.clusterDir!), what);
    // Ports and probes: what the config binds.
    const ports = Object.fromEntries(c.ports.map((p: K8s) => [p.name, [p.containerPort, p.protocol]]));
    t.deepEqual(ports, { quic: [director.port, 'UDP'], mgmt: [director.mgmtPort, 'UDP'], admin: [director.admin!.port, 'TCP'] }, what);
    t.deepEqual(c.readinessProbe.httpGet, { path: '/health/ready', port: 'admin' }, what);
    t.deepEqual(c.livenessProbe.httpGet, { path: '/health/live', port: 'admin' }, what);
    t.is(pod.securityContext.fsGroup, pod.securityContext.runAsGroup, what);
  }

  // Workers: an id per pod, and a grace period longer than the drain, in an update that keeps capacity.
  const w = deployment.spec.template.spec;
  t.deepEqual(w.containers[0].env.find((e: K8s) => e.name === 'RPCNET_WORKER_ID').valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
  t.true(w.terminationGracePeriodSeconds > WORKER_DRAIN_S, 'the kubelet must not SIGKILL a worker within its drain');
  t.deepEqual(deployment.spec.strategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });

  // Directors: a grace period longer than the shutdown; for each, a user Service (ready pods
  // only) and the management Service the workers list (not-ready pods too).
  const d = statefulSet.spec.template.spec;
  t.true(d.terminationGracePeriodSeconds > DIRECTOR_SHUTDOWN_S, "the kubelet must not SIGKILL a director within its clients' move");
  t.is(find(all, 'Service', statefulSet.spec.serviceName).spec.clusterIP, 'None');
  const replicas = statefulSet.spec.replicas as number;
  t.is(worker.director?.length, replicas);
  for (let n = 0; n < replicas; n++) {
    const pod = `${statefulSet.metadata.name}-${n}`;
    const user = find(all, 'Service', pod);
    t.deepEqual(user.spec.selector, { 'statefulset.kubernetes.io/pod-name': pod });
    t.deepEqual(user.spec.ports, [{ name: 'quic', protocol: 'UDP', port: director.port, targetPort: 'quic' }]);
    t.falsy(user.spec.publishNotReadyAddresses);
    const [name, port] = (worker.director as string[])[n]!.split(':') as [string, string];
    const mgmt = find(all, 'Service', name);
    t.deepEqual(mgmt.spec.selector, { 'statefulset.kubernetes.io/pod-name': pod });
    t.deepEqual(mgmt.spec.ports, [{ name: 'mgmt', protocol: 'UDP', port: Number(port), targetPort: 'mgmt' }]);
    t.true(mgmt.spec.publishNotReadyAddresses, `${name}: a director is ready only after a worker registered through this Service`);
  }
  for (const pdb of [find(all, 'PodDisruptionBudget', 'rpcnet-director'), find(all, 'PodDisruptionBudget', 'rpcnet-worker')]) {
    const owner = pdb.metadata.name === 'rpcnet-director' ? statefulSet : deployment;
    t.deepEqual(pdb.spec.selector.matchLabels, owner.spec.selector.matchLabels);
  }
});

test("the credentials: issued as the comments say, no ca.key in any pod, each init container installs its pod's four files", async (t) => {
  t.timeout(300_000);
  const all = await objects();
  const { director: config } = parseConfig(find(all, 'ConfigMap', 'rpcnet-config').data['rpcnet.toml'] as string, {}, 'deploy/kubernetes/config.yaml');
  const clusterDir = config.clusterDir!;
  const statefulSet = find(all, 'StatefulSet', 'rpcnet-director');
  const deployment = find(all, 'Deployment', 'rpcnet-worker');
  const replicas = statefulSet.spec.replicas as number;
  const directors = Array.from({ length: replicas }, (_, n) => `${statefulSet.metadata.name}-${n}`);
  // The CA's private key stays on the workstation: no object names it (no Secret key, mount or copy).
  for (const o of all) t.notRegex(JSON.stringify(o), /ca\.key/, `${o.kind} ${o.metadata.name}`);

  // The commands in the comments: one CA, one pattern certificate for the workers, one
  // certificate per director replica, with --host for the names of its Services.
  const [init, ...moreInits] = commentCommands('npx rpcnet cluster init ');
  t.truthy(init);
  t.is(moreInits.length, 0);
  const caDir = words(init!, 4).first;
  const help = await exec(process.execPath, [CLI, 'cluster', 'issue', '--help']);
  t.is(help.code, 0, help.out);
  const issued = commentCommands('npx rpcnet cluster issue ').map((c) => ({ command: c, ...words(c, 4) }));
  for (const { command, options } of issued) {
    for (const option of options.keys()) t.true(help.out.includes(option), `${command}: ${option} is not an option of rpcnet cluster issue`);
    t.deepEqual(options.get('--ca'), [caDir], command);
    t.is(options.get('--out')?.length, 1, command);
  }
  const out = (name: string) => issued.find((i) => i.first === name)!.options.get('--out')![0]!;
  const workers = issued.filter((i) => i.options.get('--role')?.[0] === 'worker');
  t.deepEqual(workers.map((i) => i.first), [`${deployment.metadata.name}-*`], 'one certificate for the pattern that the pod names fit');
  const directorIssues = issued.filter((i) => i.options.get('--role')?.[0] === 'director');
  t.deepEqual(directorIssues.map((i) => i.first).sort(), directors, 'one certificate per director replica, named after its pod');
  t.is(issued.length, workers.length + directorIssues.length, 'no other certificate goes to the cluster');
  for (const { command, first, options } of directorIssues) {
    find(all, 'Service', first);
    const hosts = options.get('--host') ?? [];
    for (const name of [first, statefulSet.spec.serviceName]) t.true(hosts.includes(name), `${command}: --host ${name}`);
  }
  t.is(new Set(issued.map((i) => i.options.get('--out')![0])).size, issued.length, 'each certificate in a directory of its own');

  // The Secrets: made from the issued directories (never from the CA's), with the keys the init
  // containers read.
  const secrets = new Map(
    commentCommands('kubectl create secret generic ').map((c) => {
      const { first, options } = words(c, 4);
      return [first, (options.get('--from-file') ?? []).map((f) => f.split('=') as [string, string]).sort()] as const;
    }),
  );
  /** Secret key -> the issued file it is made from. */
  const expected = {
    worker: ['ca.pem', 'cert.pem', 'key.pem', 'secret.bin'].map((f): [string, string] => [f, `${out(workers[0]!.first)}/${f}`]),
    director: [
      ['ca.pem', `${out(directors[0]!)}/ca.pem`],
      ['secret.bin', `${out(directors[0]!)}/secret.bin`],
      ...directors.flatMap((d) => ['cert.pem', 'key.pem'].map((f) => [`${d}.${f}`, `${out(d)}/${f}`])),
    ].sort() as [string, string][],
  };

  const pods = { worker: [`${deployment.metadata.name}-7c9d5b8f4-x2k4q`], director: directors };
  for (const [role, workload] of [['director', statefulSet], ['worker', deployment]] as const) {
    const pod = workload.spec.template.spec;
    const what = `${workload.kind} ${workload.metadata.name}`;
    const volume = (name: string) => pod.volumes.find((v: K8s) => v.name === name);
    const [initContainer] = pod.initContainers;
    const secretMount = initContainer.volumeMounts.find((m: K8s) => volume(m.name).secret);
    const secretName = volume(secretMount.name).secret.secretName as string;
    t.deepEqual(secrets.get(secretName), expected[role], `${what}: kubectl create secret generic ${secretName} in the comments`);
    t.false(pod.containers[0].volumeMounts.some((m: K8s) => volume(m.name).secret), `${what}: only the init container mounts the Secret`);
    const env = (podName: string): NodeJS.ProcessEnv => ({
      PATH: process.env.PATH,
      ...Object.fromEntries(
        (initContainer.env ?? []).map((e: K8s) => {
          if (e.valueFrom) t.deepEqual(e.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } }, what);
          return [e.name, e.valueFrom ? podName : e.value];
        }),
      ),
    });
    if (process.platform === 'win32') continue;
    // Run the init container's command here, on a copy of the Secret with a text per key (for
    // each pod, then once with the pod's key.pem missing from the Secret).
    const source = (podName: string, file: string) => (role === 'director' && (file === 'cert.pem' || file === 'key.pem') ? `${podName}.${file}` : file);
    const runs = [...pods[role].map((p) => [p, false] as const), [pods[role][0]!, true] as const];
    for (const [i, [podName, missing]] of runs.entries()) {
      const secretDir = join(dir, `${role}-${i}-secret`);
      const target = join(dir, `${role}-${i}-cluster`);
      mkdirSync(secretDir);
      mkdirSync(target);
      for (const [key] of expected[role]) writeFileSync(join(secretDir, key), `${key}\n`);
      if (missing) rmSync(join(secretDir, source(podName, 'key.pem')));
      const command = (initContainer.command as string[]).map((a) => a.replaceAll(secretMount.mountPath, secretDir).replaceAll(clusterDir, target));
      for (const a of command) t.false(a.includes(secretMount.mountPath) || a.includes(clusterDir), `${what}: ${a}`);
      const ran = await exec(command[0]!, command.slice(1), 10_000, env(podName));
      if (missing) {
        t.not(ran.code, 0, `${what}: a Secret without key.pem's source must stop the pod`);
        t.regex(ran.out, /key\.pem/, ran.out);
        continue;
      }
      t.is(ran.code, 0, `${what} ${podName}: ${ran.out}`);
      t.deepEqual(readdirSync(target).sort(), ['ca.pem', 'cert.pem', 'key.pem', 'secret.bin'], `${what} ${podName}`);
      for (const file of readdirSync(target)) {
        t.is(readFileSync(join(target, file), 'utf8'), `${source(podName, file)}\n`, `${what} ${podName}: ${file}`);
        t.is(statSync(join(target, file)).mode & 0o777, 0o600, `${what} ${podName}: ${file}`);
      }
    }
  }
});
