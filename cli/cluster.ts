/**
 * `bertfleet cluster --workers N`: the README's main command. The same
 * pipeline, flags and output folder as `bertfleet train`, on a local cluster
 * of real processes supervised by this one (cli/local-cluster.ts):
 * nats-server (a temporary store this process owns), `bertfleet coordinator`
 * and N `bertfleet worker`s on loopback, secured by a throwaway PKI and NATS
 * users made here (cli/cluster-security.ts) unless `--insecure`. The flags and the output folder are
 * checked here first, with the coordinator's own checks, so a mistake is
 * reported before anything starts. Everything started is stopped on success,
 * on error and on Ctrl-C/SIGTERM, killed if this process exits, and ends on
 * its own if this process is killed outright.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RunOutputs } from '../coordinator/outputs.js';
import { refuseIfOutputLocked } from '../coordinator/ownership.js';
import { createRootLogger, type Logger } from '../shared/log.js';
import { isPidAlive } from '../shared/owner-identity.js';
import { makePrivateDir } from '../shared/security/private-files.js';
import { intFlag, parseFlags, type Options } from './args.js';
import { freeLoopbackPort } from './child-processes.js';
import { removeClusterFile } from './cluster-file.js';
import { makeClusterSecurity, type ClusterSecurity } from './cluster-security.js';
import { announceDashboard, DASHBOARD_FLAGS, dashboardChoice, dashboardHelp, dashboardOptions, dashboardUrl, type DashboardChoice } from './dashboard.js';
import { LocalCluster } from './local-cluster.js';
import { logSecurity, SECURITY_ENV } from './security-flags.js';
import { defaultOutputDir, RUN_HELP, runOptions } from './run-flags.js';
import { installSignalHandlers } from './signals.js';
import { resolveRunConfig } from './train.js';
import { workerIds } from './worker-processes.js';

const HELP = `usage: bertfleet cluster [options]

Pretrains BERT (masked LM + next-sentence prediction), finetunes a classifier
and evaluates it on a local cluster: nats-server, a coordinator and N worker
processes on loopback, all stopped at the end. Same flags, outputs and bytes as
\`bertfleet train\`. With no options: the embedded default on 2 workers.

While it runs, OUTPUT/cluster.json names the coordinator and NATS addresses:
\`bertfleet worker --join OUTPUT\` adds a worker. A coordinator or nats-server
that crashes is restarted (the run resumes from its latest state); a worker
that ends is not, and the run goes on with the others. Ctrl-C stops
everything (exit 130); \`--resume\` continues the run later.

  --workers N           worker processes to start (default 2); the run waits for
                        this many before its first step
  --reducers K          cut every gradient into K slices, one reduced by the
                        coordinator and one by each of K-1 reducer processes
                        (default 1: the coordinator reduces it all); same bytes for any K
  --insecure            plaintext gRPC and NATS without authentication (logged as a warning);
                        by default the cluster makes a throwaway CA and a certificate per
                        process in a private temporary folder, removed when it stops, and
                        nats-server gets a user per role (workers may only read the run state)
${dashboardHelp(true)}
${RUN_HELP}`;

/** The cluster's own temporary folder (mode 0700): the nats store and the throwaway PKI. */
const CLUSTER_TMP_PREFIX = 'bertfleet-cluster-';
/** The store folders of clusters before the PKI, also removed when stale. */
const OLD_NATS_STORE_PREFIX = 'bertfleet-nats-';

export async function run(argv: string[]): Promise<number> {
  const options: Options = { ...runOptions, ...dashboardOptions, workers: { type: 'string' }, reducers: { type: 'string' }, insecure: { type: 'boolean' } };
  const values = parseFlags(argv, options, HELP);
  if (!values) return 0;
  const workers = intFlag(values, 'workers', { min: 1 }) ?? 2;
  const reducers = intFlag(values, 'reducers', { min: 1, max: 64 }) ?? 1;
  const dashboard = dashboardChoice(values, true);
  const outputDir = (values['output'] as string | undefined) ?? defaultOutputDir();
  // The coordinator's checks, before anything starts: a busy or non-empty folder, a bad config.
  refuseIfOutputLocked(outputDir);
  resolveRunConfig(values, new RunOutputs(outputDir));
  const logLevel = (values['log-level'] as string | undefined) ?? 'info';
  const log = createRootLogger({ service: 'cluster', level: logLevel, fd: 2 });
  await removeStaleStores(log);
  const tmp = makePrivateDir(`${CLUSTER_TMP_PREFIX}${process.pid}-`);
  const store = join(tmp, 'nats-store');
  let cluster: LocalCluster | null = null;
  const killAll = (): void => cluster?.killNow();
  const signals = installSignalHandlers(log, { graceMs: 30_000, onForce: killAll });
  process.on('exit', killAll);
  try {
    await mkdir(store);
    const security = values['insecure'] === true ? null : await makeClusterSecurity({ parentDir: tmp, workerIds: workerIds(workers), reducers: reducers - 1 });
    logClusterSecurity(log, security);
    const dashboardArgs = dashboard === null ? [] : await coordinatorDashboard(dashboard, log);
    cluster = new LocalCluster({
      log, workers, reducers, outputDir, logLevel, natsStoreDir: store, security, env: childEnv(process.env), signal: signals.signal,
      resume: values['resume'] === true,
      // Always an explicit --output: a restarted coordinator must find the same folder as the first.
      runArgs: ['--output', outputDir, ...dashboardArgs, ...withoutFlags(argv, options, ['workers', 'reducers', 'output', 'resume', 'insecure', ...DASHBOARD_FLAGS])],
    });
    const code = await cluster.run();
    if (signals.signal.aborted) {
      process.stderr.write(`bertfleet cluster: ${(signals.signal.reason as Error).message}; stopped the coordinator, ${cluster.workerCount} workers and nats-server\n`);
    }
    return code;
  } finally {
    removeClusterFile(outputDir, process.pid);
    // The nats store and every key of the throwaway PKI; a resumed cluster makes a new PKI.
    await rm(tmp, { recursive: true, force: true });
    process.off('exit', killAll);
    signals.dispose();
  }
}

/**
 * The coordinator's dashboard flags, on a port fixed here (a free one for
 * port 0) so a restarted coordinator serves the same URL; the URL is logged
 * and, on a terminal, printed.
 */
async function coordinatorDashboard(choice: DashboardChoice, log: Logger): Promise<string[]> {
  const port = choice.port === 0 ? await freeLoopbackPort(choice.host) : choice.port;
  const url = dashboardUrl({ ...choice, port });
  log.info({ url }, 'dashboard (served by the coordinator once it has loaded the data)');
  announceDashboard(url);
  return ['--dashboard-host', choice.host, '--dashboard-port', String(port)];
}

/** `argv` without the named flags and their values (parsed as `options` parse them). */
export function withoutFlags(argv: readonly string[], options: Options, names: readonly string[]): string[] {
  const { tokens } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false, tokens: true });
  const drop = new Set<number>();
  for (const t of tokens) {
    if (t.kind !== 'option' || !names.includes(t.name)) continue;
    drop.add(t.index);
    // `--flag value` (not `--flag=value`): the value is the next argument.
    if (t.value !== undefined && t.inlineValue === false) drop.add(t.index + 1);
  }
  return argv.filter((_, i) => !drop.has(i));
}

/** The children's environment: ours without the security variables (they get their files as flags). */
function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of SECURITY_ENV) delete out[name];
  return out;
}

function logClusterSecurity(log: Logger, security: ClusterSecurity | null): void {
  if (security === null) {
    logSecurity(log, { tls: null });
    return;
  }
  log.info({ pkiDir: security.pki.dir, workers: security.pki.workers.size, reducers: security.pki.reducers.length }, 'throwaway PKI and NATS users made');
}

/** Temporary folders (nats store, PKI) of clusters that were killed outright (their pid is gone): nothing else removes them. */
async function removeStaleStores(log: Logger): Promise<void> {
  const dir = tmpdir();
  for (const name of await readdir(dir)) {
    const m = new RegExp(`^(?:${CLUSTER_TMP_PREFIX}|${OLD_NATS_STORE_PREFIX})(\\d+)-`).exec(name);
    if (m === null || isPidAlive(Number(m[1]))) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    log.info({ dir: join(dir, name) }, 'removed the temporary folder (nats store, keys) of a cluster that is gone');
  }
}
