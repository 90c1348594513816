/**
 * One evaluation's results: each chunk's stats and predictions, accepted only
 * from the worker that currently owns the chunk and only once, assembled in
 * chunk order when the last arrives — so the metrics do not depend on who
 * computed what or when it arrived. When a worker leaves owing chunks,
 * `reassign` hands them to others (a recovery task, with its own seq).
 *
 * Knows nothing of gRPC; the service feeds it decoded results.
 */
import { Deferred } from '../shared/async/deferred.js';
import { AlreadyReceivedError, ProtocolError } from '../shared/errors.js';
import type { MicroStats } from '../shared/training/gradients.js';
import type { Range } from '../shared/training/tree-sum.js';
import type { EvalOutcome } from './executor.js';
import type { Block } from './partition.js';
import type { EvalTask } from './task-log.js';

export interface ChunkResult {
  index: number;
  stats: MicroStats;
  predictions: Int32Array;
}

export class EvalCollection {
  private readonly stats: (MicroStats | undefined)[];
  private readonly predictions: (Int32Array | undefined)[];
  private readonly owner: (string | undefined)[];
  private readonly from: (string | undefined)[];
  /** Seqs of the tasks of this evaluation: the first, then any recovery tasks. */
  private readonly seqs = new Set<number>();
  private received = 0;
  private readonly result = new Deferred<EvalOutcome>();
  readonly done: Promise<EvalOutcome> = this.result.promise;

  /** `onReceived` is told the chunks received so far after each accepted message (a progress bar's count). */
  constructor(
    readonly task: EvalTask,
    private readonly onReceived?: (received: number) => void,
  ) {
    const n = task.chunks.length;
    this.stats = new Array<MicroStats | undefined>(n).fill(undefined);
    this.predictions = new Array<Int32Array | undefined>(n).fill(undefined);
    this.owner = new Array<string | undefined>(n).fill(undefined);
    this.from = new Array<string | undefined>(n).fill(undefined);
    this.addBlocks(task.seq, task.blocks);
  }

  /** Whether `seq` is one of this evaluation's tasks. */
  has(seq: number): boolean {
    return this.seqs.has(seq);
  }

  /** Workers whose chunks are not all in. */
  pendingWorkers(): Set<string> {
    const out = new Set<string>();
    this.owner.forEach((w, i) => {
      if (w !== undefined && this.stats[i] === undefined) out.add(w);
    });
    return out;
  }

  /** The chunk ranges `workerId` owes, in order. */
  owedBy(workerId: string): Range[] {
    const out: Range[] = [];
    this.owner.forEach((w, i) => {
      if (w !== workerId || this.stats[i] !== undefined) return;
      const last = out[out.length - 1];
      if (last !== undefined && last.hi === i) last.hi = i + 1;
      else out.push({ lo: i, hi: i + 1 });
    });
    return out;
  }

  /** Hands the chunks `blocks` cover (owed by a worker that left) to their new owners, under task `seq`. */
  reassign(seq: number, blocks: readonly Block[]): void {
    this.addBlocks(seq, blocks);
  }

  /**
   * Takes a worker's results; returns how many were new. Every result is
   * checked before any is kept: an index outside the evaluation, an index
   * repeated in the message, more results than chunks, or one not assigned
   * to the worker is a ProtocolError naming the worker, the task and the
   * index (the worker's chunks are then redone by others once it is
   * gone, as for any refusal). A repeat of results already received from the
   * same worker (a retry) is AlreadyReceivedError.
   */
  accept(workerId: string, seq: number, results: readonly ChunkResult[]): number {
    const what = `eval results of task ${seq} from ${workerId}`;
    if (!this.seqs.has(seq)) throw new ProtocolError(`${what}: expected one of tasks ${[...this.seqs].join(', ')}`);
    this.checkIndices(what, results);
    const fresh = results.filter((r) => !(this.from[r.index] === workerId && this.stats[r.index] !== undefined));
    if (fresh.length === 0 && results.length > 0) throw new AlreadyReceivedError(`${what}: every chunk was already received`);
    if (this.result.settled) throw new ProtocolError(`${what}: the evaluation is already complete`);
    for (const r of fresh) {
      if (this.owner[r.index] !== workerId) {
        throw new ProtocolError(`${what}: chunk ${r.index} is not assigned to it: expected chunks in ${this.owedBy(workerId).map((x) => `[${x.lo}, ${x.hi})`).join(' ') || '(none)'}`);
      }
      if (this.stats[r.index] !== undefined) throw new ProtocolError(`${what}: chunk ${r.index} was already received from ${this.from[r.index]}`);
    }
    for (const r of fresh) {
      this.stats[r.index] = r.stats;
      this.predictions[r.index] = r.predictions;
      this.from[r.index] = workerId;
      this.received++;
    }
    if (this.received === this.stats.length) {
      this.result.resolve({ stats: this.stats as MicroStats[], predictions: this.predictions as Int32Array[] });
    }
    if (fresh.length > 0) this.onReceived?.(this.received);
    return fresh.length;
  }

  /** Each result names a chunk of this evaluation, once: ProtocolError naming the index otherwise. */
  private checkIndices(what: string, results: readonly ChunkResult[]): void {
    const n = this.owner.length;
    if (results.length > n) throw new ProtocolError(`${what}: expected at most ${n} results (the evaluation's chunks), got ${results.length}`);
    const seen = new Set<number>();
    for (const r of results) {
      if (!Number.isInteger(r.index) || r.index < 0 || r.index >= n) {
        throw new ProtocolError(`${what}: chunk index ${r.index} is outside the evaluation's chunks [0, ${n})`);
      }
      if (seen.has(r.index)) throw new ProtocolError(`${what}: chunk ${r.index} is repeated in the results (index ${r.index} appears twice)`);
      seen.add(r.index);
    }
  }

  fail(err: unknown): void {
    this.result.reject(err);
  }

  private addBlocks(seq: number, blocks: readonly Block[]): void {
    this.seqs.add(seq);
    for (const b of blocks) for (const r of b.ranges) for (let i = r.lo; i < r.hi; i++) this.owner[i] = b.workerId;
  }
}
