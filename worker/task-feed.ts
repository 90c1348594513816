/**
 * The worker's incoming tasks: one long-poll (NextAssignment) always open in
 * the background, decoded tasks queued in seq order, so a task that arrives
 * while the worker waits for a reduced gradient — a recovery task handing it
 * micro-batches of the same step — is seen at once. `restartAfter(seq)`
 * starts over after a fetched state's seq (the poll in flight is cancelled). A refusal or an outage past the retry deadline is kept and thrown
 * by the next `next()`/`wait()`, so the loop ends with the real cause.
 *
 * Knows nothing of training.
 */
import { Waiters } from '../shared/async/waiters.js';
import type { Logger } from '../shared/log.js';
import { decodeAssignment, type WorkerTask } from './assignment.js';
import type { CoordinatorLink } from './coordinator-link.js';

export type QueuedTask = Exclude<WorkerTask, { kind: 'idle' }>;

export class TaskFeed {
  private queue: QueuedTask[] = [];
  private afterSeq: number;
  private generation = 0;
  /** Cancels the long poll of the current generation. */
  private polling = new AbortController();
  private error: unknown = null;
  private stopped = false;
  private readonly arrived = new Waiters();
  private readonly stopOrder = new AbortController();
  private readonly log: Logger;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly link: CoordinatorLink,
    private readonly workerId: string,
    afterSeq: number,
    log: Logger,
  ) {
    this.afterSeq = afterSeq;
    this.log = log.child({ component: 'task-feed' });
  }

  /** Aborted once a stop order is queued: calls retrying a lost coordinator can give up on the step. */
  get stopSeen(): AbortSignal {
    return this.stopOrder.signal;
  }

  start(): void {
    this.loop = this.poll(this.generation);
  }

  /**
   * Forget queued tasks and continue after `seq` (a fetched state includes
   * everything up to it): the long poll in flight is cancelled and a new one
   * starts at once.
   */
  restartAfter(seq: number): void {
    this.generation++;
    this.polling.abort(new Error('task feed restarted'));
    this.polling = new AbortController();
    this.queue = [];
    this.afterSeq = seq;
    if (!this.stopped && this.error === null) this.loop = this.poll(this.generation);
  }

  /** The next task, waiting for one; throws the feed's error if it failed. */
  async next(signal?: AbortSignal): Promise<QueuedTask> {
    await this.wait(signal);
    return this.queue.shift()!;
  }

  /** The next task without taking it, if one is queued. */
  peek(): QueuedTask | undefined {
    if (this.error !== null && this.queue.length === 0) throw this.error;
    return this.queue[0];
  }

  take(): QueuedTask | undefined {
    return this.queue.shift();
  }

  /** Resolves once a task is queued; rejects with the feed's error, or when `signal` aborts. */
  async wait(signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (this.queue.length > 0) return;
      if (this.error !== null) throw this.error;
      signal?.throwIfAborted();
      await this.arrived.next(60_000, signal);
    }
  }

  /** Stops polling; the call in flight is cancelled. */
  stop(): void {
    this.stopped = true;
    this.generation++;
    this.polling.abort(new Error('task feed stopped'));
    this.arrived.wake();
  }

  private async poll(gen: number): Promise<void> {
    while (!this.stopped && gen === this.generation) {
      const after = this.afterSeq;
      const cancel = this.polling.signal;
      try {
        const a = await this.link.nextAssignment({ worker_id: this.workerId, after_seq: after }, cancel);
        if (gen !== this.generation || this.stopped) return;
        const task = decodeAssignment(a);
        if (task.kind === 'idle' || task.seq <= this.afterSeq) continue;
        this.afterSeq = task.seq;
        this.queue.push(task);
        this.arrived.wake();
        if (task.kind === 'stop') {
          this.stopOrder.abort(new Error(`stop order ${task.seq} received (${task.reason})`));
          return;
        }
      } catch (err) {
        if (this.stopped || gen !== this.generation) return;
        this.log.debug({ err }, 'task feed stopped');
        this.error = err;
        this.arrived.wake();
        return;
      }
    }
  }

  /** Waits for the background poll to end (after stop(), once its call returns). */
  async ended(): Promise<void> {
    await this.loop;
  }
}
