/**
 * One training step's reduction: which worker owes which subtree partial sum,
 * what has arrived, and the fixed-order tree sum over [0, M) (tree-sum.ts),
 * done as partials arrive: a subtree whose sibling is already in is added to
 * it (left + right, as treeSum does) and climbs the tree, so the sum is ready
 * when the last partial lands and at most one buffer per tree level waits —
 * the same bits as one process summing all M micro-batch gradients, whatever
 * the partition or the arrival order. When a worker leaves owing
 * partials, `reassign` hands its ranges to others (cut into subtrees of the
 * same tree, so the sum is unchanged); each range is accepted once, from its
 * current owner, so nothing is lost or counted twice. Uploads are checked
 * before their payload is read.
 *
 * Knows nothing of gRPC; the service feeds it decoded uploads.
 */
import { Deferred } from '../shared/async/deferred.js';
import { AlreadyReceivedError, ProtocolError } from '../shared/errors.js';
import type { MicroStats } from '../shared/training/gradients.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import { addInto, splitPoint, type Range } from '../shared/training/tree-sum.js';
import type { IndexedStats } from '../shared/cluster/stats-json.js';
import type { Block } from './partition.js';

export interface ReducedStep {
  grad: Float32Array;
  stats: MicroStats[];
}

const key = (r: Range): string => `${r.lo}:${r.hi}`;
const fmt = (r: Range): string => `[${r.lo}, ${r.hi})`;

export class StepRound {
  /** Subtree -> its current owner, for every subtree still expected or received. */
  private readonly owner = new Map<string, { range: Range; workerId: string }>();
  /** Sums of complete subtrees not yet joined with their sibling, by range. */
  private readonly sums = new Map<string, Float32Array>();
  private readonly receivedFrom = new Map<string, string>();
  private readonly stats: (MicroStats | undefined)[];
  private readonly result = new Deferred<ReducedStep>();
  /** Resolves with the reduced gradient once the last partial arrives. */
  readonly done: Promise<ReducedStep> = this.result.promise;

  constructor(
    readonly phase: TrainPhase,
    readonly step: number,
    readonly microBatches: number,
    blocks: readonly Block[],
  ) {
    for (const b of blocks) for (const r of b.subtrees) this.owner.set(key(r), { range: r, workerId: b.workerId });
    this.stats = new Array<MicroStats | undefined>(microBatches).fill(undefined);
  }

  get complete(): boolean {
    return this.result.settled;
  }

  /** Workers that still owe a partial sum. */
  pendingWorkers(): Set<string> {
    const out = new Set<string>();
    for (const [k, o] of this.owner) if (!this.receivedFrom.has(k)) out.add(o.workerId);
    return out;
  }

  /** The subtrees `workerId` owes and has not delivered, in index order. */
  owedBy(workerId: string): Range[] {
    return [...this.owner].filter(([k, o]) => o.workerId === workerId && !this.receivedFrom.has(k)).map(([, o]) => o.range).sort((a, b) => a.lo - b.lo);
  }

  /**
   * Hands what `from` owes to `blocks` (cut from exactly those ranges by
   * partition()); returns the micro-batches moved.
   */
  reassign(from: string, blocks: readonly Block[]): number {
    const owed = this.owedBy(from);
    const moved = owed.reduce((n, r) => n + r.hi - r.lo, 0);
    const given = blocks.flatMap((b) => b.subtrees).reduce((n, r) => n + r.hi - r.lo, 0);
    if (given !== moved) throw new RangeError(`step ${this.step}: reassigning ${moved} micro-batches of ${from}, but the blocks cover ${given}`);
    for (const r of owed) this.owner.delete(key(r));
    for (const b of blocks) for (const r of b.subtrees) this.owner.set(key(r), { range: r, workerId: b.workerId });
    return moved;
  }

  /**
   * Throws unless `workerId` owes `range` now: AlreadyReceivedError for a
   * repeat of its own delivered upload (a retry whose first attempt landed),
   * ProtocolError otherwise.
   */
  checkUpload(workerId: string, range: Range | null): Range {
    const what = `upload of step ${this.step} (${this.phase}) from ${workerId}`;
    if (range === null) throw new ProtocolError(`${what}: expected a subtree range, got none`);
    const k = key(range);
    if (this.receivedFrom.get(k) === workerId) throw new AlreadyReceivedError(`${what}: range ${fmt(range)} was already received`);
    if (this.complete) throw new AlreadyReceivedError(`${what}: step ${this.step} is already reduced`);
    const o = this.owner.get(k);
    if (o === undefined || o.workerId !== workerId) {
      const mine = this.owedBy(workerId).map(fmt);
      throw new ProtocolError(`${what}: range ${fmt(range)} is not assigned to it: expected one of ${mine.length > 0 ? mine.join(' ') : '(none)'}`);
    }
    if (this.receivedFrom.has(k)) throw new ProtocolError(`${what}: range ${fmt(range)} was already received from ${this.receivedFrom.get(k)}`);
    return range;
  }

  /** Takes one partial sum (the round keeps and may overwrite `grad`); resolves `done` when it was the last. */
  accept(workerId: string, range: Range, grad: Float32Array, stats: readonly IndexedStats[]): void {
    this.checkUpload(workerId, range);
    const indices = stats.map((s) => s.index).sort((a, b) => a - b);
    const expected = Array.from({ length: range.hi - range.lo }, (_, i) => range.lo + i);
    if (indices.join(',') !== expected.join(',')) {
      throw new ProtocolError(`upload of step ${this.step} from ${workerId} ${fmt(range)}: stats expected for micro-batches [${expected}], got [${indices}]`);
    }
    this.receivedFrom.set(key(range), workerId);
    for (const s of stats) this.stats[s.index] = s.stats;
    this.climb(range, grad);
    if (this.receivedFrom.size === this.owner.size) this.finish();
  }

  fail(err: unknown): void {
    this.result.reject(err);
  }

  /** Joins `sum` (of `range`) with its sibling's while the sibling is in, going up the tree. */
  private climb(range: Range, sum: Float32Array): void {
    let r = range;
    let g = sum;
    for (;;) {
      const parent = parentOf(r, this.microBatches);
      if (parent === null) break;
      const mid = splitPoint(parent.lo, parent.hi);
      const isLeft = r.lo === parent.lo;
      const sibling = isLeft ? { lo: mid, hi: parent.hi } : { lo: parent.lo, hi: mid };
      const other = this.sums.get(key(sibling));
      if (other === undefined) break;
      this.sums.delete(key(sibling));
      // left + right, in that order, into the left buffer (both are the round's own).
      const [left, right] = isLeft ? [g, other] : [other, g];
      addInto(left, right);
      r = parent;
      g = left;
    }
    this.sums.set(key(r), g);
  }

  private finish(): void {
    const root = this.sums.get(key({ lo: 0, hi: this.microBatches }));
    if (root === undefined) {
      this.result.reject(new ProtocolError(`step ${this.step}: every partial arrived but they do not cover [0, ${this.microBatches}): ${[...this.sums.keys()].join(' ')}`));
      return;
    }
    this.result.resolve({ grad: root, stats: this.stats as MicroStats[] });
  }
}

/** The node of the reduction tree over [0, total) whose child is `r`; null for the root. */
export function parentOf(r: Range, total: number): Range | null {
  let node: Range = { lo: 0, hi: total };
  let parent: Range | null = null;
  while (node.lo !== r.lo || node.hi !== r.hi) {
    if (node.hi - node.lo <= 1 || r.lo < node.lo || r.hi > node.hi) throw new RangeError(`[${r.lo}, ${r.hi}) is not a subtree of the reduction tree over [0, ${total})`);
    const mid = splitPoint(node.lo, node.hi);
    parent = node;
    node = r.hi <= mid ? { lo: node.lo, hi: mid } : { lo: mid, hi: node.hi };
  }
  return parent;
}
