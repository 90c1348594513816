/**
 * The coordinator's sequence of tasks: each training step, each evaluation
 * and the final stop is one task with a `seq` that only grows. A worker
 * long-polls for "the first task after seq n" and answers with that task's
 * seq next time, so it never misses or repeats one; a worker that fell far
 * behind gets the oldest task still kept and resynchronises by fetching the
 * state (whose header names the seq it includes). Seqs are also reserved,
 * without a task, to mark a phase's start in that state.
 *
 * Knows nothing of gRPC or of how tasks are computed.
 */
import { Waiters } from '../shared/async/waiters.js';
import type { GlobalCounts } from '../shared/model/losses.js';
import type { DatasetName } from '../shared/training/batches.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { AuditPlan } from './audit-plan.js';
import type { MicroBatchWork } from './executor.js';
import type { Block } from './partition.js';

export interface TrainTask {
  kind: 'train';
  seq: number;
  phase: TrainPhase;
  step: number;
  dataset: DatasetName;
  microBatchSize: number;
  microBatches: readonly MicroBatchWork[];
  counts: GlobalCounts;
  /** Who computes what; a departed worker's blocks are withdrawn when they are handed over. */
  blocks: readonly Block[];
  membershipVersion: number;
  /** A recovery task: `blocks` hand over micro-batches of a step already sent, which a departed worker owed. */
  recovery: boolean;
  /** The step's gradient audit (first task only; recovery tasks do not repeat it). */
  audit?: AuditPlan;
}

export interface EvalTask {
  kind: 'eval';
  seq: number;
  phase: TrainPhase;
  /** Steps the evaluated replica has completed in its phase. */
  step: number;
  dataset: DatasetName;
  chunks: readonly (readonly number[])[];
  blocks: readonly Block[];
  membershipVersion: number;
  /** A recovery task: `blocks` hand over chunks a departed worker owed. */
  recovery: boolean;
}

export interface StopTask {
  kind: 'stop';
  seq: number;
  /** 'stopping': the coordinator stops before the end (signal) and may come back; workers wait for it. */
  reason: 'done' | 'failed' | 'stopping';
  detail: string;
  membershipVersion: number;
}

export type Task = TrainTask | EvalTask | StopTask;
type Unsequenced<T> = T extends Task ? Omit<T, 'seq'> : never;

/** Tasks kept for late pollers; older ones are dropped (a poller that far behind resyncs). */
const KEEP = 32;

export class TaskLog {
  private last = 0;
  private readonly tasks: Task[] = [];
  private readonly pushed = new Waiters();

  /** The seq of the newest task or reserved mark. */
  get lastSeq(): number {
    return this.last;
  }

  /** Takes a seq without a task (a phase start), so later tasks come after it. */
  reserve(): number {
    return ++this.last;
  }

  push<T extends Task>(task: Unsequenced<T>): T {
    const full = { ...task, seq: ++this.last } as unknown as T;
    this.tasks.push(full);
    if (this.tasks.length > KEEP) this.tasks.shift();
    this.pushed.wake();
    return full;
  }

  firstAfter(seq: number): Task | undefined {
    return this.tasks.find((t) => t.seq > seq);
  }

  /** The first task after `seq`, waiting up to `pollMs` for one; null when none came (or the caller left). */
  async waitAfter(seq: number, pollMs: number, signal: AbortSignal): Promise<Task | null> {
    const deadline = performance.now() + pollMs;
    for (;;) {
      const task = this.firstAfter(seq);
      if (task !== undefined) return task;
      const left = deadline - performance.now();
      if (left <= 0 || signal.aborted) return null;
      await this.pushed.next(left, signal).catch(() => undefined);
    }
  }
}
