/**
 * Retrying an idempotent call across a transient outage (a coordinator or
 * nats-server restarting): exponential backoff with full jitter, so workers
 * that lost the same server do not come back in lockstep, bounded by a
 * deadline after which the last error is thrown (wrapped by `onGiveUp`).
 * Pure timing: knows nothing of what is retried; the caller says which
 * errors are transient.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  /** Give up once this long has passed since the first failure. */
  deadlineMs: number;
  /** Upper bound of the first delay; doubles per failure up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** True for errors worth another attempt; others are thrown at once. */
  retryable: (err: unknown) => boolean;
  onRetry?: (info: { attempt: number; delayMs: number; elapsedMs: number; err: unknown }) => void;
  /** The error thrown when the deadline passes (default: the last error). */
  onGiveUp?: (info: { attempts: number; elapsedMs: number; err: unknown }) => Error;
  signal?: AbortSignal;
  /** Random source in [0, 1), for tests. */
  random?: () => number;
}

/** The delay after failure `attempt` (1-based): uniform in [0, min(max, initial * 2^(attempt-1))]. */
export function jitteredDelayMs(attempt: number, o: { initialDelayMs: number; maxDelayMs: number; random?: () => number }): number {
  const cap = Math.min(o.maxDelayMs, o.initialDelayMs * 2 ** Math.min(30, attempt - 1));
  return Math.round(cap * (o.random ?? Math.random)());
}

export async function retryTransient<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const initialDelayMs = o.initialDelayMs ?? 100;
  const maxDelayMs = o.maxDelayMs ?? 2_000;
  let firstFailure: number | null = null;
  for (let attempt = 1; ; attempt++) {
    o.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (err) {
      if (!o.retryable(err) || o.signal?.aborted) throw err;
      firstFailure ??= performance.now();
      const elapsedMs = Math.round(performance.now() - firstFailure);
      if (elapsedMs >= o.deadlineMs) throw o.onGiveUp?.({ attempts: attempt, elapsedMs, err }) ?? err;
      const delayMs = Math.min(jitteredDelayMs(attempt, { initialDelayMs, maxDelayMs, ...(o.random && { random: o.random }) }), o.deadlineMs - elapsedMs);
      o.onRetry?.({ attempt, delayMs, elapsedMs, err });
      await sleep(delayMs, undefined, o.signal ? { signal: o.signal } : undefined);
    }
  }
}
