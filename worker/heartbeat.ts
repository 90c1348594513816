/**
 * The worker's heartbeat: a Heartbeat call every interval with its step and
 * status, so the coordinator knows it is alive even during a long compute
 * (timers only fire between micro-batches, hence the coordinator's generous
 * timeout). A refusal (the coordinator no longer knows this worker) or
 * `maxFailures` failed calls in a row is reported once through `onLost`.
 *
 * Knows nothing of training.
 */
import { ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { CoordinatorClient } from '../shared/wire/client.js';

export type WorkerStatus = 'joining' | 'training' | 'draining' | 'stopped' | 'failed';

export interface Heartbeat {
  stop(): void;
}

export function startHeartbeat(
  client: CoordinatorClient,
  opts: {
    workerId: string;
    intervalMs: number;
    maxFailures?: number;
    log: Logger;
    state: () => { step: number; status: WorkerStatus };
    onLost: (err: Error) => void;
  },
): Heartbeat {
  const log = opts.log.child({ component: 'heartbeat' });
  const maxFailures = opts.maxFailures ?? 5;
  let failures = 0;
  let inFlight = false;
  let lost = false;
  const beat = async (): Promise<void> => {
    if (inFlight || lost) return;
    inFlight = true;
    try {
      await client.heartbeat({ worker_id: opts.workerId, ...opts.state() }, { timeoutMs: opts.intervalMs * 2 });
      failures = 0;
    } catch (err) {
      failures++;
      log.warn({ err, failures, maxFailures }, 'heartbeat failed');
      if (err instanceof ProtocolError || failures >= maxFailures) {
        lost = true;
        opts.onLost(err as Error);
      }
    } finally {
      inFlight = false;
    }
  };
  const timer = setInterval(() => void beat(), opts.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
