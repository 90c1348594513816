/**
 * A worker's health port: its metrics (worker/metrics.ts) and readiness,
 * served over plain HTTP (/healthz, /readyz, /metrics;
 * shared/observe/health-routes.ts) when a host and port are given. Ready
 * means registered with the coordinator and not draining (a worker idle
 * after its run, --when-done stay, is alive but not ready); the lifecycle
 * state (`bertfleet_worker_state`) and the readiness reason say where it
 * is otherwise. Without a port both are still kept, just not served.
 */
import type { Logger } from '../shared/log.js';
import { Readiness, serveHealth } from '../shared/observe/health-routes.js';
import { startHttpServer, type HttpServer } from '../shared/observe/http-server.js';
import { WorkerMetrics, type WorkerState } from './metrics.js';

const REASONS: Record<WorkerState, string> = {
  connecting: 'connecting to the coordinator',
  loading: 'loading the model and data',
  registering: 'registering with the coordinator',
  training: 'registered',
  draining: 'draining (SIGTERM): leaving the run',
  waiting: 'the coordinator is stopping; waiting for it to come back',
  finished: 'the run is finished; idle until SIGTERM (--when-done stay)',
  stopped: 'stopped',
};

export class WorkerHealth {
  readonly metrics = new WorkerMetrics();
  private readonly readiness = new Readiness(REASONS.connecting);
  private draining = false;

  private constructor(readonly server: HttpServer | null) {}

  static async start(listen: { host: string; port: number } | undefined, log: Logger): Promise<WorkerHealth> {
    const server = listen === undefined ? null : await startHttpServer({ ...listen, log });
    const health = new WorkerHealth(server);
    if (server !== null) {
      serveHealth(server, health.readiness, () => health.metrics.exposition());
      log.child({ component: 'worker' }).info({ url: server.url }, 'health port serving /healthz /readyz /metrics');
    }
    return health;
  }

  /** A new lifecycle state; once draining, only 'stopped' follows. */
  state(s: WorkerState): void {
    if (s === 'draining') this.draining = true;
    const now = this.draining && s !== 'stopped' ? 'draining' : s;
    this.metrics.setState(now);
    this.readiness.set(now === 'training', REASONS[now]);
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}
