/**
 * An evaluation spread over the workers: a share per live worker in one task;
 * when a worker leaves owing chunks, a recovery task hands exactly those to
 * the live workers and the results still come back in chunk order; nothing is
 * handed over when the chunks had arrived, or when that evaluation is over.
 * Real Membership, TaskLog and WorkerSpeeds; no network.
 */
import { describe, expect, it } from 'vitest';
import { EvalDispatch, describeBlocks } from '../../coordinator/eval-dispatch.js';
import type { ChunkResult } from '../../coordinator/eval-collection.js';
import type { EvalWork } from '../../coordinator/executor.js';
import { Membership } from '../../coordinator/membership.js';
import { TaskLog, type EvalTask } from '../../coordinator/task-log.js';
import { WorkerSpeeds } from '../../coordinator/worker-speeds.js';
import { ProtocolError } from '../../shared/errors.js';
import { capturingLogger } from '../helpers/observe.js';

const STATS = { sequences: 2, lossSum: 1, nspLossSum: 0, correct: 1, nspCorrect: 0, maskedTokens: 0 };
const chunks = [[0, 1], [2, 3], [4, 5], [6, 7], [8], [9, 10]];
const result = (index: number): ChunkResult => ({ index, stats: { ...STATS, lossSum: index }, predictions: Int32Array.from(chunks[index]!) });

function setup(ids: string[]) {
  const { log, lines } = capturingLogger();
  const membership = new Membership();
  for (const id of ids) membership.register(id, 'host', 1, 0);
  const tasks = new TaskLog();
  const recovered: string[] = [];
  const dispatch = new EvalDispatch({
    tasks, membership, speeds: new WorkerSpeeds({ log }), log,
    liveIds: async () => membership.active().map((m) => m.id),
    recover: (id) => void recovered.push(id),
  });
  return { dispatch, membership, tasks, lines, recovered };
}

const work: EvalWork = { phase: 'finetune', dataset: 'classify-validation', chunks };

describe('evaluation dispatch', () => {
  it('hands a leaving worker\'s chunks, and only those, to the live workers; results in chunk order', async () => {
    const { dispatch, membership, tasks, lines } = setup(['a', 'b', 'c']);
    const done = dispatch.evaluate(work, 7);
    await Promise.resolve();
    const first = tasks.firstAfter(0) as EvalTask;
    expect(first).toMatchObject({ kind: 'eval', phase: 'finetune', step: 7, dataset: 'classify-validation', recovery: false });
    expect(describeBlocks(first.blocks)).toEqual({ a: '[0, 2)', b: '[2, 4)', c: '[4, 6)' });
    const run = dispatch.collectionFor('a', first.seq);
    run.accept('a', first.seq, [result(0), result(1)]);
    run.accept('b', first.seq, [result(2)]); // b delivers one of its two, then is gone
    membership.markLeft('b', 'error', 'silent');
    await dispatch.recover(run, 'b');
    const rescue = tasks.firstAfter(first.seq) as EvalTask;
    expect(rescue).toMatchObject({ kind: 'eval', recovery: true, chunks });
    expect(describeBlocks(rescue.blocks)).toEqual({ a: '[3, 4)' });
    expect(first.blocks.map((b) => b.workerId)).toEqual(['a', 'c']); // withdrawn: a restarted b does not redo them
    expect(lines.find((l) => l['msg'] === 'eval chunks reassigned')).toMatchObject({ from: 'b', chunks: 1, to: { a: '[3, 4)' }, seq: rescue.seq });
    expect(() => run.accept('b', first.seq, [result(3)])).toThrow(ProtocolError);
    run.accept('a', rescue.seq, [result(3)]);
    run.accept('c', first.seq, [result(5), result(4)]);
    const out = await done;
    expect(out.stats.map((s) => s.lossSum)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(out.predictions.map((p) => [...p])).toEqual(chunks);
    expect(() => dispatch.collectionFor('a', first.seq)).toThrow(`eval results of task ${first.seq} from a: expected task ${first.seq} or ${rescue.seq}`);
  });

  it('hands nothing over when the chunks arrived or the evaluation ended; an empty one needs no worker', async () => {
    const { dispatch, membership, tasks } = setup(['a', 'b']);
    expect(await dispatch.evaluate({ ...work, chunks: [] }, 0)).toEqual({ stats: [], predictions: [] });
    expect(tasks.lastSeq).toBe(0);
    const done = dispatch.evaluate(work, 1);
    await Promise.resolve();
    const first = tasks.firstAfter(0) as EvalTask;
    const run = dispatch.current()!;
    run.accept('b', first.seq, [3, 4, 5].map(result));
    membership.markLeft('b', 'drained', '');
    await dispatch.recover(run, 'b');
    expect(tasks.lastSeq).toBe(first.seq);
    run.accept('a', first.seq, [0, 1, 2].map(result));
    await done;
    expect(dispatch.current()).toBeNull();
    await dispatch.recover(run, 'a');
    expect(tasks.lastSeq).toBe(first.seq);
  });

  it('gives no share to a worker that left before the evaluation was cut, and ends when the run fails', async () => {
    const { dispatch, membership, recovered } = setup(['a', 'b']);
    membership.markLeft('b', 'error', 'silent');
    const done = dispatch.evaluate(work, 2);
    await Promise.resolve();
    expect(describeBlocks(dispatch.current()!.task.blocks)).toEqual({ a: '[0, 6)' });
    expect(recovered).toEqual([]); // nothing to hand over
    dispatch.fail(new Error('run failed'));
    await expect(done).rejects.toThrow('run failed');
    expect(dispatch.current()).toBeNull();
  });
});
