/**
 * The distributed reduction without any network: partitions are contiguous
 * blocks in id order; partial sums over each block's subtrees, finished by the
 * coordinator in any arrival order, give the same bits as one process summing
 * every micro-batch gradient; uploads that are not owed are refused.
 */
import { describe, expect, it } from 'vitest';
import { partition } from '../../coordinator/partition.js';
import { StepReduction } from '../../coordinator/step-reduction.js';
import { TaskLog } from '../../coordinator/task-log.js';
import { ProtocolError } from '../../shared/errors.js';
import { treeSum } from '../../shared/training/tree-sum.js';

const STATS = { sequences: 4, lossSum: 1.5, nspLossSum: 0.25, correct: 2, nspCorrect: 3, maskedTokens: 7 };

function randomVector(n: number, seed: number): Float32Array {
  let x = seed * 2654435761 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 2 ** 32 - 0.5) * 10 ** ((x >>> 0) % 7 - 3); // mixed magnitudes: rounding order matters
  }
  return out;
}

function bits(v: Float32Array): Buffer {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

describe('partition', () => {
  it('cuts M items into contiguous blocks in worker-id order, the first ones one longer', () => {
    const blocks = partition(7, ['w3', 'w1', 'w2']);
    expect(blocks.map((b) => [b.workerId, b.range.lo, b.range.hi])).toEqual([['w1', 0, 3], ['w2', 3, 5], ['w3', 5, 7]]);
    for (const b of blocks) expect(b.subtrees.reduce((n, r) => n + r.hi - r.lo, 0)).toBe(b.range.hi - b.range.lo);
  });

  it('gives nothing to workers beyond the number of items', () => {
    expect(partition(2, ['a', 'b', 'c']).map((b) => b.workerId)).toEqual(['a', 'b']);
  });

  it('refuses zero items or zero workers', () => {
    expect(() => partition(0, ['a'])).toThrow(RangeError);
    expect(() => partition(3, [])).toThrow(RangeError);
  });
});

describe('StepReduction', () => {
  for (const M of [1, 3, 4, 5, 8]) {
    for (const n of [1, 2, 3]) {
      it(`finishes partial sums to the single-process bits (M=${M}, ${n} workers, reversed arrival)`, () => {
        const leaves = Array.from({ length: M }, (_, i) => randomVector(257, 11 * M + i));
        const expected = treeSum({ lo: 0, hi: M }, (i) => leaves[i]!);
        const blocks = partition(M, Array.from({ length: n }, (_, i) => `w${i}`));
        const r = new StepReduction('pretrain', 3, M, blocks);
        const uploads = blocks.flatMap((b) => b.subtrees.map((range) => ({ w: b.workerId, range })));
        for (const u of uploads.reverse()) {
          const stats = Array.from({ length: u.range.hi - u.range.lo }, (_, k) => ({ index: u.range.lo + k, stats: STATS }));
          r.accept(u.w, u.range, treeSum(u.range, (i) => leaves[i]!), stats);
        }
        expect(r.complete).toBe(true);
        return r.done.then((out) => {
          expect(bits(out.grad).equals(bits(expected))).toBe(true);
          expect(out.stats).toHaveLength(M);
        });
      });
    }
  }

  it('refuses a range not assigned to the worker, a duplicate, and anything after the reduction', () => {
    const r = new StepReduction('finetune', 2, 4, partition(4, ['a', 'b']));
    expect(() => r.checkUpload('b', { lo: 0, hi: 2 })).toThrow(/range \[0, 2\) is not assigned to it: expected one of \[2, 4\)/);
    expect(() => r.checkUpload('a', null)).toThrow(ProtocolError);
    const g = new Float32Array(4);
    r.accept('a', { lo: 0, hi: 2 }, g, [{ index: 0, stats: STATS }, { index: 1, stats: STATS }]);
    expect(() => r.checkUpload('a', { lo: 0, hi: 2 })).toThrow(/already received/);
    expect(() => r.accept('b', { lo: 2, hi: 4 }, g, [])).toThrow(/stats expected for micro-batches \[2,3\], got \[\]/);
    r.accept('b', { lo: 2, hi: 4 }, g, [{ index: 3, stats: STATS }, { index: 2, stats: STATS }]);
    expect(() => r.checkUpload('b', { lo: 2, hi: 4 })).toThrow(/step 2 is already reduced/);
  });
});

describe('TaskLog', () => {
  it('hands out the first task after a seq, waits for one, and answers null when none comes', async () => {
    const log = new TaskLog();
    const marker = log.reserve();
    const never = new AbortController().signal;
    expect(await log.waitAfter(marker, 20, never)).toBeNull();
    const waiting = log.waitAfter(marker, 5_000, never);
    const stop = log.push({ kind: 'stop', reason: 'done', detail: '', membershipVersion: 1 });
    expect(await waiting).toBe(stop);
    expect(stop.seq).toBe(marker + 1);
    expect(log.firstAfter(stop.seq)).toBeUndefined();
  });
});
