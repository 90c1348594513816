/**
 * The distributed reduction without any network: partitions are contiguous
 * blocks in id order, weighted by speed (largest remainder, checked by hand);
 * partial sums over each block's subtrees, finished by the coordinator in any
 * arrival order, give the same bits as one process summing every micro-batch
 * gradient — also when a worker leaves owing part of its share and the rest is
 * reassigned; uploads that are not owed are refused, repeats recognised.
 */
import { describe, expect, it } from 'vitest';
const partition = cut;
import { apportion, partition as cut } from '../../coordinator/partition.js';
import { ChunkPool } from '../../coordinator/chunk-pool.js';
import type { Block } from '../../coordinator/partition.js';
import { parentOf, StepRound, type Upload } from '../../coordinator/step-round.js';
import type { IndexedStats } from '../../shared/cluster/stats-json.js';
import { TaskLog } from '../../coordinator/task-log.js';
import { AlreadyReceivedError, ProtocolError } from '../../shared/errors.js';
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

/** A round whose vectors of `n` floats travel in chunks of `chunk` floats (the last one shorter unless chunk divides n). */
function newRound(phase: 'pretrain' | 'finetune', step: number, M: number, blocks: Block[], n: number, chunk = 16): StepRound {
  return new StepRound(phase, step, M, blocks, n, new ChunkPool(chunk));
}

/** The bytes of chunk i of `grad`, as the wire delivers them (a copy). */
function chunkOf(r: StepRound, grad: Float32Array, i: number): Uint8Array {
  const per = r.chunkBytes / 4;
  return new Uint8Array(grad.slice(i * per, Math.min(grad.length, (i + 1) * per)).buffer);
}

/** One whole upload: header (stats), every chunk, end. */
function accept(r: StepRound, w: string, range: { lo: number; hi: number }, grad: Float32Array, stats: IndexedStats[]): void {
  const up = r.begin(w, range, stats);
  for (let i = 0; i < r.chunkCount; i++) r.addChunk(up, i, chunkOf(r, grad, i));
  r.end(up);
}

function statsOf(range: { lo: number; hi: number }): IndexedStats[] {
  return Array.from({ length: range.hi - range.lo }, (_, k) => ({ index: range.lo + k, stats: STATS }));
}

describe('partition', () => {
  it('cuts M items into contiguous blocks in worker-id order, the first ones one longer', () => {
    const blocks = partition(7, ['w3', 'w1', 'w2']);
    expect(blocks.map((b) => [b.workerId, b.ranges])).toEqual([['w1', [{ lo: 0, hi: 3 }]], ['w2', [{ lo: 3, hi: 5 }]], ['w3', [{ lo: 5, hi: 7 }]]]);
    for (const b of blocks) expect(b.subtrees.reduce((n, r) => n + r.hi - r.lo, 0)).toBe(b.ranges[0]!.hi - b.ranges[0]!.lo);
  });

  it('apportions by largest remainder: 8 items at speeds 1 : 1 : 0.5 give 3.2, 3.2, 1.6 -> 3, 3, 2', () => {
    expect(apportion(8, [1, 1, 0.5])).toEqual([3, 3, 2]);
    // 7 at 2 : 1 -> 4.67, 2.33 -> 5, 2; ties go to the earlier worker: 3 at 1 : 1 -> 2, 1
    expect(apportion(7, [2, 1])).toEqual([5, 2]);
    expect(apportion(3, [1, 1])).toEqual([2, 1]);
  });

  it('gives a slow worker fewer micro-batches, and unmeasured ones the mean speed', () => {
    const weights = new Map([['a', 0.1], ['b', 0.3]]); // ms per micro-batch 10 and 3.3
    expect(partition(8, ['b', 'a'], { weights }).map((b) => [b.workerId, b.ranges])).toEqual([['a', [{ lo: 0, hi: 2 }]], ['b', [{ lo: 2, hi: 8 }]]]);
    // c unmeasured: weight (0.1 + 0.3) / 2 = 0.2 -> 8 * [0.1, 0.3, 0.2] / 0.6 = 1.33, 4, 2.67 -> 1, 4, 3
    expect(partition(8, ['a', 'b', 'c'], { weights }).map((b) => b.ranges[0]!.hi - b.ranges[0]!.lo)).toEqual([1, 4, 3]);
  });

  it('cuts a scattered remainder into subtrees of the same tree', () => {
    const blocks = partition(8, ['x', 'y'], { items: [{ lo: 0, hi: 2 }, { lo: 4, hi: 8 }] });
    expect(blocks.map((b) => [b.workerId, b.ranges, b.subtrees])).toEqual([
      ['x', [{ lo: 0, hi: 2 }, { lo: 4, hi: 5 }], [{ lo: 0, hi: 2 }, { lo: 4, hi: 5 }]],
      ['y', [{ lo: 5, hi: 8 }], [{ lo: 5, hi: 6 }, { lo: 6, hi: 8 }]],
    ]);
  });

  it('gives nothing to workers beyond the number of items', () => {
    expect(partition(2, ['a', 'b', 'c']).map((b) => b.workerId)).toEqual(['a', 'b']);
  });

  it('refuses zero items or zero workers', () => {
    expect(() => partition(0, ['a'])).toThrow(RangeError);
    expect(() => partition(3, [])).toThrow(RangeError);
  });
});

describe('StepRound', () => {
  for (const M of [1, 3, 4, 5, 8]) {
    for (const n of [1, 2, 3]) {
      it(`finishes partial sums to the single-process bits (M=${M}, ${n} workers, reversed arrival)`, () => {
        const leaves = Array.from({ length: M }, (_, i) => randomVector(257, 11 * M + i));
        const expected = treeSum({ lo: 0, hi: M }, (i) => leaves[i]!);
        const blocks = partition(M, Array.from({ length: n }, (_, i) => `w${i}`));
        const r = newRound('pretrain', 3, M, blocks, 257);
        const uploads = blocks.flatMap((b) => b.subtrees.map((range) => ({ w: b.workerId, range })));
        for (const u of uploads.reverse()) {
          const stats = Array.from({ length: u.range.hi - u.range.lo }, (_, k) => ({ index: u.range.lo + k, stats: STATS }));
          accept(r, u.w, u.range, treeSum(u.range, (i) => leaves[i]!), stats);
        }
        expect(r.complete).toBe(true);
        return r.done.then((out) => {
          expect(bits(out.grad).equals(bits(expected))).toBe(true);
          expect(out.stats).toEqual(Array.from({ length: M }, () => STATS));
        });
      });
    }
  }

  it('refuses a range not assigned to the worker, a duplicate, and anything after the reduction', () => {
    const r = newRound('finetune', 2, 4, partition(4, ['a', 'b']), 4);
    expect(() => r.checkUpload('b', { lo: 0, hi: 2 })).toThrow(/range \[0, 2\) is not assigned to it: expected one of \[2, 4\)/);
    expect(() => r.checkUpload('a', null)).toThrow(ProtocolError);
    const g = new Float32Array(4);
    accept(r, 'a', { lo: 0, hi: 2 }, g, [{ index: 0, stats: STATS }, { index: 1, stats: STATS }]);
    expect(() => r.checkUpload('a', { lo: 0, hi: 2 })).toThrow(AlreadyReceivedError);
    expect(() => r.checkUpload('b', { lo: 0, hi: 2 })).toThrow(/not assigned to it/);
    expect(() => accept(r, 'b', { lo: 2, hi: 4 }, g, [])).toThrow(/stats expected for micro-batches \[2,3\], got \[\]/);
    accept(r, 'b', { lo: 2, hi: 4 }, g, [{ index: 3, stats: STATS }, { index: 2, stats: STATS }]);
    expect(() => r.checkUpload('b', { lo: 2, hi: 4 })).toThrow(AlreadyReceivedError);
  });

  for (const [M, lost] of [[8, 'w1'], [8, 'w0'], [5, 'w2'], [7, 'w1']] as const) {
    it(`gives the single-process bits when ${lost} leaves owing its share of M=${M} and the rest is reassigned`, async () => {
      const leaves = Array.from({ length: M }, (_, i) => randomVector(129, 5 * M + i));
      const expected = treeSum({ lo: 0, hi: M }, (i) => leaves[i]!);
      const blocks = partition(M, ['w0', 'w1', 'w2']);
      const r = newRound('finetune', 1, M, blocks, 129);
      const send = (w: string, range: { lo: number; hi: number }): void => {
        const stats = Array.from({ length: range.hi - range.lo }, (_, k) => ({ index: range.lo + k, stats: STATS }));
        accept(r, w, range, treeSum(range, (i) => leaves[i]!), stats);
      };
      // The lost worker delivered its first subtree only; the others everything.
      const mine = blocks.find((b) => b.workerId === lost)!.subtrees;
      if (mine.length > 1) send(lost, mine[0]!);
      for (const b of blocks) if (b.workerId !== lost) for (const s of b.subtrees) send(b.workerId, s);
      const owed = r.owedBy(lost);
      expect(owed, 'what the lost worker had not delivered').toEqual(mine.length > 1 ? mine.slice(1) : mine);
      const handed = partition(M, ['w0', 'w1', 'w2'].filter((w) => w !== lost), { items: owed });
      expect(r.reassign(lost, handed)).toBe(owed.reduce((n, x) => n + x.hi - x.lo, 0));
      expect(() => r.checkUpload(lost, owed[0]!)).toThrow(/not assigned to it/);
      expect(r.complete).toBe(false);
      for (const b of handed) for (const s of b.subtrees) send(b.workerId, s);
      expect(r.complete).toBe(true);
      const out = await r.done;
      expect(bits(out.grad).equals(bits(expected))).toBe(true);
      expect(out.stats).toEqual(Array.from({ length: M }, () => STATS));
    });
  }
});

describe('reduction as partials arrive', () => {
  it('knows each subtree\'s parent in the tree over [0, M)', () => {
    // M = 5: [0,5) -> [0,2) [2,5); [2,5) -> [2,3) [3,5); [3,5) -> [3,4) [4,5)
    expect(parentOf({ lo: 0, hi: 5 }, 5)).toBeNull();
    expect(parentOf({ lo: 2, hi: 5 }, 5)).toEqual({ lo: 0, hi: 5 });
    expect(parentOf({ lo: 4, hi: 5 }, 5)).toEqual({ lo: 3, hi: 5 });
    expect(parentOf({ lo: 1, hi: 2 }, 5)).toEqual({ lo: 0, hi: 2 });
    expect(() => parentOf({ lo: 1, hi: 3 }, 5)).toThrow(/not a subtree/);
  });

  for (const seed of [1, 2, 3, 4, 5]) {
    it(`gives the single-process bits for every arrival order of 11 single micro-batch uploads (order ${seed})`, async () => {
      const M = 11;
      const leaves = Array.from({ length: M }, (_, i) => randomVector(97, 1000 * seed + i));
      const expected = treeSum({ lo: 0, hi: M }, (i) => leaves[i]!);
      const ids = Array.from({ length: M }, (_, i) => `w${String(i).padStart(2, '0')}`);
      const r = newRound('pretrain', 0, M, partition(M, ids), 97);
      const order = Array.from({ length: M }, (_, i) => i);
      let x = seed;
      for (let i = M - 1; i > 0; i--) {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        const j = x % (i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const i of order) accept(r, ids[i]!, { lo: i, hi: i + 1 }, leaves[i]!.slice(), [{ index: i, stats: STATS }]);
      expect(bits((await r.done).grad).equals(bits(expected))).toBe(true);
    });
  }
});

describe('reduction chunk by chunk', () => {
  /** Shuffles with a fixed LCG (a permutation, reproducible). */
  function shuffled<T>(xs: T[], seed: number): T[] {
    const out = [...xs];
    let x = seed;
    for (let i = out.length - 1; i > 0; i--) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const j = x % (i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  for (const seed of [1, 2, 3]) {
    it(`gives the single-process bits when the chunks of all uploads interleave (order ${seed})`, async () => {
      const M = 7;
      const n = 1000; // 16-float chunks: 63, the last one 8 floats
      const leaves = Array.from({ length: M }, (_, i) => randomVector(n, 77 * seed + i));
      const expected = treeSum({ lo: 0, hi: M }, (i) => leaves[i]!);
      const blocks = partition(M, ['a', 'b', 'c']);
      const r = newRound('pretrain', 0, M, blocks, n);
      const ups = blocks.flatMap((b) => b.subtrees.map((range) => ({ up: r.begin(b.workerId, range, statsOf(range)), grad: treeSum(range, (i) => leaves[i]!) })));
      // Each upload's chunks in order, the uploads interleaved at random.
      const turns = shuffled(ups.flatMap((_, k) => Array.from({ length: r.chunkCount }, () => k)), seed);
      const next = ups.map(() => 0);
      for (const k of turns) r.addChunk(ups[k]!.up, next[k]!, chunkOf(r, ups[k]!.grad, next[k]!++));
      for (const u of ups) r.end(u.up);
      expect(bits((await r.done).grad).equals(bits(expected))).toBe(true);
    });
  }

  it('serves chunk i of the reduced gradient as soon as every partial\'s chunk i is in', async () => {
    const leaves = [randomVector(64, 1), randomVector(64, 2)];
    const r = newRound('pretrain', 0, 2, partition(2, ['a', 'b']), 64); // 4 chunks
    const a = r.begin('a', { lo: 0, hi: 1 }, statsOf({ lo: 0, hi: 1 }));
    const b = r.begin('b', { lo: 1, hi: 2 }, statsOf({ lo: 1, hi: 2 }));
    let first = false;
    const ready0 = r.whenReady(0).then(() => (first = true));
    r.addChunk(a, 0, chunkOf(r, leaves[0]!, 0));
    await Promise.resolve();
    expect(first).toBe(false);
    r.addChunk(b, 0, chunkOf(r, leaves[1]!, 0));
    await ready0;
    expect(first).toBe(true);
    const sum0 = treeSum({ lo: 0, hi: 2 }, (i) => leaves[i]!).subarray(0, 16);
    expect(Buffer.from(r.chunkBytesOf(0)).equals(bits(sum0))).toBe(true);
    expect(r.complete).toBe(false);
  });

  it('skips the chunks a retried upload already delivered, and counts none twice', async () => {
    const M = 4;
    const leaves = Array.from({ length: M }, (_, i) => randomVector(100, 300 + i));
    const expected = treeSum({ lo: 0, hi: M }, (i) => leaves[i]!);
    const r = newRound('finetune', 5, M, partition(M, ['a', 'b']), 100);
    const gA = treeSum({ lo: 0, hi: 2 }, (i) => leaves[i]!);
    const first = r.begin('a', { lo: 0, hi: 2 }, statsOf({ lo: 0, hi: 2 }));
    for (let i = 0; i < 3; i++) r.addChunk(first, i, chunkOf(r, gA, i)); // then the stream broke
    accept(r, 'a', { lo: 0, hi: 2 }, gA, statsOf({ lo: 0, hi: 2 })); // the retry sends everything again
    accept(r, 'b', { lo: 2, hi: 4 }, treeSum({ lo: 2, hi: 4 }, (i) => leaves[i]!), statsOf({ lo: 2, hi: 4 }));
    expect(bits((await r.done).grad).equals(bits(expected))).toBe(true);
  });

  for (const [M, delivered] of [[8, 3], [8, 0], [6, 5]] as const) {
    it(`gives the single-process bits when a worker leaves after ${delivered} chunks of its subtree (M=${M}) and finer cuts of it are re-sent`, async () => {
      const leaves = Array.from({ length: M }, (_, i) => randomVector(90, 40 * M + i));
      const expected = treeSum({ lo: 0, hi: M }, (i) => leaves[i]!);
      const blocks = partition(M, ['a', 'b']);
      const r = newRound('pretrain', 2, M, blocks, 90); // 6 chunks
      const lost = blocks.find((b) => b.workerId === 'b')!.subtrees[0]!;
      const gLost = treeSum(lost, (i) => leaves[i]!);
      const up: Upload = r.begin('b', lost, statsOf(lost));
      for (let i = 0; i < delivered; i++) r.addChunk(up, i, chunkOf(r, gLost, i));
      for (const s of blocks.find((b) => b.workerId === 'a')!.subtrees) accept(r, 'a', s, treeSum(s, (i) => leaves[i]!), statsOf(s));
      // b is gone: its subtree goes to two new workers, cut finer.
      const handed = partition(M, ['c', 'd'], { items: r.owedBy('b') });
      r.reassign('b', handed);
      expect(handed.flatMap((h) => h.subtrees).every((t) => t.lo >= lost.lo && t.hi <= lost.hi && t.hi - t.lo < lost.hi - lost.lo)).toBe(true);
      // A late chunk of b's old stream is refused: its subtree is no longer b's.
      if (delivered < r.chunkCount) expect(() => r.addChunk(up, delivered, chunkOf(r, gLost, delivered))).toThrow(/reassigned/);
      for (const h of handed) for (const s of h.subtrees) accept(r, h.workerId, s, treeSum(s, (i) => leaves[i]!), statsOf(s));
      expect(bits((await r.done).grad).equals(bits(expected))).toBe(true);
    });
  }

  it('refuses chunks out of order and an upload that ends early', () => {
    const r = newRound('pretrain', 0, 1, partition(1, ['a']), 40); // 3 chunks
    const up = r.begin('a', { lo: 0, hi: 1 }, statsOf({ lo: 0, hi: 1 }));
    expect(() => r.addChunk(up, 1, new Uint8Array(64))).toThrow(/expected chunk 0, got 1/);
    r.addChunk(up, 0, new Uint8Array(64));
    expect(() => r.end(up)).toThrow(/expected 3 chunks, got 1/);
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
