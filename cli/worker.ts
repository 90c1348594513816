/**
 * `bertfleet worker --coordinator HOST:PORT [--nats URL] [--worker-id ID]`:
 * joins a coordinator, loads the run's model and data from the run config it
 * hands out, and computes its share of every step until told to stop. For
 * Kubernetes and your own machines; `bertfleet cluster` starts these itself.
 */
import { hostname } from 'node:os';
import { createRootLogger } from '../shared/log.js';
import { runWorker } from '../worker/main.js';
import { parseFlags, requiredString } from './args.js';
import { BACKEND_NAMES, backendChoice, backendOptions, startBackend } from './backend-flags.js';
import { prepareRun } from './run-setup.js';
import { installSignalHandlers } from './signals.js';

const HELP = `usage: bertfleet worker --coordinator HOST:PORT [options]

Joins a coordinator and computes its share of each training step and evaluation.
The model, data and run settings come from the coordinator; the backend must
match the coordinator's (same backend, same OpenBLAS threads).

  --coordinator HOST:PORT  the coordinator's gRPC address
  --nats URL               nats://HOST:PORT of the control plane (run state, phases)
  --worker-id ID           this worker's id (default <hostname>-<pid>); workers are
                           given micro-batches in id order
  --backend NAME           ${BACKEND_NAMES.join(' | ')} (default: the run config's)
  --blas-threads N         OpenBLAS threads for wasm-blas (default: the run config's)
  --log-level LEVEL        pino level (default info); logs are JSON lines on stderr`;

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    coordinator: { type: 'string' },
    nats: { type: 'string' },
    'worker-id': { type: 'string' },
    'log-level': { type: 'string' },
    ...backendOptions,
  }, HELP);
  if (!values) return 0;
  const coordinator = requiredString(values, 'coordinator');
  const workerId = (values['worker-id'] as string | undefined) ?? `${hostname()}-${process.pid}`;
  const log = createRootLogger({ service: 'worker', level: (values['log-level'] as string) ?? 'info', fd: 2, bindings: { workerId } });
  const signals = installSignalHandlers(log, { graceMs: 1_000 });
  try {
    const reason = await runWorker({
      coordinator,
      ...(typeof values['nats'] === 'string' && { natsServers: values['nats'] }),
      workerId,
      log,
      signal: signals.signal,
      setup: async (config) => {
        const backend = await startBackend(backendChoice(values, { backend: config.backend, blasThreads: config.blasThreads }), log);
        const { bert, data } = await prepareRun(config, log, false);
        return { bert, data, backend };
      },
    });
    if (reason === 'done') return 0;
    process.stderr.write(`bertfleet worker: the coordinator stopped the run: ${reason}\n`);
    return 1;
  } catch (err) {
    if (signals.signal.aborted) return signals.exitCode();
    throw err;
  } finally {
    signals.dispose();
  }
}
