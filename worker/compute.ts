/**
 * A worker's computation on its replica: the gradients of the micro-batches it
 * was given, pre-summed over the subtrees of the reduction tree it owns whole
 * as they are computed, and evaluation chunks. Used in-process by `bertfleet train` and behind gRPC
 * by `bertfleet worker`; the numbers are the same either way.
 */
import type { BertConfig } from '../shared/model/config.js';
import type { GlobalCounts } from '../shared/model/losses.js';
import { sourceOf, type DatasetName, type RunDatasets } from '../shared/training/batches.js';
import { finetuneClassWeights, type ClassWeighting } from '../shared/training/class-weights.js';
import { microBatchEval, microBatchGradient, type MicroStats } from '../shared/training/gradients.js';
import type { Replica } from '../shared/training/replica.js';
import { addInto, splitPoint, type Range } from '../shared/training/tree-sum.js';
import type { IndexedStats } from '../shared/cluster/stats-json.js';

export interface MicroInput {
  index: number;
  examples: readonly number[];
  dropoutSeed: number;
}

export interface PartialSum {
  range: Range;
  grad: Float32Array;
}

/** A subtree's sum the moment it is complete, with its micro-batches' stats and compute time. */
export interface ReadyPartial extends PartialSum {
  stats: IndexedStats[];
  computeMs: number;
}

const fmt = (r: Range): string => `[${r.lo}, ${r.hi})`;

/**
 * Puts `sum` (of `node`, inside the subtree `top`) into the tree sum of `top`:
 * while its sibling's sum waits, the two are added (left + right, into the
 * left buffer) and the result goes up. Returns the sum of `top` once complete, else null.
 */
function climb(top: Range, node: Range, sum: Float32Array, waiting: Map<string, Float32Array>, free: (b: Float32Array) => void): Float32Array | null {
  let n = node;
  let g = sum;
  while (n.lo !== top.lo || n.hi !== top.hi) {
    const parent = parentWithin(n, top);
    const mid = splitPoint(parent.lo, parent.hi);
    const isLeft = n.lo === parent.lo;
    const sibling = isLeft ? { lo: mid, hi: parent.hi } : { lo: parent.lo, hi: mid };
    const other = waiting.get(`${sibling.lo}:${sibling.hi}`);
    if (other === undefined) {
      waiting.set(`${n.lo}:${n.hi}`, g);
      return null;
    }
    waiting.delete(`${sibling.lo}:${sibling.hi}`);
    const [left, right] = isLeft ? [g, other] : [other, g];
    addInto(left, right);
    free(right);
    n = parent;
    g = left;
  }
  return g;
}

/** The parent of `r` in the tree over `top` (r a strict subtree of it). */
function parentWithin(r: Range, top: Range): Range {
  let node = top;
  for (;;) {
    const mid = splitPoint(node.lo, node.hi);
    const child = r.hi <= mid ? { lo: node.lo, hi: mid } : { lo: mid, hi: node.hi };
    if (child.lo === r.lo && child.hi === r.hi) return node;
    if (child.hi - child.lo <= 1) throw new RangeError(`${fmt(r)} is not a subtree of ${fmt(top)}`);
    node = child;
  }
}

export interface ComputeOptions {
  /** The run's finetune.classWeights: the classification loss's class weights come from the training split's label counts. */
  classWeights?: ClassWeighting;
}

export class WorkerCompute {
  /** Spare gradient buffers (one gradient each), reused instead of allocating 4P bytes per micro-batch. */
  private spare: Float32Array[] = [];
  /** The finetuning loss's class weights, computed on first use (null: unweighted). */
  private weights: Float32Array | null | undefined;

  constructor(
    readonly bert: BertConfig,
    readonly data: RunDatasets,
    private readonly opts: ComputeOptions = {},
  ) {}

  /** Class weights of the classification loss; null for the plain loss. */
  classWeights(): Float32Array | null {
    if (this.weights === undefined) this.weights = finetuneClassWeights(this.opts.classWeights ?? 'none', this.data);
    return this.weights;
  }

  /** Takes back a gradient buffer from `gradients` (an emitted or returned sum, after use). Keeps at most 4. */
  recycle(buf: Float32Array): void {
    if (this.spare.length < 4 && (this.spare.length === 0 || this.spare[0]!.length === buf.length)) this.spare.push(buf);
  }

  /**
   * Gradients of `micro` (whose indices must cover each of `subtrees` exactly),
   * summed per subtree in the fixed tree order as they are computed: the
   * micro-batches go in index order and each gradient climbs its subtree,
   * added to its left sibling's sum when that is in (left + right, as
   * treeSum), so at most one sum per tree level waits and memory does not
   * grow with the micro-batches. A subtree's sum goes to `emit` the moment it
   * is complete (the worker uploads it while the next ones compute); without
   * `emit` the sums are returned. Per-micro-batch stats are returned either way.
   */
  gradients(
    replica: Replica,
    dataset: DatasetName,
    micro: readonly MicroInput[],
    subtrees: readonly Range[],
    counts: GlobalCounts,
    emit?: (p: ReadyPartial) => void,
  ): { partials: PartialSum[]; stats: Map<number, MicroStats> } {
    const source = sourceOf(this.data, dataset);
    const params = replica.paramTensors();
    const byIndex = new Map(micro.map((m) => [m.index, m]));
    const stats = new Map<number, MicroStats>();
    const partials: PartialSum[] = [];
    for (const r of subtrees) {
      for (let i = r.lo; i < r.hi; i++) if (!byIndex.has(i)) throw new RangeError(`subtree ${fmt(r)} needs micro-batch ${i}, which was not given`);
    }
    const covered = subtrees.reduce((n, r) => n + r.hi - r.lo, 0);
    if (covered !== byIndex.size) throw new RangeError(`subtrees ${subtrees.map(fmt).join(' ')} cover ${covered} micro-batches, but ${byIndex.size} were given`);
    const classWeights = dataset.startsWith('classify') ? this.classWeights() : null;
    for (const range of [...subtrees].sort((a, b) => a.lo - b.lo)) {
      const waiting = new Map<string, Float32Array>();
      let ms = 0;
      for (let i = range.lo; i < range.hi; i++) {
        const m = byIndex.get(i)!;
        const t0 = performance.now();
        const spare = this.spare.pop();
        const into = spare?.length === replica.layout.total ? spare : undefined;
        const r = microBatchGradient(this.bert, replica.layout, params, source.batch(m.examples), counts, m.dropoutSeed, { into, classWeights });
        ms += performance.now() - t0;
        stats.set(i, r.stats);
        const sum = climb(range, { lo: i, hi: i + 1 }, r.grad, waiting, (b) => this.recycle(b));
        if (sum === null) continue;
        const partial = { range, grad: sum };
        if (emit === undefined) partials.push(partial);
        else emit({ ...partial, stats: Array.from({ length: range.hi - range.lo }, (_, k) => ({ index: range.lo + k, stats: stats.get(range.lo + k)! })), computeMs: ms });
      }
    }
    return { partials, stats };
  }

  evaluate(replica: Replica, dataset: DatasetName, chunk: readonly number[]): { stats: MicroStats; predictions: Int32Array } {
    const r = microBatchEval(this.bert, replica.paramTensors(), sourceOf(this.data, dataset).batch(chunk));
    return { stats: r.stats, predictions: r.predictions ?? new Int32Array(0) };
  }
}
