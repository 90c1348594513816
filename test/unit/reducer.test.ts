/**
 * `--reducers K` without processes: the slices of the flat vector (checked by
 * hand), a reducer's rounds opened and reassigned from the coordinator's
 * plans, the sum of its slice equal to the same slice of the whole reduction,
 * and the refusals a reducer gives (unknown steps, calls meant for the coordinator).
 */
import { describe, expect, it } from 'vitest';
import { partition } from '../../coordinator/partition.js';
import { Reducer } from '../../coordinator/reducer.js';
import { ReducerService } from '../../coordinator/reducer-service.js';
import { sliceBounds } from '../../shared/cluster/slices.js';
import { ProtocolError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { treeSum } from '../../shared/training/tree-sum.js';
import type { StepPlan } from '../../shared/wire/messages.js';

const STATS = { sequences: 4, lossSum: 1, nspLossSum: 0, correct: 1, nspCorrect: 0, maskedTokens: 3 };
const bits = (v: Float32Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

function vector(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed * 1000 + i) * 10 ** ((i % 5) - 2)));
}

describe('sliceBounds', () => {
  it('cuts P floats into K contiguous slices [floor(jP/K), floor((j+1)P/K))', () => {
    // 10 into 3: 0, 3.33, 6.67, 10 -> [0,3) [3,6) [6,10)
    expect(sliceBounds(10, 3)).toEqual([{ lo: 0, hi: 3 }, { lo: 3, hi: 6 }, { lo: 6, hi: 10 }]);
    expect(sliceBounds(7, 1)).toEqual([{ lo: 0, hi: 7 }]);
    expect(sliceBounds(4, 4)).toEqual([0, 1, 2, 3].map((j) => ({ lo: j, hi: j + 1 })));
  });

  it('refuses K < 1 and more slices than floats', () => {
    expect(() => sliceBounds(10, 0)).toThrow(/reducers must be an integer >= 1, got 0/);
    expect(() => sliceBounds(2, 3)).toThrow(/cannot cut 2 floats into 3 slices/);
  });
});

describe('Reducer', () => {
  const M = 5;
  const P = 103;
  const blocks = partition(M, ['a', 'b']);
  const plan = (slice: { lo: number; hi: number }, over: Partial<StepPlan> = {}): StepPlan => ({
    phase: 'pretrain', step: 3, num_micro_batches: M, blocks: blocks.map((b) => ({ worker_id: b.workerId, subtrees: b.subtrees })),
    slice_lo: slice.lo, slice_hi: slice.hi, chunk_bytes: 64, reassigned_from: '', pullers: ['a', 'b', 'coordinator'], ...over,
  });

  it('sums its slice to the same bits as that slice of the whole reduction, also after a reassignment', async () => {
    const leaves = Array.from({ length: M }, (_, i) => vector(P, i + 1));
    const whole = treeSum({ lo: 0, hi: M }, (i) => leaves[i]!);
    const slice = sliceBounds(P, 3)[1]!;
    const r = new Reducer(silentLogger());
    r.open(plan(slice));
    r.open(plan(slice)); // a retried OpenStep changes nothing
    const send = (w: string, range: { lo: number; hi: number }): void => {
      const round = r.roundFor(w, 'pretrain', 3);
      const g = treeSum(range, (i) => leaves[i]!).slice(slice.lo, slice.hi);
      const up = round.begin(w, range, Array.from({ length: range.hi - range.lo }, (_, k) => ({ index: range.lo + k, stats: STATS })));
      for (let i = 0; i < round.chunkCount; i++) round.addChunk(up, i, new Uint8Array(g.slice(i * 16, (i + 1) * 16).buffer));
      round.end(up);
    };
    for (const s of blocks[0]!.subtrees) send('a', s);
    // b is gone: the coordinator hands its subtrees to a new worker c and tells the reducer.
    const handed = partition(M, ['c'], { items: blocks[1]!.subtrees });
    r.reassign(plan(slice, { reassigned_from: 'b', blocks: handed.map((b) => ({ worker_id: b.workerId, subtrees: b.subtrees })) }));
    expect(() => r.roundFor('b', 'pretrain', 3).checkUpload('b', blocks[1]!.subtrees[0]!)).toThrow(/not assigned to it/);
    for (const s of handed[0]!.subtrees) send('c', s);
    const out = await r.roundFor('c', 'pretrain', 3).done;
    expect(bits(out.grad).equals(bits(whole.subarray(slice.lo, slice.hi)))).toBe(true);
  });

  it('refuses an upload for a step it was not told of, naming the steps it knows', () => {
    const r = new Reducer(silentLogger());
    r.open(plan({ lo: 0, hi: P }));
    expect(() => r.roundFor('a', 'pretrain', 4)).toThrow(/upload of pretrain step 4 from a: this reducer was not told of that step \(known: pretrain step 3\)/);
    expect(() => r.roundFor('a', 'evaluate', 3)).toThrow(ProtocolError);
    expect(() => r.open(plan({ lo: 5, hi: 5 }, { step: 9 }))).toThrow(/expected a slice \[lo, hi\) with hi > lo, got \[5, 5\)/);
  });

  it('refuses, through its service, the calls meant for the coordinator', async () => {
    const svc = new ReducerService(new Reducer(silentLogger()), { log: silentLogger() });
    await expect(svc.register()).rejects.toThrow(/Register: this is a bertfleet reducer, which serves only PushGradient, PullReduced and Heartbeat; ask the coordinator/);
    await expect(svc.nextAssignment()).rejects.toBeInstanceOf(ProtocolError);
  });
});
