/**
 * `bertfleet reducer`: one reducer process of `--reducers K`. It listens for
 * the coordinator (which tells it each step) and the workers (which push and
 * pull its slice of every gradient), until SIGTERM/SIGINT or, when started by
 * `bertfleet cluster`, until that process is gone.
 */
import { once } from 'node:events';
import { Reducer } from '../coordinator/reducer.js';
import { ReducerService } from '../coordinator/reducer-service.js';
import { createRootLogger } from '../shared/log.js';
import { Readiness, serveHealth } from '../shared/observe/health-routes.js';
import { startHttpServer } from '../shared/observe/http-server.js';
import { createRegistry, exposition } from '../shared/observe/prometheus.js';
import { createServer } from '../shared/wire/grpc.js';
import { parseFlags, type Options } from './args.js';
import { parseHostPort } from './coordinator.js';
import { HEALTH_HELP, healthChoice, healthOptions } from './health-flags.js';
import { loadSecurity, logSecurity, securityChoice, TLS_HELP, tlsOptions } from './security-flags.js';
import { installSignalHandlers, parentPidFrom } from './signals.js';

const HELP = `usage: bertfleet reducer [--listen HOST:PORT] [--log-level LEVEL] [--health-port N] (--tls-ca FILE --tls-cert FILE --tls-key FILE | --insecure)

Sums one slice of every step's gradient for a coordinator started with
--reducers (give it this process's address). Stops on SIGTERM or SIGINT.
With TLS it serves only peers with a certificate from its CA.

  --listen HOST:PORT    gRPC address (default 0.0.0.0:50061)
  --log-level LEVEL     trace, debug, info (default), warn, error
${HEALTH_HELP}
                        ready: listening for gRPC; /metrics has the process metrics
${TLS_HELP}`;

/** Every flag of `bertfleet reducer`; test/unit/k8s-consistency.test.ts checks k8s/ against it. */
export const reducerOptions: Options = { listen: { type: 'string' }, 'log-level': { type: 'string' }, ...healthOptions, ...tlsOptions };

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, reducerOptions, HELP);
  if (!values) return 0;
  const listen = parseHostPort((values['listen'] as string | undefined) ?? '0.0.0.0:50061', 'listen');
  const healthAt = healthChoice(values);
  const { tls } = loadSecurity(securityChoice(values, process.env, 'reducer', { needsNats: false }), 'reducer');
  const log = createRootLogger({ service: 'reducer', level: (values['log-level'] as string | undefined) ?? 'info', fd: 2 });
  logSecurity(log, { tls });
  const parentPid = parentPidFrom(process.env);
  const signals = installSignalHandlers(log, { graceMs: 5_000, ...(parentPid !== undefined && { parentPid }) });
  // The health port: process metrics only (the reducer's sums are the coordinator's to count).
  const readiness = new Readiness('starting');
  const registry = createRegistry();
  const http = healthAt === undefined ? null : await startHttpServer({ ...healthAt, log });
  try {
    if (http !== null) serveHealth(http, readiness, () => exposition(registry));
    const server = createServer(new ReducerService(new Reducer(log), { log }), { log, tls });
    const port = await server.startServer(listen.host, listen.port);
    readiness.set(true, 'listening');
    log.info({ address: `${listen.host}:${port}`, ...(http !== null && { health: http.url }) }, 'reducer listening');
    if (!signals.signal.aborted) await once(signals.signal, 'abort');
    readiness.set(false, 'stopping');
    await server.stop({ graceMs: 1_000 });
    log.info({}, 'reducer stopped');
    return 0;
  } finally {
    await http?.close();
  }
}
