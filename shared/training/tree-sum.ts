/**
 * The fixed reduction order of a step: micro-batch gradients are summed along a
 * balanced binary tree over their indices [0, M), splitting [lo, hi) at
 * mid = lo + floor((hi - lo) / 2). Float addition is not associative, so this
 * order — not the worker count, not arrival order — decides every bit of the
 * step's gradient. A worker may pre-sum a subtree only when it owns all its
 * leaves; `subtreesWithin` lists the maximal such subtrees of a block.
 * (Float32Array element adds in JS round once to float32, which equals IEEE
 * float32 addition because 53 >= 2*24 + 2; the addon's float32 add is the same.)
 */
import { vectorOps } from '../backend/vector-kernels.js';

export interface Range {
  lo: number;
  hi: number;
}

export function splitPoint(lo: number, hi: number): number {
  return lo + Math.floor((hi - lo) / 2);
}

/** a += b, elementwise (native or JS loop, same bytes: see backend/vector-kernels.ts). */
export function addInto(a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) throw new RangeError(`cannot add vectors of ${a.length} and ${b.length} elements`);
  vectorOps().addInto(a, b);
}

/**
 * Sums the subtree [lo, hi) from `leaf(i)` (or from already-summed subtrees in
 * `partial`, keyed "lo:hi"). The result may alias a leaf's buffer.
 */
export function treeSum(
  range: Range,
  leaf: (i: number) => Float32Array,
  partial?: ReadonlyMap<string, Float32Array>,
): Float32Array {
  const known = partial?.get(`${range.lo}:${range.hi}`);
  if (known) return known;
  if (range.hi - range.lo === 1) return leaf(range.lo);
  if (range.hi <= range.lo) throw new RangeError(`empty reduction range [${range.lo}, ${range.hi})`);
  const mid = splitPoint(range.lo, range.hi);
  const left = treeSum({ lo: range.lo, hi: mid }, leaf, partial);
  const right = treeSum({ lo: mid, hi: range.hi }, leaf, partial);
  const out = new Float32Array(left);
  addInto(out, right);
  return out;
}

/** The maximal subtrees of the tree over [0, total) whose leaves all lie in `block`. */
export function subtreesWithin(total: number, block: Range): Range[] {
  const out: Range[] = [];
  const visit = (lo: number, hi: number): void => {
    if (hi <= block.lo || lo >= block.hi) return;
    if (lo >= block.lo && hi <= block.hi) {
      out.push({ lo, hi });
      return;
    }
    const mid = splitPoint(lo, hi);
    visit(lo, mid);
    visit(mid, hi);
  };
  visit(0, total);
  return out;
}
