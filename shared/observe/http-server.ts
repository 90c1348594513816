/**
 * The one adapter over node:http: a plain HTTP server (no TLS: the kubelet's
 * probes and a Prometheus scrape present no client certificate) with exact
 * GET routes — the health port's /healthz, /readyz and /metrics
 * (shared/observe/health-routes.ts) and whatever else a process registers on
 * it (the dashboard). An unknown path is 404, another method 405; a handler
 * that throws answers 500 and is logged, never left hanging. `close()` ends
 * open connections too (a live event stream would otherwise hold it).
 *
 * Knows nothing of metrics, training or gRPC.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface HttpServerOptions {
  /** Interface to bind: 0.0.0.0 for a pod (probes come from the node), 127.0.0.1 for a local cluster. */
  host: string;
  /** 0: a free port, chosen by the system. */
  port: number;
  log: Logger;
}

export interface HttpServer {
  /** `http://HOST:PORT` (a wildcard host is shown as 127.0.0.1, where it can be reached from). */
  readonly url: string;
  readonly port: number;
  route(method: 'GET', path: string, handler: RouteHandler): void;
  close(): Promise<void>;
}

export async function startHttpServer(o: HttpServerOptions): Promise<HttpServer> {
  const log = o.log.child({ component: 'http' });
  const routes = new Map<string, RouteHandler>();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler = routes.get(path);
    if (handler === undefined) return plain(res, 404, `no such path: ${path}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return plain(res, 405, `${req.method} ${path}: expected GET\n`);
    }
    const failed = (err: unknown): void => {
      log.error({ err, path }, 'http handler failed');
      if (!res.headersSent) plain(res, 500, 'internal error\n');
      else res.destroy(err instanceof Error ? err : new Error(String(err)));
    };
    try {
      const out = handler(req, res);
      if (out instanceof Promise) out.catch(failed);
    } catch (err) {
      failed(err);
    }
  });
  // A stuck client must not hold a socket forever; event streams set their own.
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.error({ err }, 'http server error'));
  const port = (server.address() as AddressInfo).port;
  const shown = o.host === '0.0.0.0' || o.host === '::' || o.host === '' ? '127.0.0.1' : o.host.includes(':') ? `[${o.host}]` : o.host;
  const url = `http://${shown}:${port}`;
  log.debug({ url, host: o.host, port }, 'http server listening');
  let closed: Promise<void> | null = null;
  return {
    url,
    port,
    route(method, path, handler) {
      if (method !== 'GET') throw new RangeError(`route ${path}: expected method GET, got ${String(method)}`);
      if (!path.startsWith('/')) throw new RangeError(`route: expected a path starting with /, got ${JSON.stringify(path)}`);
      if (routes.has(path)) throw new RangeError(`route ${path}: already registered`);
      routes.set(path, handler);
    },
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
}
