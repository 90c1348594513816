/**
 * The local cluster's worker processes: `bin/bertfleet worker` N times on
 * loopback (cli/child-processes.ts), each watched by a supervisor that does
 * not restart it. A worker that ends is no failure of the run — one that
 * exits 0 drained or was told the run is done; one that dies is logged as a
 * warning, and the coordinator notices it is gone and gives its share to the
 * others. `stop()` ends those still running (a signal, a grace period,
 * SIGKILL) and resolves once every one is gone; `killNow()` is the
 * synchronous last resort of an exiting parent.
 */
import type { Logger } from '../shared/log.js';
import { Supervisor, type SupervisedEnd } from '../shared/process/supervisor.js';
import { launchBertfleet } from './child-processes.js';

export interface WorkerProcessOptions {
  log: Logger;
  /** Passed to every worker: --log-level. */
  extraArgs: readonly string[];
  /** The flags of one worker's certificate and NATS credentials (or --insecure). */
  securityArgs: (workerId: string) => string[];
  env: NodeJS.ProcessEnv;
}

/** The ids of `count` workers: worker-1 .. worker-N, zero-padded so that id order is start order. */
export function workerIds(count: number): string[] {
  const width = String(count).length;
  return Array.from({ length: count }, (_, i) => `worker-${String(i + 1).padStart(width, '0')}`);
}

export class WorkerProcesses {
  private readonly workers: Supervisor[] = [];
  private readonly log: Logger;

  constructor(private readonly o: WorkerProcessOptions) {
    this.log = o.log.child({ component: 'worker-processes' });
  }

  get count(): number {
    return this.workers.length;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.pid).filter((p): p is number => p !== undefined);
  }

  /** Starts worker-1 .. worker-N; each with the loopback health port `healthPorts` gives its id, if any. */
  start(count: number, coordinator: string, nats: string, healthPorts?: ReadonlyMap<string, number>): void {
    for (const id of workerIds(count)) {
      const port = healthPorts?.get(id);
      const health = port === undefined ? [] : ['--health-host', '127.0.0.1', '--health-port', String(port)];
      const args = ['worker', '--coordinator', coordinator, '--nats', nats, '--worker-id', id, ...health, ...this.o.securityArgs(id), ...this.o.extraArgs];
      const worker = new Supervisor({
        name: id, log: this.log,
        launch: () => launchBertfleet(args, this.o.env),
        onReady: (child) => this.log.info({ workerId: id, pid: child.pid }, 'worker process started'),
      });
      worker.firstReady.catch((err: unknown) => this.log.warn({ err, workerId: id }, 'worker process could not start'));
      void worker.ended.then((end) => this.report(id, end));
      this.workers.push(worker);
    }
  }

  /** Ends every worker still running with `signal`, SIGKILL after `graceMs`; resolves once all are gone. */
  async stop(opts: { signal: NodeJS.Signals; graceMs: number }): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop(opts)));
  }

  /** Waits up to `ms` for every worker to end on its own (told by the coordinator that the run is done). */
  async settle(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    });
    await Promise.race([Promise.all(this.workers.map((w) => w.ended)), late]);
    clearTimeout(timer);
  }

  killNow(): void {
    for (const w of this.workers) w.killNow();
  }

  private report(workerId: string, end: SupervisedEnd): void {
    const { code, signal } = end.exit;
    if (end.kind === 'stopped' || code === 0) this.log.info({ workerId, code, signal }, 'worker process exited');
    else this.log.warn({ workerId, code, signal }, 'worker process died; the run goes on without it');
  }
}
