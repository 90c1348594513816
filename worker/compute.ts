/**
 * A worker's computation on its replica: the gradients of the micro-batches it
 * was given, pre-summed over the subtrees of the reduction tree it owns whole,
 * and evaluation chunks. Used in-process by `bertfleet train` and behind gRPC
 * by `bertfleet worker`; the numbers are the same either way.
 */
import type { BertConfig } from '../shared/model/config.js';
import type { GlobalCounts } from '../shared/model/losses.js';
import { sourceOf, type DatasetName, type RunDatasets } from '../shared/training/batches.js';
import { microBatchEval, microBatchGradient, type MicroStats } from '../shared/training/gradients.js';
import type { Replica } from '../shared/training/replica.js';
import { treeSum, type Range } from '../shared/training/tree-sum.js';

export interface MicroInput {
  index: number;
  examples: readonly number[];
  dropoutSeed: number;
}

export interface PartialSum {
  range: Range;
  grad: Float32Array;
}

export class WorkerCompute {
  constructor(
    readonly bert: BertConfig,
    readonly data: RunDatasets,
  ) {}

  /**
   * Gradients of `micro` (whose indices must cover each of `subtrees` exactly),
   * returned as one tree-summed vector per subtree, plus per-micro-batch stats.
   */
  gradients(
    replica: Replica,
    dataset: DatasetName,
    micro: readonly MicroInput[],
    subtrees: readonly Range[],
    counts: GlobalCounts,
  ): { partials: PartialSum[]; stats: Map<number, MicroStats> } {
    const source = sourceOf(this.data, dataset);
    const params = replica.paramTensors();
    const grads = new Map<number, Float32Array>();
    const stats = new Map<number, MicroStats>();
    for (const m of micro) {
      const r = microBatchGradient(this.bert, replica.layout, params, source.batch(m.examples), counts, m.dropoutSeed);
      grads.set(m.index, r.grad);
      stats.set(m.index, r.stats);
    }
    const partials = subtrees.map((range) => ({
      range,
      grad: treeSum(range, (i) => {
        const g = grads.get(i);
        if (!g) throw new RangeError(`subtree [${range.lo}, ${range.hi}) needs micro-batch ${i}, which was not computed here`);
        return g;
      }),
    }));
    return { partials, stats };
  }

  evaluate(replica: Replica, dataset: DatasetName, chunk: readonly number[]): { stats: MicroStats; predictions: Int32Array } {
    const r = microBatchEval(this.bert, replica.paramTensors(), sourceOf(this.data, dataset).batch(chunk));
    return { stats: r.stats, predictions: r.predictions ?? new Int32Array(0) };
  }
}
