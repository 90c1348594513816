/**
 * `bertfleet cluster --workers N`: the README's main command. The same
 * pipeline, flags and output folder as `bertfleet train`, on a local cluster
 * of real processes supervised by this one (cli/local-cluster.ts):
 * nats-server (a temporary store this process owns), `bertfleet coordinator`
 * and N `bertfleet worker`s on loopback. The flags and the output folder are
 * checked here first, with the coordinator's own checks, so a mistake is
 * reported before anything starts. Everything started is stopped on success,
 * on error and on Ctrl-C/SIGTERM, killed if this process exits, and ends on
 * its own if this process is killed outright.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { RunOutputs } from '../coordinator/outputs.js';
import { refuseIfOutputLocked } from '../coordinator/ownership.js';
import { createRootLogger, type Logger } from '../shared/log.js';
import { isPidAlive } from '../shared/owner-identity.js';
import { intFlag, parseFlags, type Options } from './args.js';
import { removeClusterFile } from './cluster-file.js';
import { LocalCluster } from './local-cluster.js';
import { defaultOutputDir, RUN_HELP, runOptions } from './run-flags.js';
import { installSignalHandlers } from './signals.js';
import { resolveRunConfig } from './train.js';

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
${RUN_HELP}`;

const NATS_STORE_PREFIX = 'bertfleet-nats-';

export async function run(argv: string[]): Promise<number> {
  const options: Options = { ...runOptions, workers: { type: 'string' }, reducers: { type: 'string' } };
  const values = parseFlags(argv, options, HELP);
  if (!values) return 0;
  const workers = intFlag(values, 'workers', { min: 1 }) ?? 2;
  const reducers = intFlag(values, 'reducers', { min: 1, max: 64 }) ?? 1;
  const outputDir = (values['output'] as string | undefined) ?? defaultOutputDir();
  // The coordinator's checks, before anything starts: a busy or non-empty folder, a bad config.
  refuseIfOutputLocked(outputDir);
  resolveRunConfig(values, new RunOutputs(outputDir));
  const logLevel = (values['log-level'] as string | undefined) ?? 'info';
  const log = createRootLogger({ service: 'cluster', level: logLevel, fd: 2 });
  await removeStaleStores(log);
  const store = await mkdtemp(join(tmpdir(), `${NATS_STORE_PREFIX}${process.pid}-`));
  let cluster: LocalCluster | null = null;
  const killAll = (): void => cluster?.killNow();
  const signals = installSignalHandlers(log, { graceMs: 30_000, onForce: killAll });
  process.on('exit', killAll);
  try {
    cluster = new LocalCluster({
      log, workers, reducers, outputDir, logLevel, natsStoreDir: store, env: process.env, signal: signals.signal,
      resume: values['resume'] === true,
      // Always an explicit --output: a restarted coordinator must find the same folder as the first.
      runArgs: ['--output', outputDir, ...withoutFlags(argv, options, ['workers', 'reducers', 'output', 'resume'])],
    });
    const code = await cluster.run();
    if (signals.signal.aborted) {
      process.stderr.write(`bertfleet cluster: ${(signals.signal.reason as Error).message}; stopped the coordinator, ${cluster.workerCount} workers and nats-server\n`);
    }
    return code;
  } finally {
    removeClusterFile(outputDir, process.pid);
    await rm(store, { recursive: true, force: true });
    process.off('exit', killAll);
    signals.dispose();
  }
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

/** Store folders of clusters that were killed outright (their pid is gone): nothing else removes them. */
async function removeStaleStores(log: Logger): Promise<void> {
  const dir = tmpdir();
  for (const name of await readdir(dir)) {
    const m = new RegExp(`^${NATS_STORE_PREFIX}(\\d+)-`).exec(name);
    if (m === null || isPidAlive(Number(m[1]))) continue;
    await rm(join(dir, name), { recursive: true, force: true });
    log.info({ dir: join(dir, name) }, 'removed the nats store of a cluster that is gone');
  }
}
