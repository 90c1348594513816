/**
 * The worker's heartbeat: a Heartbeat call every interval with its step and
 * status, from the main thread, which never computes (the replica runs in a
 * thread of its own), so beats keep coming however long a share takes. A
 * refusal saying the coordinator no longer knows this worker (it was marked
 * left, or the coordinator restarted) is reported once through `onLost`, so
 * the worker registers again; an unreachable coordinator is logged (once per
 * outage) and beats go on — the calls that need it decide when to give up.
 *
 * Knows nothing of training.
 */
import { NotRegisteredError, UnreachableError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { CoordinatorLink } from './coordinator-link.js';

export type WorkerStatus = 'joining' | 'training' | 'draining' | 'stopped' | 'failed';

export interface Heartbeat {
  stop(): void;
}

export function startHeartbeat(
  link: CoordinatorLink,
  opts: {
    workerId: string;
    intervalMs: number;
    log: Logger;
    state: () => { step: number; status: WorkerStatus };
    onLost: (err: NotRegisteredError) => void;
  },
): Heartbeat {
  const log = opts.log.child({ component: 'heartbeat' });
  let inFlight = false;
  let lost = false;
  let failing = false;
  const beat = async (): Promise<void> => {
    if (inFlight || lost) return;
    inFlight = true;
    try {
      await link.heartbeat({ worker_id: opts.workerId, ...opts.state() }, Math.max(1_000, opts.intervalMs * 2));
      if (failing) log.info('heartbeat answered again');
      failing = false;
    } catch (err) {
      if (err instanceof NotRegisteredError) {
        lost = true;
        opts.onLost(err);
      } else if (!failing) {
        failing = true;
        if (err instanceof UnreachableError) log.warn({ err }, 'heartbeat failed; coordinator unreachable');
        else log.warn({ err }, 'heartbeat failed');
      }
    } finally {
      inFlight = false;
    }
  };
  const timer = setInterval(() => void beat(), opts.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
