/**
 * One evaluation task's results: each chunk's stats and predictions, accepted
 * only from the worker whose block holds the chunk and only once, assembled in
 * chunk order when the last arrives — so the metrics do not depend on who
 * computed what or when it arrived.
 *
 * Knows nothing of gRPC; the service feeds it decoded results.
 */
import { ProtocolError } from '../shared/errors.js';
import type { MicroStats } from '../shared/training/gradients.js';
import type { EvalOutcome } from './executor.js';
import type { EvalTask } from './task-log.js';

export interface ChunkResult {
  index: number;
  stats: MicroStats;
  predictions: Int32Array;
}

export class EvalCollection {
  private readonly stats: (MicroStats | undefined)[];
  private readonly predictions: (Int32Array | undefined)[];
  private received = 0;
  private settled = false;
  private resolveDone!: (o: EvalOutcome) => void;
  private rejectDone!: (err: unknown) => void;
  readonly done: Promise<EvalOutcome>;

  constructor(readonly task: EvalTask) {
    this.stats = new Array<MicroStats | undefined>(task.chunks.length).fill(undefined);
    this.predictions = new Array<Int32Array | undefined>(task.chunks.length).fill(undefined);
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined);
  }

  /** Workers whose chunks are not all in. */
  pendingWorkers(): Set<string> {
    const out = new Set<string>();
    for (const b of this.task.blocks) {
      for (let i = b.range.lo; i < b.range.hi; i++) if (this.stats[i] === undefined) out.add(b.workerId);
    }
    return out;
  }

  accept(workerId: string, results: readonly ChunkResult[]): number {
    const what = `eval results of task ${this.task.seq} from ${workerId}`;
    if (this.settled) throw new ProtocolError(`${what}: the evaluation is already complete`);
    const block = this.task.blocks.find((b) => b.workerId === workerId);
    for (const r of results) {
      if (block === undefined || r.index < block.range.lo || r.index >= block.range.hi) {
        const expected = block === undefined ? '(none)' : `[${block.range.lo}, ${block.range.hi})`;
        throw new ProtocolError(`${what}: chunk ${r.index} is not assigned to it: expected chunks in ${expected}`);
      }
      if (this.stats[r.index] !== undefined) throw new ProtocolError(`${what}: chunk ${r.index} was already received`);
    }
    for (const r of results) {
      this.stats[r.index] = r.stats;
      this.predictions[r.index] = r.predictions;
      this.received++;
    }
    if (this.received === this.stats.length) {
      this.settled = true;
      this.resolveDone({ stats: this.stats as MicroStats[], predictions: this.predictions as Int32Array[] });
    }
    return results.length;
  }

  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectDone(err);
  }
}
