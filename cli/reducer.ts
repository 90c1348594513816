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
import { createServer } from '../shared/wire/grpc.js';
import { parseFlags } from './args.js';
import { parseHostPort } from './coordinator.js';
import { loadSecurity, logSecurity, securityChoice, TLS_HELP, tlsOptions } from './security-flags.js';
import { installSignalHandlers, parentPidFrom } from './signals.js';

const HELP = `usage: bertfleet reducer [--listen HOST:PORT] [--log-level LEVEL] (--tls-ca FILE --tls-cert FILE --tls-key FILE | --insecure)

Sums one slice of every step's gradient for a coordinator started with
--reducers (give it this process's address). Stops on SIGTERM or SIGINT.
With TLS it serves only peers with a certificate from its CA.

  --listen HOST:PORT    gRPC address (default 0.0.0.0:50061)
  --log-level LEVEL     trace, debug, info (default), warn, error
${TLS_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, { listen: { type: 'string' }, 'log-level': { type: 'string' }, ...tlsOptions }, HELP);
  if (!values) return 0;
  const listen = parseHostPort((values['listen'] as string | undefined) ?? '0.0.0.0:50061', 'listen');
  const { tls } = loadSecurity(securityChoice(values, process.env, 'reducer', { needsNats: false }), 'reducer');
  const log = createRootLogger({ service: 'reducer', level: (values['log-level'] as string | undefined) ?? 'info', fd: 2 });
  logSecurity(log, { tls });
  const parentPid = parentPidFrom(process.env);
  const signals = installSignalHandlers(log, { graceMs: 5_000, ...(parentPid !== undefined && { parentPid }) });
  const server = createServer(new ReducerService(new Reducer(log), { log }), { log, tls });
  const port = await server.startServer(listen.host, listen.port);
  log.info({ address: `${listen.host}:${port}` }, 'reducer listening');
  if (!signals.signal.aborted) await once(signals.signal, 'abort');
  await server.stop({ graceMs: 1_000 });
  log.info({}, 'reducer stopped');
  return 0;
}
