/**
 * `bertfleet worker --coordinator HOST:PORT [--nats URL] [--worker-id ID]`,
 * or `bertfleet worker --join OUTPUT` (the addresses a running `bertfleet
 * cluster` wrote to OUTPUT/cluster.json): joins a coordinator, loads the
 * run's model and data from the run config it hands out, and computes its
 * share of every step until told to stop. For Kubernetes and your own
 * machines; `bertfleet cluster` starts these itself, and its workers stop
 * when it is gone (PARENT_PID_ENV).
 */
import { hostname } from 'node:os';
import { createRootLogger, type Logger } from '../shared/log.js';
import { issueWorkerCert } from '../shared/security/throwaway-pki.js';
import { ComputeHost } from '../worker/compute-host.js';
import type { FaultInjection } from '../worker/compute-protocol.js';
import { runWorker } from '../worker/main.js';
import { parseFlags, UsageError, type Options } from './args.js';
import { BACKEND_NAMES, backendChoice, backendOptions } from './backend-flags.js';
import { readLiveClusterFile, type ClusterFile } from './cluster-file.js';
import { HEALTH_HELP, healthChoice, healthOptions } from './health-flags.js';
import { loadSecurity, logSecurity, NATS_CREDS_HELP, natsCredsOptions, securityChoice, tlsFilesGiven, TLS_HELP, tlsOptions, type SecurityParts } from './security-flags.js';
import { parentPidFrom, watchParent } from './signals.js';
import { whenDoneChoice, whenDoneHelp, whenDoneOptions } from './when-done.js';

/** Test hook (fault-injection tests, the soak): makes this worker a straggler. */
const DELAY_ENV = 'BERTFLEET_TEST_DELAY_MS_PER_MICRO_BATCH';

/**
 * Test hook (the gradient audit's test): `audit-flip` makes this worker flip
 * one bit of every audit gradient it computes, as a faulty core would, so the
 * coordinator's audit must stop the run. Read here only.
 */
const FAULT_ENV = 'BERTFLEET_TEST_FAULT_INJECT';

function testFault(): FaultInjection {
  const raw = process.env[FAULT_ENV];
  if (raw === undefined || raw === '' || raw === 'none') return 'none';
  if (raw !== 'audit-flip') throw new UsageError(`${FAULT_ENV} must be audit-flip or none, got "${raw}"`);
  return raw;
}

function testDelayMs(): number {
  const raw = process.env[DELAY_ENV];
  if (raw === undefined || raw === '') return 0;
  const ms = Number(raw);
  if (!(Number.isInteger(ms) && ms >= 0)) throw new UsageError(`${DELAY_ENV} must be a whole number of ms >= 0, got "${raw}"`);
  return ms;
}

const HELP = `usage: bertfleet worker --coordinator HOST:PORT [options]
       bertfleet worker --join OUTPUT [options]

Joins a coordinator and computes its share of each training step and evaluation.
The model, data and run settings (the backend too) come from the coordinator's
run config. Every worker of a run must compute as the first one admitted did:
the same backend fingerprint (backend, OpenBLAS threads and core, C library and
CPU features), kept in the run's trainer state, so a resumed run holds new
workers to it; a worker that differs is refused naming the field.

  --coordinator HOST:PORT  the coordinator's gRPC address
  --nats URL               nats://HOST:PORT of the control plane (run state, phases)
  --join OUTPUT            join the \`bertfleet cluster\` running on OUTPUT: both addresses
                           from OUTPUT/cluster.json (--coordinator and --nats override them),
                           and a certificate for --worker-id signed by the cluster's CA
  --worker-id ID           this worker's id; with TLS it must be the id its certificate
                           names (default: that id; with --insecure or --join: <hostname>-<pid>);
                           workers are given micro-batches in id order
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default: the run config's)
  --blas-threads N         OpenBLAS threads for wasm-blas (default: the run config's)
  --log-level LEVEL        pino level (default info); logs are JSON lines on stderr
${HEALTH_HELP}
                        ready: registered with the coordinator and not draining
${whenDoneHelp(`                        (then exit 0): idle, /healthz 200 and /readyz 503. A run is finished
                        when the coordinator's stop order says done, the run state in NATS
                        says done, or the coordinator (kept up by its own --when-done stay)
                        answers "run finished" (without stay: exit 0 at once, no retrying).
                        For a StatefulSet, which restarts any process that exits. A failed
                        run exits 1 either way.`)}
${TLS_HELP}
${NATS_CREDS_HELP}

SIGTERM drains the worker: it finishes and uploads the share in hand, leaves the
run (reason drained) and exits 0; the coordinator gives later steps to the others.
SIGINT (or a second signal) stops it at once.`;

/**
 * SIGTERM drains, SIGINT (or any second signal) stops now; only this entry
 * point installs them. A worker started by `bertfleet cluster` stops now,
 * too, when the cluster is gone: there is no coordinator to drain to.
 */
function workerSignals(log: Logger, parentPid: number | undefined): { drain: AbortSignal; stop: AbortSignal; exitCode: () => number; dispose: () => void } {
  const drain = new AbortController();
  const stop = new AbortController();
  let code = 0;
  const handler = (sig: NodeJS.Signals): void => {
    if (sig === 'SIGTERM' && !drain.signal.aborted && !stop.signal.aborted) {
      log.info({ signal: sig }, 'draining: finishing the share in hand, then leaving');
      drain.abort(new Error('drain requested (SIGTERM)'));
      return;
    }
    if (stop.signal.aborted) process.exit(code);
    code = sig === 'SIGINT' ? 130 : 143;
    log.info({ signal: sig }, 'stopping now');
    stop.abort(new Error(`interrupted by ${sig}`));
    setTimeout(() => process.exit(code), 1_000).unref();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  const unwatch = parentPid === undefined ? () => undefined : watchParent(parentPid, log, () => {
    if (stop.signal.aborted) return;
    code = 143;
    stop.abort(new Error('the cluster that started this worker is gone'));
    setTimeout(() => process.exit(code), 1_000).unref();
  });
  return {
    drain: drain.signal, stop: stop.signal, exitCode: () => code,
    dispose: () => {
      unwatch();
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

const flagOf = (values: Record<string, unknown>, name: string): string | undefined =>
  typeof values[name] === 'string' && values[name] !== '' ? (values[name] as string) : undefined;

/** The coordinator and NATS addresses: explicit flags first, then --join's cluster file. */
function addresses(values: Record<string, unknown>, joined: ClusterFile | undefined): { coordinator: string; nats: string | undefined } {
  const coordinator = flagOf(values, 'coordinator') ?? joined?.coordinator;
  if (coordinator === undefined) throw new UsageError('--coordinator HOST:PORT or --join OUTPUT is required');
  return { coordinator, nats: flagOf(values, 'nats') ?? joined?.nats };
}

/**
 * This worker's id and TLS material. With TLS files the certificate names
 * the id: `--worker-id` must be that id, and is that id when absent. With
 * `--join` and no TLS files of its own, the worker signs a certificate for
 * its id with the cluster's CA (cluster.json's pki_dir) and takes the
 * workers' NATS credentials from there.
 */
async function workerSecurity(values: Record<string, unknown>, joined: ClusterFile | undefined): Promise<{ workerId: string; security: SecurityParts }> {
  const explicitId = flagOf(values, 'worker-id');
  const defaultId = `${hostname()}-${process.pid}`;
  const ownFiles = tlsFilesGiven(values, process.env) !== null || values['insecure'] === true;
  let fallback;
  if (joined !== undefined && !ownFiles) {
    if (joined.pki_dir === undefined || joined.nats_credentials === undefined) {
      throw new UsageError(`--join ${flagOf(values, 'join')}: that cluster runs with --insecure (no TLS); join it with --insecure, or give TLS files`);
    }
    fallback = { tlsFiles: await issueWorkerCert(joined.pki_dir, explicitId ?? defaultId), natsCredentialsFile: joined.nats_credentials };
  }
  const choice = securityChoice(values, process.env, 'worker', { needsNats: true, ...(fallback !== undefined && { fallback }) });
  if (choice.tlsFiles === null) return { workerId: explicitId ?? defaultId, security: loadSecurity(choice, 'worker') };
  const security = loadSecurity(choice, 'worker', explicitId);
  return { workerId: security.tls!.identity.id!, security };
}


/** Every flag of `bertfleet worker`; test/unit/k8s-consistency.test.ts checks k8s/ against it. */
export const workerOptions: Options = {
  coordinator: { type: 'string' },
  nats: { type: 'string' },
  join: { type: 'string' },
  'worker-id': { type: 'string' },
  'log-level': { type: 'string' },
  ...backendOptions,
  ...healthOptions,
  ...whenDoneOptions,
  ...tlsOptions,
  ...natsCredsOptions,
};

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, workerOptions, HELP);
  if (!values) return 0;
  const joined = flagOf(values, 'join') !== undefined ? readLiveClusterFile(flagOf(values, 'join')!) : undefined;
  const { coordinator, nats } = addresses(values, joined);
  const health = healthChoice(values);
  const whenDone = whenDoneChoice(values);
  const { workerId, security } = await workerSecurity(values, joined);
  const logLevel = (values['log-level'] as string | undefined) ?? 'info';
  const delayMs = testDelayMs();
  const faultInject = testFault();
  const log = createRootLogger({ service: 'worker', level: logLevel, fd: 2, bindings: { workerId } });
  logSecurity(log, security);
  const signals = workerSignals(log, parentPidFrom(process.env));
  try {
    const reason = await runWorker({
      ...security,
      coordinator,
      ...(nats !== undefined && { natsServers: nats }),
      workerId,
      log,
      ...(health !== undefined && { health }),
      signal: signals.stop,
      drain: signals.drain,
      whenDone,
      setup: async (config) => {
        // Backend, model, data and replica live in a thread of their own: this thread only talks (heartbeats, gRPC).
        const host = await ComputeHost.start({
          config, backend: backendChoice(values, { backend: config.backend, blasThreads: config.blasThreads }),
          logLevel, logBindings: { service: 'worker', workerId }, delayMsPerMicroBatch: delayMs, faultInject,
        });
        return { compute: host, fingerprints: host.fingerprints, close: () => host.close() };
      },
    });
    if (reason === 'done' || reason === 'drained') return 0;
    process.stderr.write(`bertfleet worker: the coordinator stopped the run: ${reason}\n`);
    return 1;
  } catch (err) {
    if (signals.stop.aborted) return signals.exitCode();
    throw err;
  } finally {
    signals.dispose();
  }
}
