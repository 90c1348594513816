/**
 * The live dashboard: the page at `/` and the run's events as server-sent
 * events at `/events` — an `hello` event, the hub's history, then every new
 * event as it is published — on a plain HTTP server
 * (shared/observe/http-server.ts). A client that falls behind (more than
 * MAX_BUFFERED_BYTES unsent) is disconnected; its browser reconnects and
 * gets the history again. At most MAX_CLIENTS streams at once.
 *
 * Knows nothing of training: it relays what the hub holds.
 */
import type { ServerResponse } from 'node:http';
import type { RunEvent, RunEvents } from '../coordinator/run-events.js';
import type { Logger } from '../shared/log.js';
import { startHttpServer, type HttpServer } from '../shared/observe/http-server.js';
import { renderPage } from './page.js';

const MAX_CLIENTS = 32;
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** A comment line this often keeps proxies and idle timers from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;
/** How long closing waits for open streams to take their last events. */
const FLUSH_MS = 1_000;

export interface Dashboard {
  /** `http://HOST:PORT/` */
  readonly url: string;
  close(): Promise<void>;
}

export interface DashboardOptions {
  host: string;
  port: number;
  events: RunEvents;
  /** The run's output folder, shown on the page. */
  output: string;
  log: Logger;
}

/** Starts a server of its own for the dashboard. */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const server = await startHttpServer({ host: o.host, port: o.port, log: o.log });
  const detach = serveDashboard(server, o.events, o.output, o.log);
  const url = `${server.url}/`;
  o.log.child({ component: 'dashboard' }).info({ url }, 'dashboard serving');
  return {
    url,
    close: async () => {
      await detach();
      await server.close();
    },
  };
}

/** Registers `/` and `/events` on `server`; returns what ends the open streams (their last events flushed, within FLUSH_MS). */
export function serveDashboard(server: HttpServer, events: RunEvents, output: string, log: Logger): () => Promise<void> {
  const l = log.child({ component: 'dashboard' });
  let page: string | null = null;
  const streams = new Set<() => Promise<void>>();
  server.route('GET', '/', (_req, res) => {
    page ??= renderPage({ mode: 'live', eventsUrl: '/events', output }, `bertfleet: ${output}`);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page);
  });
  server.route('GET', '/events', (req, res) => {
    if (req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    if (streams.size >= MAX_CLIENTS) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '10' });
      res.end(`too many dashboard streams: at most ${MAX_CLIENTS} at once\n`);
      return;
    }
    streams.add(stream(res, events, l, (end) => streams.delete(end)));
  });
  return async () => {
    await Promise.all([...streams].map((end) => end()));
  };
}

function stream(res: ServerResponse, events: RunEvents, log: Logger, gone: (end: () => Promise<void>) => void): () => Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  let unsubscribe = (): void => undefined;
  let beat: NodeJS.Timeout | undefined;
  const end = async (): Promise<void> => {
    unsubscribe();
    clearInterval(beat);
    gone(end);
    if (res.writableEnded || res.destroyed) return;
    // The last events (the run's end) reach the browser before the server closes the socket.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, FLUSH_MS);
      res.end(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  };
  const send = (e: RunEvent): void => {
    if (res.destroyed || res.writableEnded) return;
    res.write(`data: ${JSON.stringify(e)}\n\n`);
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      log.warn({ bufferedBytes: res.writableLength }, 'dashboard client too slow; disconnected (it reconnects and replays)');
      res.destroy();
    }
  };
  res.write(`event: hello\ndata: {}\n\n`);
  // History and subscription in one tick: no event is missed or sent twice.
  for (const e of events.history()) send(e);
  unsubscribe = events.subscribe(send);
  beat = setInterval(() => {
    if (!res.destroyed && !res.writableEnded) res.write(': keepalive\n\n');
  }, KEEPALIVE_MS);
  beat.unref();
  res.on('close', () => void end());
  return end;
}
