/**
 * The coordinator's health port: its metrics (coordinator/metrics.ts) and
 * readiness, served over plain HTTP (/healthz, /readyz, /metrics;
 * shared/observe/health-routes.ts) when a host and port are given. Ready
 * means serving gRPC under the run's lease, or (--when-done stay) finished
 * and staying up; not ready before, after the lease is lost or the run
 * failed, and while stopping. Without a port the
 * metrics and readiness are still kept (cheap), just not served.
 */
import type { Logger } from '../shared/log.js';
import { Readiness, serveHealth } from '../shared/observe/health-routes.js';
import { startHttpServer, type HttpServer } from '../shared/observe/http-server.js';
import { CoordinatorMetrics } from './metrics.js';

export interface CoordinatorHealth {
  readonly metrics: CoordinatorMetrics;
  readonly readiness: Readiness;
  /** The HTTP server, when a port was given (other routes may be added to it). */
  readonly server: HttpServer | null;
  close(): Promise<void>;
}

export async function startCoordinatorHealth(listen: { host: string; port: number } | undefined, runId: string, log: Logger): Promise<CoordinatorHealth> {
  const metrics = new CoordinatorMetrics(runId);
  const readiness = new Readiness('taking the run lease');
  const server = listen === undefined ? null : await startHttpServer({ ...listen, log });
  if (server !== null) {
    serveHealth(server, readiness, () => metrics.exposition());
    log.child({ component: 'coordinator' }).info({ url: server.url }, 'health port serving /healthz /readyz /metrics');
  }
  return { metrics, readiness, server, close: async () => server?.close() };
}
