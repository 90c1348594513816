/**
 * Reduced gradients to be pulled, by (phase, step), from the moment their
 * reduction starts: a source serves each chunk once it is final, so a pull
 * streams the gradient while it is still being summed. A pull for a step
 * not started yet waits for it; a pull for a step no longer kept is refused,
 * and the worker resynchronises from the state instead. An entry goes once
 * every worker expected to pull it has, or when newer ones push it out
 * (`keep`); the newest entry always stays, for a worker that joins late.
 *
 * Knows nothing of gRPC.
 */
import { ProtocolError } from '../shared/errors.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import { Waiters } from '../shared/async/waiters.js';

/** A reduced gradient, whole or still being summed (a StepRound). */
export interface ReducedSource {
  /** The gradient; chunk i is final once whenReady(i) resolves. */
  readonly grad: Float32Array;
  readonly chunkBytes: number;
  readonly chunkCount: number;
  whenReady(i: number, signal?: AbortSignal): Promise<void>;
  /** The bytes of chunk i and their CRC-32 (call once chunk i is ready). */
  chunkBytesOf(i: number): Uint8Array;
  chunkCrc(i: number): number;
}

interface Entry {
  order: number;
  label: string;
  source: ReducedSource;
  microBatches: number;
  pullers: Set<string>;
}

const PHASE_ORDER: Record<TrainPhase, number> = { pretrain: 0, finetune: 1 };

/** A total order over (phase, step). */
export function stepOrder(phase: TrainPhase, step: number): number {
  return PHASE_ORDER[phase] * 2 ** 40 + step;
}

export class ReducedStore {
  private readonly entries = new Map<number, Entry>();
  private readonly arrived = new Waiters();
  private readonly pulls = new Waiters();
  private newest = -1;

  constructor(private readonly keep = 4) {}

  put(phase: TrainPhase, step: number, microBatches: number, source: ReducedSource, pullers: Iterable<string>): void {
    const order = stepOrder(phase, step);
    this.entries.set(order, { order, label: `${phase} step ${step}`, source, microBatches, pullers: new Set(pullers) });
    this.newest = Math.max(this.newest, order);
    const sorted = [...this.entries.keys()].sort((a, b) => a - b);
    while (sorted.length > this.keep) this.entries.delete(sorted.shift()!);
    this.arrived.wake();
  }

  /** The reduced gradient of (phase, step) and its M, waiting while its reduction has not started. */
  async get(phase: TrainPhase, step: number, signal: AbortSignal): Promise<{ source: ReducedSource; microBatches: number }> {
    const order = stepOrder(phase, step);
    for (;;) {
      const e = this.entries.get(order);
      if (e !== undefined) return { source: e.source, microBatches: e.microBatches };
      if (order <= this.newest) {
        throw new ProtocolError(`reduced gradient of ${phase} step ${step} is no longer kept (oldest kept: ${this.describeOldest()}); fetch the state`);
      }
      await this.arrived.next(60_000, signal);
    }
  }

  /** Notes that `workerId` has the step; drops the entry when nobody else needs it. */
  pulled(phase: TrainPhase, step: number, workerId: string): void {
    const order = stepOrder(phase, step);
    const e = this.entries.get(order);
    if (e === undefined) return;
    e.pullers.delete(workerId);
    if (e.pullers.size === 0 && order !== this.newest) this.entries.delete(order);
    this.pulls.wake();
  }

  /** A worker that left will not pull: stop waiting for it. */
  forget(workerId: string): void {
    for (const e of [...this.entries.values()]) {
      e.pullers.delete(workerId);
      if (e.pullers.size === 0 && e.order !== this.newest) this.entries.delete(e.order);
    }
    this.pulls.wake();
  }

  /**
   * Waits until every expected worker has pulled (phase, step), at most
   * `timeoutMs`; true when they all did. The coordinator holds its own update
   * back meanwhile, so the downloads do not wait behind it for the thread.
   */
  async pulledByAll(phase: TrainPhase, step: number, timeoutMs: number): Promise<boolean> {
    const order = stepOrder(phase, step);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const e = this.entries.get(order);
      if (e === undefined || e.pullers.size === 0) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await this.pulls.next(left);
    }
  }

  clear(): void {
    this.entries.clear();
  }

  private describeOldest(): string {
    const oldest = Math.min(...this.entries.keys());
    return this.entries.get(oldest)?.label ?? 'none';
  }
}
