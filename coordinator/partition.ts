/**
 * Who computes what in one task: the M items of a step (micro-batches) or of
 * an evaluation (chunks) are cut into contiguous blocks over the workers,
 * taken in id order, the first `M mod n` blocks one item longer. A pure
 * function of (M, worker ids): any coordinator, restarted or not, computes the
 * same partition. With more workers than items the last ones get nothing and
 * only apply the reduced gradient. Which worker computes a micro-batch never
 * changes the result; the reduction order (tree-sum.ts) alone decides it.
 */
import { subtreesWithin, type Range } from '../shared/training/tree-sum.js';

export interface Block {
  workerId: string;
  range: Range;
  /** For gradients: the maximal reduction subtrees inside `range`, whose partial sums the worker uploads. */
  subtrees: Range[];
}

/** Blocks for the workers that get work, in id order; `workerIds` need not be sorted. */
export function partition(total: number, workerIds: readonly string[]): Block[] {
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`cannot partition ${total} items`);
  if (workerIds.length === 0) throw new RangeError('cannot partition over zero workers');
  const ids = [...workerIds].sort();
  const n = Math.min(ids.length, total);
  const base = Math.floor(total / n);
  const longer = total % n;
  const out: Block[] = [];
  let lo = 0;
  for (let i = 0; i < n; i++) {
    const hi = lo + base + (i < longer ? 1 : 0);
    const range = { lo, hi };
    out.push({ workerId: ids[i]!, range, subtrees: subtreesWithin(total, range) });
    lo = hi;
  }
  return out;
}
