/**
 * "Something changed, look again": a wake-up for loops that wait on state
 * held elsewhere (members joined, a phase started, a worker heard the stop).
 * `next()` resolves on the next `wake()`, after `timeoutMs`, or rejects when
 * `signal` aborts; callers re-check their condition either way.
 */
export class Waiters {
  private readonly pending = new Set<() => void>();

  wake(): void {
    const all = [...this.pending];
    this.pending.clear();
    for (const w of all) w();
  }

  next(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(done);
        resolve();
      };
      const onAbort = (): void => {
        clearTimeout(timer);
        this.pending.delete(done);
        reject(signal!.reason);
      };
      const timer = setTimeout(done, timeoutMs);
      this.pending.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
