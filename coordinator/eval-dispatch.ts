/**
 * The evaluations of a distributed run: each one's chunks cut into shares
 * over the live workers (weighted by their measured speed) and published as a
 * task for their long-polls, the results collected in chunk order
 * (eval-collection.ts), and the chunks a leaving worker still owed handed to
 * the live workers in a recovery task. One evaluation runs at a time.
 *
 * Knows nothing of gRPC or NATS; the executor lends it the live-worker wait.
 */
import { ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { Range } from '../shared/training/tree-sum.js';
import { EvalCollection } from './eval-collection.js';
import type { EvalOutcome, EvalWork } from './executor.js';
import type { Membership } from './membership.js';
import { partition, type Block } from './partition.js';
import type { EvalTask, TaskLog } from './task-log.js';
import type { WorkerSpeeds } from './worker-speeds.js';

export interface EvalDispatchDeps {
  tasks: TaskLog;
  membership: Membership;
  speeds: WorkerSpeeds;
  log: Logger;
  /** The live workers' ids, never empty (waits for one). */
  liveIds: () => Promise<string[]>;
  /** Hands a left worker's share to the live workers (the executor's recovery, steps first). */
  recover: (workerId: string) => void;
}

export class EvalDispatch {
  private tasks: EvalTask[] = [];
  private run: EvalCollection | null = null;

  constructor(private readonly deps: EvalDispatchDeps) {}

  /** The running evaluation, if any. */
  current(): EvalCollection | null {
    return this.run;
  }

  /** Runs one evaluation at `step` of its phase over the live workers; resolves with its results in chunk order. */
  async evaluate(work: EvalWork, step: number): Promise<EvalOutcome> {
    const { tasks, membership, speeds } = this.deps;
    if (work.chunks.length === 0) return { stats: [], predictions: [] };
    const ids = await this.deps.liveIds();
    const blocks = partition(work.chunks.length, ids, { weights: speeds.weights(ids) });
    const task = tasks.push<EvalTask>({
      kind: 'eval', phase: work.phase, step, dataset: work.dataset, chunks: work.chunks, blocks, membershipVersion: membership.version, recovery: false,
    });
    this.tasks = [task];
    const run = new EvalCollection(task, work.onChunksDone);
    this.run = run;
    for (const b of blocks) if (membership.get(b.workerId)?.status === 'left') this.deps.recover(b.workerId);
    try {
      return await run.done;
    } finally {
      this.run = null;
    }
  }

  /** The collection results of task `seq` go to; a ProtocolError naming the tasks running when there is none. */
  collectionFor(workerId: string, seq: number): EvalCollection {
    const r = this.run;
    if (r === null || !r.has(seq)) throw new ProtocolError(`eval results of task ${seq} from ${workerId}: expected task ${this.tasks.map((t) => t.seq).join(' or ') || '(none running)'}`);
    return r;
  }

  /** The chunk ranges `workerId` still owes the running evaluation. */
  owedBy(workerId: string): Range[] {
    return this.run?.owedBy(workerId) ?? [];
  }

  fail(err: Error): void {
    this.run?.fail(err);
  }

  /**
   * Hands what `workerId` owes `run` (the evaluation that was running when it
   * left) to the live workers in a recovery task; nothing if that evaluation
   * has ended or the chunks arrived meanwhile.
   */
  async recover(run: EvalCollection | null, workerId: string): Promise<void> {
    if (run === null || run.owedBy(workerId).length === 0) return;
    const ids = await this.deps.liveIds();
    const owed = run.owedBy(workerId);
    if (owed.length === 0 || this.run !== run) return;
    const first = this.tasks[0]!;
    const blocks = partition(first.chunks.length, ids, { items: owed, weights: this.deps.speeds.weights(ids) });
    withdraw(this.tasks, workerId);
    const task = this.deps.tasks.push<EvalTask>({ ...first, blocks, membershipVersion: this.deps.membership.version, recovery: true });
    run.reassign(task.seq, blocks);
    this.tasks.push(task);
    this.deps.log.warn({ from: workerId, dataset: first.dataset, chunks: owed.reduce((n, r) => n + r.hi - r.lo, 0), to: describeBlocks(blocks), seq: task.seq }, 'eval chunks reassigned');
  }
}

/** Takes `workerId`'s blocks out of tasks already sent, so a restarted worker with that id does not redo them. */
export function withdraw(tasks: readonly { blocks: readonly Block[] }[], workerId: string): void {
  for (const t of tasks) t.blocks = t.blocks.filter((b) => b.workerId !== workerId);
}

/** Each worker's ranges, for logs: { w1: '[0, 4) [8, 10)' }. */
export function describeBlocks(blocks: readonly Block[]): Record<string, string> {
  const fmt = (rs: readonly Range[]): string => rs.map((r) => `[${r.lo}, ${r.hi})`).join(' ');
  return Object.fromEntries(blocks.map((b) => [b.workerId, fmt(b.ranges)]));
}
