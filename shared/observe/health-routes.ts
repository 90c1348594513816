/**
 * The health port's three routes, for the kubelet and Prometheus:
 *   GET /healthz  liveness: 200 `ok` whenever the event loop answers at all;
 *   GET /readyz   readiness: 200 or 503 with `{"ready": bool, "reason": "..."}`,
 *                 as the process last said (`Readiness.set`);
 *   GET /metrics  the Prometheus text exposition, when a source is given.
 * What "ready" means is the process's own: a coordinator serving gRPC under
 * its lease, a worker registered and not draining.
 *
 * Knows nothing of prom-client (the metrics come as a function) or training.
 */
import type { HttpServer } from './http-server.js';

export interface ReadyState {
  ready: boolean;
  /** Short, constant-ish: `registered`, `draining`, `connecting to the coordinator`... */
  reason: string;
}

/** The process's readiness, set where its lifecycle changes. */
export class Readiness {
  private state: ReadyState;

  constructor(reason = 'starting') {
    this.state = { ready: false, reason };
  }

  set(ready: boolean, reason: string): void {
    this.state = { ready, reason };
  }

  get(): ReadyState {
    return this.state;
  }
}

export type MetricsSource = () => Promise<{ contentType: string; body: string }>;

export function serveHealth(server: HttpServer, readiness: Readiness, metrics?: MetricsSource): void {
  server.route('GET', '/healthz', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end('ok\n');
  });
  server.route('GET', '/readyz', (_req, res) => {
    const s = readiness.get();
    res.writeHead(s.ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(`${JSON.stringify(s)}\n`);
  });
  if (metrics !== undefined) {
    server.route('GET', '/metrics', async (_req, res) => {
      const { contentType, body } = await metrics();
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
      res.end(body);
    });
  }
}
