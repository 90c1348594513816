/**
 * One training step's reduction: which worker owes which subtree partial sum,
 * what has arrived, and, once every partial is in, the fixed-order tree sum
 * over [0, M) (tree-sum.ts) — the same bits as one process summing all M
 * micro-batch gradients, whatever the partition. Uploads are checked here
 * before their payload is read: the range must be assigned to that worker and
 * not yet received; stats must cover exactly the range's micro-batches.
 *
 * Knows nothing of gRPC; the service feeds it decoded uploads.
 */
import { ProtocolError } from '../shared/errors.js';
import type { MicroStats } from '../shared/training/gradients.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import { treeSum, type Range } from '../shared/training/tree-sum.js';
import type { IndexedStats } from '../shared/cluster/stats-json.js';
import type { Block } from './partition.js';

export interface ReducedStep {
  grad: Float32Array;
  stats: MicroStats[];
}

const key = (r: Range): string => `${r.lo}:${r.hi}`;

export class StepReduction {
  private readonly owner = new Map<string, string>();
  private readonly partials = new Map<string, Float32Array>();
  private readonly stats: (MicroStats | undefined)[];
  private settled = false;
  private resolveDone!: (r: ReducedStep) => void;
  private rejectDone!: (err: unknown) => void;
  /** Resolves with the reduced gradient once the last partial arrives. */
  readonly done: Promise<ReducedStep>;

  constructor(
    readonly phase: TrainPhase,
    readonly step: number,
    readonly microBatches: number,
    blocks: readonly Block[],
  ) {
    for (const b of blocks) for (const r of b.subtrees) this.owner.set(key(r), b.workerId);
    this.stats = new Array<MicroStats | undefined>(microBatches).fill(undefined);
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined); // observed by the executor; never an unhandled rejection
  }

  get complete(): boolean {
    return this.settled;
  }

  /** Workers that still owe a partial sum. */
  pendingWorkers(): Set<string> {
    const out = new Set<string>();
    for (const [k, w] of this.owner) if (!this.partials.has(k)) out.add(w);
    return out;
  }

  /** Throws ProtocolError unless `workerId` owes `range` now. */
  checkUpload(workerId: string, range: Range | null): Range {
    const what = `upload of step ${this.step} (${this.phase}) from ${workerId}`;
    if (range === null) throw new ProtocolError(`${what}: expected a subtree range, got none`);
    if (this.settled) throw new ProtocolError(`${what}: step ${this.step} is already reduced`);
    const owner = this.owner.get(key(range));
    if (owner !== workerId) {
      const mine = [...this.owner].filter(([, w]) => w === workerId).map(([k]) => `[${k.replace(':', ', ')})`);
      throw new ProtocolError(`${what}: range [${range.lo}, ${range.hi}) is not assigned to it: expected one of ${mine.length > 0 ? mine.join(' ') : '(none)'}`);
    }
    if (this.partials.has(key(range))) throw new ProtocolError(`${what}: range [${range.lo}, ${range.hi}) was already received`);
    return range;
  }

  /** Takes one partial sum; reduces when it was the last. */
  accept(workerId: string, range: Range, grad: Float32Array, stats: readonly IndexedStats[]): void {
    this.checkUpload(workerId, range);
    const indices = stats.map((s) => s.index).sort((a, b) => a - b);
    const expected = Array.from({ length: range.hi - range.lo }, (_, i) => range.lo + i);
    if (indices.join(',') !== expected.join(',')) {
      throw new ProtocolError(`upload of step ${this.step} from ${workerId} [${range.lo}, ${range.hi}): stats expected for micro-batches [${expected}], got [${indices}]`);
    }
    this.partials.set(key(range), grad);
    for (const s of stats) this.stats[s.index] = s.stats;
    if (this.partials.size === this.owner.size) this.reduce();
  }

  fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.rejectDone(err);
  }

  private reduce(): void {
    const leaf = (i: number): Float32Array => {
      throw new ProtocolError(`step ${this.step}: micro-batch ${i} is in no uploaded subtree`);
    };
    const grad = treeSum({ lo: 0, hi: this.microBatches }, leaf, this.partials);
    this.settled = true;
    this.resolveDone({ grad, stats: this.stats as MicroStats[] });
  }
}
