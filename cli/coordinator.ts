/**
 * `bertfleet coordinator`: the run's coordinator for Kubernetes or your own
 * machines. Same flags and outputs as `bertfleet train`, plus where to listen,
 * the NATS control plane, and how many workers to wait for before step 0;
 * workers join with `bertfleet worker --coordinator HOST:PORT`.
 * `--resume auto` resumes when the output folder holds a run and starts one
 * when it holds none: the form a restarted pod (or `bertfleet cluster`
 * restarting a crashed coordinator) needs. `--when-done stay` keeps a
 * finished coordinator up (ready, refusing workers as "run finished") until
 * SIGTERM, so a StatefulSet does not restart it in a loop.
 */
import { parseFlags, intFlag, UsageError, type Options } from './args.js';
import { prepareCoordinator, runAndReport } from './coordinator-run.js';
import { dashboardChoice, dashboardHelp, dashboardOptions, RunView } from './dashboard.js';
import { HEALTH_HELP, healthChoice, healthOptions } from './health-flags.js';
import { configFileSecurity, RUN_HELP, runOptions } from './run-flags.js';
import { loadSecurity, logSecurity, NATS_CREDS_HELP, natsCredsOptions, securityChoice, TLS_HELP, tlsOptions } from './security-flags.js';
import { installSignalHandlers, parentPidFrom } from './signals.js';
import { whenDoneChoice, whenDoneHelp, whenDoneOptions } from './when-done.js';

const HELP = `usage: bertfleet coordinator [options]

Runs the pipeline (pretraining, finetuning, evaluation) with the gradients of
every step computed by the workers that join it. The tensor backend (--backend,
--blas-threads, the run config's backend and blasThreads) is the workers': this
process loads none (its own update, reduction and checksums give the same bytes
on any machine). Every worker must compute as the first one admitted did (same
backend fingerprint: backend, OpenBLAS threads and core, C library, CPU
features); the trainer state keeps that fingerprint, so a resumed run refuses
workers that differ, naming both values.

  --listen HOST:PORT    gRPC address for the workers (default 0.0.0.0:50051)
  --nats URL            nats://HOST:PORT of the control plane (default nats://127.0.0.1:4222)
  --workers N           workers to wait for before step 0 (default 1)
  --reducers ADDR,...   HOST:PORT of each \`bertfleet reducer\` process: with K-1 of them, the
                        gradient is cut into K slices, one reduced here and one by each
                        (default: none, this process reduces the whole gradient)
  --resume auto         resume when --output holds a run (run-config.json), start one when
                        it is absent or empty (plain --resume: the run must be there)
${whenDoneHelp(`                        (then exit 0); staying, /readyz answers 200, the gRPC port refuses
                        every call as "run finished" (a worker that joins then exits 0, or
                        idles with its own --when-done stay) and the dashboard stays up;
                        also when --resume auto finds the run finished. For a StatefulSet,
                        which restarts any process that exits. A failed run exits non-zero.`)}
${HEALTH_HELP}
                        ready: serving gRPC under the run's lease, or finished and staying
${dashboardHelp(false)}
${TLS_HELP}
${NATS_CREDS_HELP}
${RUN_HELP}`;

/** `--resume auto` (or `--resume=auto`) taken out of argv, since --resume alone is a boolean flag. */
export function takeResumeAuto(argv: readonly string[]): { argv: string[]; auto: boolean } {
  const rest: string[] = [];
  let auto = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--resume=auto' || (argv[i] === '--resume' && argv[i + 1] === 'auto')) {
      auto = true;
      if (argv[i] === '--resume') i++;
      continue;
    }
    rest.push(argv[i]!);
  }
  return { argv: rest, auto };
}

export function parseHostPort(raw: string, flag: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(raw);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new UsageError(`--${flag} must be HOST:PORT (port 0-65535), got "${raw}"`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Every flag of `bertfleet coordinator` (after takeResumeAuto); test/unit/k8s-consistency.test.ts checks k8s/ against it. */
export const coordinatorOptions: Options = {
  ...runOptions,
  listen: { type: 'string' },
  nats: { type: 'string' },
  workers: { type: 'string' },
  reducers: { type: 'string' },
  ...healthOptions,
  ...whenDoneOptions,
  ...dashboardOptions,
  ...tlsOptions,
  ...natsCredsOptions,
};

export async function run(rawArgv: string[]): Promise<number> {
  const { argv, auto } = takeResumeAuto(rawArgv);
  const values = parseFlags(argv, coordinatorOptions, HELP);
  if (!values) return 0;
  if (auto) {
    if (values['resume'] === true) throw new UsageError('--resume and --resume auto: give one');
    values['resume'] = 'auto';
  }
  const listen = parseHostPort((values['listen'] as string | undefined) ?? '0.0.0.0:50051', 'listen');
  const expectedWorkers = intFlag(values, 'workers', { min: 1 }) ?? 1;
  const reducerAddresses = ((values['reducers'] as string | undefined) ?? '').split(',').filter((a) => a !== '');
  for (const a of reducerAddresses) parseHostPort(a, 'reducers');
  const health = healthChoice(values);
  const whenDone = whenDoneChoice(values);
  const dashboard = dashboardChoice(values, false);
  // The TLS files are checked before the (long) data load: a mistake is reported at once.
  const security = loadSecurity(securityChoice(values, process.env, 'coordinator', { needsNats: true, readsConfig: true, fromConfig: configFileSecurity(values) }), 'coordinator');
  const prepared = await prepareCoordinator(values, 'coordinator');
  logSecurity(prepared.log, security);
  // Started by `bertfleet cluster`: stop when it is gone.
  const parentPid = parentPidFrom(process.env);
  // The dashboard (with --dashboard-port) and, at the end, OUTPUT/report.html.
  const view = await RunView.open({ outputDir: prepared.outputs.dir, log: prepared.log, choice: dashboard, announce: false });
  const signals = installSignalHandlers(prepared.log, { graceMs: 15_000, ...(parentPid !== undefined && { parentPid }) });
  const { config } = prepared;
  view.started({ mode: 'coordinator', output: prepared.outputs.dir, workers: expectedWorkers, steps: { pretrain: config.pretrain.steps, finetune: config.finetune.steps }, model: config.model, seed: config.seed, resumed: prepared.resume });
  let outcome: 'finished' | 'failed' | 'stopped' = 'failed';
  let failure: unknown;
  try {
    const code = await runAndReport(prepared, {
      events: view.events,
      listen,
      natsServers: (values['nats'] as string | undefined) ?? 'nats://127.0.0.1:4222',
      expectedWorkers,
      reducerAddresses,
      ...(health !== undefined && { health }),
      signal: signals.signal,
      whenDone,
      // Staying: report.html now, the dashboard kept until SIGTERM.
      onStaying: () => view.finish('finished', undefined, { keepDashboard: true }),
      ...security,
    });
    outcome = 'finished';
    return code;
  } catch (err) {
    failure = err;
    if (signals.signal.aborted) {
      outcome = 'stopped';
      process.stderr.write(`bertfleet coordinator: ${(signals.signal.reason as Error).message}\n`);
      return signals.exitCode();
    }
    throw err;
  } finally {
    await view.finish(outcome, failure);
    signals.dispose();
  }
}
