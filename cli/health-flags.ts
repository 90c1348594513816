/**
 * `--health-port N` and `--health-host HOST`, shared by `bertfleet
 * coordinator`, `worker` and `reducer`: the plain-HTTP port serving
 * /healthz, /readyz and /metrics (Kubernetes probes, Prometheus scrapes).
 * Off unless a port is given, so several processes on one machine never
 * fight over a default; `bertfleet cluster` gives each of its processes a
 * free loopback port and lists them in OUTPUT/cluster.json.
 */
import { intFlag, UsageError, type Options } from './args.js';

export const healthOptions: Options = {
  'health-port': { type: 'string' },
  'health-host': { type: 'string' },
};

export const HEALTH_HELP = `  --health-port N       serve GET /healthz (liveness), /readyz (readiness) and /metrics
                        (Prometheus) over plain HTTP on port N (0: a free port, logged);
                        default: no health port
  --health-host HOST    interface of the health port (default 0.0.0.0)`;

/** Where to serve the health port; undefined when --health-port is absent. */
export function healthChoice(values: Record<string, unknown>): { host: string; port: number } | undefined {
  const port = intFlag(values, 'health-port', { min: 0, max: 65535 });
  const host = values['health-host'] as string | undefined;
  if (port === undefined) {
    if (host !== undefined) throw new UsageError('--health-host needs --health-port');
    return undefined;
  }
  if (host === '') throw new UsageError('--health-host must name an interface (an address or a hostname), got ""');
  return { host: host ?? '0.0.0.0', port };
}
