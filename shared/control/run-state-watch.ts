/**
 * Follows one run's state as an async iterator: the current revision first,
 * then each later one in order, never one twice or out of order (revisions
 * only grow). nats.js watches are ordered consumers that a server restart can
 * leave silent, so on every reconnect this stops the old watch and opens a new
 * one resuming after the last revision yielded; with the bucket's history a
 * change made while disconnected is still seen.
 *
 * Knows nothing of what the states mean; validation is run-state-schema.ts.
 */
import type { KV, KvEntry, QueuedIterator } from 'nats';
import { UnreachableError } from '../errors.js';
import type { Logger } from '../log.js';
import { retryTransient } from '../async/retry.js';
import type { ControlConnection } from './connect.js';
import { decodeRunState, type VersionedRunState } from './run-state-schema.js';

/** How long a watch keeps trying to re-open after a reconnect before it fails. */
const REOPEN_DEADLINE_MS = 60_000;

export class RunStateWatch implements AsyncIterableIterator<VersionedRunState> {
  private readonly queue: VersionedRunState[] = [];
  private waiter: { resolve: (r: IteratorResult<VersionedRunState>) => void; reject: (e: unknown) => void } | null = null;
  private failure: { err: unknown } | null = null;
  private stopped = false;
  private lastRevision = 0;
  private iter: QueuedIterator<KvEntry> | null = null;
  private pump: Promise<void> = Promise.resolve();
  /** Reopenings run one after another; each handles its own failure. */
  private reopening: Promise<void> = Promise.resolve();
  private readonly offStatus: () => void;

  private constructor(
    conn: ControlConnection,
    private readonly kv: KV,
    private readonly key: string,
    private readonly log: Logger,
  ) {
    this.offStatus = conn.onStatus((s) => {
      if (s.type === 'reconnect') this.reopening = this.reopening.then(() => this.reopen());
    });
  }

  static async start(conn: ControlConnection, kv: KV, key: string, log: Logger): Promise<RunStateWatch> {
    const w = new RunStateWatch(conn, kv, key, log);
    try {
      await w.open();
    } catch (err) {
      w.offStatus();
      throw err;
    }
    return w;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<VersionedRunState>> {
    const value = this.queue.shift();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.failure !== null) return Promise.reject(this.failure.err);
    if (this.stopped) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  async return(): Promise<IteratorResult<VersionedRunState>> {
    await this.stop();
    return { value: undefined, done: true };
  }

  /** Ends the watch; a pending `next()` resolves as done. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.offStatus();
    this.iter?.stop();
    await this.reopening;
    await this.pump;
    this.settle({ value: undefined, done: true });
  }

  private async open(): Promise<void> {
    const resume = this.lastRevision > 0 ? { resumeFromRevision: this.lastRevision + 1 } : {};
    const iter = await this.kv.watch({ key: this.key, ...resume });
    if (this.stopped) {
      iter.stop();
      return;
    }
    this.iter = iter;
    this.pump = this.drain(iter);
  }

  private async drain(iter: QueuedIterator<KvEntry>): Promise<void> {
    try {
      for await (const e of iter) {
        if (e.revision <= this.lastRevision) continue;
        const v = decodeRunState(e);
        this.lastRevision = e.revision;
        if (v !== null) this.offer(v);
      }
    } catch (err) {
      if (!this.stopped) this.fail(err);
    }
  }

  private async reopen(): Promise<void> {
    if (this.stopped) return;
    this.log.info({ lastRevision: this.lastRevision }, 'reconnected; re-reading run state');
    this.iter?.stop();
    await this.pump;
    try {
      // JetStream may answer a little after the connection is back (or the server may flap): keep trying a while.
      await retryTransient(() => this.open(), {
        deadlineMs: REOPEN_DEADLINE_MS,
        initialDelayMs: 100,
        maxDelayMs: 2_000,
        retryable: () => !this.stopped,
        onRetry: ({ attempt, err }) => this.log.warn({ attempt, err }, 'run state watch not reopened yet; retrying'),
        onGiveUp: ({ attempts, elapsedMs, err }) =>
          new UnreachableError(`run state watch of ${this.key} could not be reopened after ${attempts} attempts in ${elapsedMs} ms`, { cause: err }),
      });
    } catch (err) {
      this.fail(err);
    }
  }

  private offer(v: VersionedRunState): void {
    if (this.waiter !== null) this.settle({ value: v, done: false });
    else this.queue.push(v);
  }

  private fail(err: unknown): void {
    this.log.error({ err }, 'run state watch failed');
    this.failure = { err };
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  private settle(r: IteratorResult<VersionedRunState>): void {
    const w = this.waiter;
    this.waiter = null;
    w?.resolve(r);
  }
}
