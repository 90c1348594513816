/**
 * Retry with exponential backoff, for connecting to an outside service (the
 * coordinator here; shared/control uses it for nats-server too). Pure timing
 * logic: knows nothing of what is being retried, logs nothing itself; the
 * caller turns the last failure into an error naming what was unreachable.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface BackoffOptions {
  /** Delay before the second attempt; doubles after each failure. */
  initialDelayMs: number;
  /** Cap on one delay. */
  maxDelayMs: number;
  /** Attempts in total, including the first. */
  maxAttempts: number;
  /** Stop early when this much time has passed since the first attempt. */
  maxWaitMs?: number;
}

export interface RetryReport {
  attempts: number;
  elapsedMs: number;
  lastError: unknown;
}

/** Delay after failed attempt `attempt` (1-based). */
export function backoffDelayMs(attempt: number, opts: BackoffOptions): number {
  return Math.min(opts.maxDelayMs, opts.initialDelayMs * 2 ** (attempt - 1));
}

/** Throws a RangeError naming the first bad option; call where options enter. */
export function validateBackoff(opts: BackoffOptions): void {
  const bad = (name: string, v: unknown, want: string) => new RangeError(`${name} must be ${want}, got ${String(v)}`);
  if (!(Number.isInteger(opts.maxAttempts) && opts.maxAttempts >= 1)) throw bad('maxAttempts', opts.maxAttempts, 'an integer >= 1');
  if (!(opts.initialDelayMs >= 0)) throw bad('initialDelayMs', opts.initialDelayMs, '>= 0');
  if (!(opts.maxDelayMs >= opts.initialDelayMs)) throw bad('maxDelayMs', opts.maxDelayMs, `>= initialDelayMs (${opts.initialDelayMs})`);
  if (opts.maxWaitMs !== undefined && !(opts.maxWaitMs > 0)) throw bad('maxWaitMs', opts.maxWaitMs, '> 0');
}

/**
 * Runs `attempt` until it resolves; after each failure waits and tries again.
 * When attempts or time run out, or `stopOn` says a failure will not heal by
 * waiting (a refused TLS handshake), throws `onExhausted(report)`.
 * `onRetry` is told of each failure that will be retried (for a warn log).
 */
export async function retryWithBackoff<T>(
  attempt: (n: number) => Promise<T>,
  opts: BackoffOptions & {
    onExhausted: (report: RetryReport) => Error;
    onRetry?: (report: RetryReport & { delayMs: number }) => void;
    stopOn?: (err: unknown) => boolean;
  },
): Promise<T> {
  validateBackoff(opts);
  const started = performance.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const elapsedMs = Math.round(performance.now() - started);
      const report = { attempts: n, elapsedMs, lastError: err };
      const outOfTime = opts.maxWaitMs !== undefined && elapsedMs >= opts.maxWaitMs;
      if (n >= opts.maxAttempts || outOfTime || opts.stopOn?.(err) === true) throw opts.onExhausted(report);
      // The last attempt may start at maxWaitMs and overrun it by its own duration.
      const delayMs = Math.min(backoffDelayMs(n, opts), (opts.maxWaitMs ?? Infinity) - elapsedMs);
      opts.onRetry?.({ ...report, delayMs });
      await sleep(delayMs);
    }
  }
}
