/**
 * The processes of `bertfleet cluster`, supervised: nats-server (its own
 * store folder, restarted on the same port and store if it dies), the
 * coordinator (`bin/bertfleet coordinator` on a fixed loopback port,
 * restarted with `--resume auto` if it crashes, a few times at most), and N
 * workers (never restarted; one that ends is logged, the run goes on). Once
 * the coordinator listens, `OUTPUT/cluster.json` says where to join. The
 * coordinator and each worker get a free loopback health port (/healthz,
 * /readyz, /metrics), listed there too. Unless
 * `--insecure`, every child gets its certificate and NATS credentials from
 * the cluster's throwaway PKI (cluster-security.ts) as file paths, and
 * nats-server runs the generated config (users, permissions, TLS).
 *
 * `run()` resolves with the exit status: the coordinator's final one, 130 or
 * 143 after a signal, 1 when nats-server cannot be kept up. Stopping is in
 * order, each step bounded: on Ctrl-C the coordinator and workers at once
 * (SIGINT), then nats-server; on SIGTERM the coordinator first (it
 * checkpoints, with the workers still there), then the workers, then
 * nats-server — so the coordinator's last run-state writes and its lease
 * release always find nats-server up.
 */
import { RUN_STOPPED_EXIT } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { launchNatsServer, type NatsServerHandle } from '../shared/control/nats-server.js';
import { exitStatus } from '../shared/process/kill-with-grace.js';
import { Supervisor, type SupervisedEnd } from '../shared/process/supervisor.js';
import { launchCoordinator, launchReducer, freeLoopbackPort } from './child-processes.js';
import { writeClusterFile } from './cluster-file.js';
import { coordinatorSecurityArgs, reducerSecurityArgs, workerSecurityArgs, type ClusterSecurity } from './cluster-security.js';
import { InterruptedError } from './signals.js';
import { workerIds, WorkerProcesses } from './worker-processes.js';

/** A crashing child is started again at most this often within the window, then the run ends. */
const RESTART_LIMIT = { max: 3, windowMs: 120_000 };
const STOP = {
  /** Ctrl-C: everything must be gone within about 3 s. */
  SIGINT: { coordinatorMs: 2_000, workersMs: 1_500, natsMs: 700 },
  /** SIGTERM: the coordinator checkpoints the step in hand first. */
  SIGTERM: { coordinatorMs: 20_000, workersMs: 2_000, natsMs: 1_500 },
} as const;
/** After a finished run, the workers leave on the coordinator's stop order. */
const WORKERS_LEAVE_MS = 5_000;

export interface LocalClusterOptions {
  log: Logger;
  workers: number;
  /** `--reducers K`: K-1 reducer processes beside the coordinator (1: none). */
  reducers?: number;
  outputDir: string;
  /** The coordinator's run flags (without --listen, --nats, --workers, --resume). */
  runArgs: readonly string[];
  /** The user asked for --resume (a restart always resumes when it can). */
  resume: boolean;
  logLevel: string;
  natsStoreDir: string;
  /** The throwaway PKI and NATS users (cluster-security.ts); null: --insecure. */
  security: ClusterSecurity | null;
  /** For children: our environment, and the PATH searched for nats-server and setpriv. */
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
}

type Outcome = { kind: 'coordinator'; end: SupervisedEnd } | { kind: 'nats'; end: SupervisedEnd } | { kind: 'signal'; sig: NodeJS.Signals };

export class LocalCluster {
  private nats: Supervisor | null = null;
  private coordinator: Supervisor | null = null;
  private reducers: Supervisor[] = [];
  private readonly processes: WorkerProcesses;
  private readonly log: Logger;
  private readonly startedAtMs = Date.now();
  private stopping = false;

  constructor(private readonly o: LocalClusterOptions) {
    this.log = o.log.child({ component: 'local-cluster' });
    this.processes = new WorkerProcesses({
      log: o.log, extraArgs: ['--log-level', o.logLevel], env: o.env, securityArgs: (id) => workerSecurityArgs(o.security, id),
    });
  }

  get workerCount(): number {
    return this.processes.count;
  }

  /** Starts everything, waits for the run's end (or a signal), stops everything; the exit status. */
  async run(): Promise<number> {
    const aborted = new Promise<Outcome>((resolve) => {
      const onAbort = (): void => resolve({ kind: 'signal', sig: signalOf(this.o.signal.reason) });
      if (this.o.signal.aborted) onAbort();
      else this.o.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const natsStart = this.startNats();
      // A signal that wins the race stops nats-server itself; its start then fails, on purpose.
      natsStart.catch(() => undefined);
      const natsUrl = await Promise.race([natsStart, aborted]);
      if (typeof natsUrl !== 'string') return await this.stopAll(natsUrl);
      const reducerAddresses = await this.startReducers();
      const port = await freeLoopbackPort();
      // Health ports (/healthz, /readyz, /metrics): the coordinator's, then one per worker; listed in cluster.json.
      const [coordinatorHealth, ...workerHealth] = await distinctFreePorts(1 + this.o.workers, [port]);
      const health = { coordinator: coordinatorHealth!, workers: new Map(workerIds(this.o.workers).map((id, i) => [id, workerHealth[i]!])) };
      this.startCoordinator(natsUrl, port, reducerAddresses, health);
      const outcome = await Promise.race([
        this.coordinator!.ended.then((end): Outcome => ({ kind: 'coordinator', end })),
        this.nats!.ended.then((end): Outcome => ({ kind: 'nats', end })),
        aborted,
      ]);
      return await this.stopAll(outcome);
    } catch (err) {
      await this.stopAll({ kind: 'signal', sig: 'SIGTERM' });
      throw err;
    }
  }

  private async stopReducers(graceMs: number): Promise<void> {
    await Promise.all(this.reducers.map((r) => r.stop({ signal: 'SIGTERM', graceMs })));
  }

  /** SIGKILLs every child now: for an exiting parent. */
  killNow(): void {
    this.coordinator?.killNow();
    for (const r of this.reducers) r.killNow();
    this.processes.killNow();
    this.nats?.killNow();
  }

  /** nats-server on a port of its choosing, then on that same port and store after any crash. */
  private async startNats(): Promise<string> {
    let port = 0;
    let handle: NatsServerHandle | null = null;
    this.nats = new Supervisor({
      name: 'nats-server', log: this.o.log, restartOn: () => true, restartLimit: RESTART_LIMIT,
      launch: () => {
        const { child, ready } = launchNatsServer({
          storeDir: this.o.natsStoreDir, port, log: this.o.log, detached: true, dieWithParent: true,
          ...(this.o.env['PATH'] !== undefined && { searchPath: this.o.env['PATH'] }),
          ...(this.o.security !== null && { configFile: this.o.security.nats.configFile }),
        });
        return { child, ready: ready.then((h) => void (handle = h)) };
      },
      onReady: (_child, attempt) => {
        port = handle!.port;
        if (attempt > 0) this.log.warn({ port, attempt }, 'nats-server restarted');
      },
    });
    await this.nats.firstReady;
    return handle!.url;
  }

  /**
   * K-1 reducer processes on loopback ports, each restarted on its port if it
   * crashes (a fresh one learns the next steps from the coordinator); their addresses.
   */
  private async startReducers(): Promise<string[]> {
    const host = '127.0.0.1';
    const addresses: string[] = [];
    for (let j = 1; j < (this.o.reducers ?? 1); j++) {
      const port = await freeLoopbackPort();
      const address = `${host}:${port}`;
      const sup = new Supervisor({
        name: `reducer-${j}`, log: this.o.log, restartLimit: RESTART_LIMIT, restartOn: (exit) => exit.code !== 0,
        launch: () => launchReducer(['--log-level', this.o.logLevel, ...reducerSecurityArgs(this.o.security, j)], { host, port }, this.o.env),
        onReady: (child, attempt) => this.log.info({ pid: child.pid, address, attempt, reducer: j }, 'reducer process started'),
      });
      this.reducers.push(sup);
      addresses.push(address);
    }
    await Promise.all(this.reducers.map((r) => r.firstReady));
    return addresses;
  }

  private startCoordinator(natsUrl: string, port: number, reducerAddresses: readonly string[], health: HealthPorts): void {
    const host = '127.0.0.1';
    const address = `${host}:${port}`;
    const args = (attempt: number): string[] => [
      '--listen', address, '--nats', natsUrl, '--workers', String(this.o.workers),
      '--health-host', host, '--health-port', String(health.coordinator),
      // A restart resumes from the run's latest trainer state, or starts it if none was written yet.
      ...(attempt > 0 ? ['--resume', 'auto'] : this.o.resume ? ['--resume'] : []),
      ...(reducerAddresses.length > 0 ? ['--reducers', reducerAddresses.join(',')] : []),
      ...coordinatorSecurityArgs(this.o.security),
      ...this.o.runArgs,
    ];
    this.coordinator = new Supervisor({
      name: 'coordinator', log: this.o.log, restartLimit: RESTART_LIMIT,
      // A non-zero exit we did not ask for (stops are never restarted), or death by a signal we did not send;
      // not a run stopped for good (the non-finite guard): a resume would stop the same way.
      restartOn: (exit) => exit.code !== 0 && exit.code !== RUN_STOPPED_EXIT,
      launch: (attempt) => launchCoordinator(args(attempt), { host, port }, this.o.env),
      onReady: (child, attempt) => {
        this.log.info({ pid: child.pid, address, attempt }, 'coordinator process started');
        // A coordinator that got ready while everything stops gets no workers (they would outlive the stop).
        if (attempt > 0 || this.stopping) return;
        const security = this.o.security;
        writeClusterFile(this.o.outputDir, {
          coordinator: address, nats: natsUrl, pid: process.pid, started_at_ms: this.startedAtMs,
          ...(security !== null && { pki_dir: security.pki.dir, nats_credentials: security.nats.credentials.worker }),
          health: {
            coordinator: `http://${host}:${health.coordinator}`,
            workers: Object.fromEntries([...health.workers].map(([id, p]) => [id, `http://${host}:${p}`])),
          },
        });
        this.processes.start(this.o.workers, address, natsUrl, health.workers);
      },
    });
    // Its failure before listening is reported through `ended` (and its own message on stderr).
    this.coordinator.firstReady.catch(() => undefined);
  }

  /** Stops what still runs, in the order the outcome calls for; the exit status. */
  private async stopAll(outcome: Outcome): Promise<number> {
    this.stopping = true;
    if (outcome.kind === 'signal') {
      const t = STOP[outcome.sig === 'SIGINT' ? 'SIGINT' : 'SIGTERM'];
      if (outcome.sig === 'SIGINT') {
        await Promise.all([this.coordinator?.stop({ signal: 'SIGINT', graceMs: t.coordinatorMs }), this.processes.stop({ signal: 'SIGINT', graceMs: t.workersMs })]);
      } else {
        await this.coordinator?.stop({ signal: 'SIGTERM', graceMs: t.coordinatorMs });
        await this.processes.stop({ signal: 'SIGINT', graceMs: t.workersMs });
      }
      await this.stopReducers(t.natsMs);
      await this.nats?.stop({ signal: 'SIGTERM', graceMs: t.natsMs });
      return outcome.sig === 'SIGINT' ? 130 : 143;
    }
    if (outcome.kind === 'nats') {
      this.log.error({ exit: outcome.end.exit, limit: RESTART_LIMIT }, 'nats-server keeps dying; stopping the run');
      await this.coordinator?.stop({ signal: 'SIGTERM', graceMs: STOP.SIGTERM.coordinatorMs });
      await this.processes.stop({ signal: 'SIGINT', graceMs: STOP.SIGTERM.workersMs });
      await this.stopReducers(STOP.SIGTERM.natsMs);
      return 1;
    }
    const status = exitStatus(outcome.end.exit);
    // Done: the workers were told to stop and leave on their own; after a failure they would wait for a coordinator.
    if (status === 0) await this.processes.settle(WORKERS_LEAVE_MS);
    await this.processes.stop({ signal: 'SIGINT', graceMs: STOP.SIGTERM.workersMs });
    await this.stopReducers(STOP.SIGTERM.natsMs);
    await this.nats?.stop({ signal: 'SIGTERM', graceMs: STOP.SIGTERM.natsMs });
    return status;
  }
}

/** The loopback health ports of the coordinator and of each worker, by id. */
interface HealthPorts {
  coordinator: number;
  workers: ReadonlyMap<string, number>;
}

/** `n` free loopback ports, none of them in `taken` nor the same twice. */
async function distinctFreePorts(n: number, taken: readonly number[]): Promise<number[]> {
  const seen = new Set(taken);
  const out: number[] = [];
  while (out.length < n) {
    const p = await freeLoopbackPort();
    if (seen.has(p)) continue;
    seen.add(p);
    out.push(p);
  }
  return out;
}

function signalOf(reason: unknown): NodeJS.Signals {
  return reason instanceof InterruptedError ? reason.signalName : 'SIGTERM';
}
