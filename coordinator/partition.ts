/**
 * Who computes what in one task: items (the micro-batches of a step, or the
 * chunks of an evaluation, or the part of them a departed worker still owed)
 * are cut into contiguous shares over the workers, taken in id order. Shares
 * are proportional to each worker's weight (its measured speed; equal when
 * unknown), apportioned by largest remainder, so a straggler gets fewer. A
 * pure function of (items, worker ids, weights). Which worker computes a
 * micro-batch never changes the result: the reduction order (tree-sum.ts)
 * alone decides it, so any partition gives the same bits.
 */
import { subtreesWithin, type Range } from '../shared/training/tree-sum.js';

export interface Block {
  workerId: string;
  /** The item index ranges of this share, in order (one, unless the items were a scattered remainder). */
  ranges: Range[];
  /** For gradients: the maximal reduction subtrees inside `ranges` and inside one item each, whose partial sums the worker uploads. */
  subtrees: Range[];
}

export interface PartitionOptions {
  /** The items to cut, as index ranges in order; default all of [0, total). */
  items?: readonly Range[];
  /** Relative speed per worker id (> 0); missing ids get the mean of the given ones, or 1. */
  weights?: ReadonlyMap<string, number>;
}

export function blockSize(b: Block): number {
  return b.ranges.reduce((n, r) => n + r.hi - r.lo, 0);
}

/** Shares of `n` items for `weights` (in order): largest remainder, ties to the earlier worker. */
export function apportion(n: number, weights: readonly number[]): number[] {
  const total = weights.reduce((a, w) => a + w, 0);
  const exact = weights.map((w) => (n * w) / total);
  const shares = exact.map(Math.floor);
  let left = n - shares.reduce((a, s) => a + s, 0);
  const order = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left === 0) break;
    shares[i]!++;
    left--;
  }
  return shares;
}

/** Blocks for the workers that get work, in id order; `workerIds` need not be sorted. */
export function partition(total: number, workerIds: readonly string[], opts: PartitionOptions = {}): Block[] {
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`cannot partition ${total} items`);
  if (workerIds.length === 0) throw new RangeError('cannot partition over zero workers');
  const items = opts.items ?? [{ lo: 0, hi: total }];
  for (const r of items) {
    if (!(Number.isInteger(r.lo) && Number.isInteger(r.hi) && 0 <= r.lo && r.lo < r.hi && r.hi <= total)) {
      throw new RangeError(`item range [${r.lo}, ${r.hi}) is not inside [0, ${total})`);
    }
  }
  const ids = [...new Set(workerIds)].sort();
  const known = ids.map((id) => opts.weights?.get(id)).filter((w): w is number => w !== undefined && Number.isFinite(w) && w > 0);
  const fallback = known.length > 0 ? known.reduce((a, w) => a + w, 0) / known.length : 1;
  const weights = ids.map((id) => {
    const w = opts.weights?.get(id);
    return w !== undefined && Number.isFinite(w) && w > 0 ? w : fallback;
  });
  const count = items.reduce((n, r) => n + r.hi - r.lo, 0);
  const shares = apportion(count, weights);
  const out: Block[] = [];
  let item = 0;
  let at = items[0]!.lo;
  ids.forEach((workerId, w) => {
    let need = shares[w]!;
    if (need === 0) return;
    const ranges: Range[] = [];
    while (need > 0) {
      const r = items[item]!;
      const hi = Math.min(r.hi, at + need);
      ranges.push({ lo: at, hi });
      need -= hi - at;
      at = hi;
      if (at === r.hi && item + 1 < items.length) at = items[++item]!.lo;
    }
    // Subtrees are cut inside each item, never across two: a departed worker's
    // subtrees are only ever cut finer, so no chunk of one is summed twice (step-round.ts).
    const subtrees = ranges.flatMap((r) => subtreesWithin(total, r));
    mergeAdjacent(ranges);
    out.push({ workerId, ranges, subtrees });
  });
  return out;
}

/** Joins ranges that touch ([0, 2) + [2, 4) = [0, 4)), in place; input in order. */
function mergeAdjacent(ranges: Range[]): void {
  for (let i = ranges.length - 1; i > 0; i--) {
    if (ranges[i - 1]!.hi === ranges[i]!.lo) {
      ranges[i - 1] = { lo: ranges[i - 1]!.lo, hi: ranges[i]!.hi };
      ranges.splice(i, 1);
    }
  }
}
