/**
 * The end of a run as printed: the closing table (stage times, seq/s, workers
 * with the straggler flag, metrics beside the majority baseline) from fixed
 * input to exact text; run-summary.json's shape and rounding; the straggler
 * rule and the per-worker tally the coordinator keeps.
 */
import { describe, expect, it } from 'vitest';
import { alignColumns, formatClosingTable, formatDuration } from '../../cli/closing-table.js';
import { runSummary, STRAGGLER_RULE, type RunSummary } from '../../cli/run-summary.js';
import type { ServiceObserver } from '../../coordinator/coordinator-service.js';
import { RunClock } from '../../coordinator/run-timings.js';
import { stragglers, WorkerTally } from '../../coordinator/worker-tally.js';

const METRICS = {
  finetuning: {
    validation: { examples: 300, accuracy: 0.81, majorityBaseline: { label: 'positive', accuracy: 0.523 }, macro: { f1: 0.805 } },
    test: { examples: 298, accuracy: 0.822, majorityBaseline: { label: 'negative', accuracy: 0.5 }, macro: { f1: 0.8216 } },
  },
};

const CLUSTER: RunSummary = {
  format: 1,
  workerCount: 2,
  inProcess: false,
  timings: {
    dataPreparation: { seconds: 12.4 },
    pretraining: { seconds: 65.2, steps: 500, sequences: 16000, seqPerSec: 412.34 },
    finetuning: { seconds: 8.1, steps: 200, sequences: 6400, seqPerSec: 790.1 },
    evaluation: { seconds: 3.2 },
  },
  workers: {
    'worker-0': { steps: 700, microBatches: 1400, meanStepMs: 118.2, msPerMicroBatch: 20.3, straggler: false },
    'worker-1': { steps: 700, microBatches: 600, meanStepMs: 119, msPerMicroBatch: 47.93, straggler: true },
  },
  stragglerRule: STRAGGLER_RULE,
};

describe('the closing table', () => {
  it('shows stage times, seq/s, each worker with its straggler flag, and accuracy beside the majority baseline', () => {
    expect(formatClosingTable(CLUSTER, METRICS, '/runs/a/run-summary.json')).toBe([
      'run summary',
      '  stage               time  steps  seq/s',
      '  data preparation  12.4 s',
      '  pretraining       1m 05s    500  412.3',
      '  finetuning         8.1 s    200  790.1',
      '  evaluation         3.2 s',
      '  total             1m 29s',
      '  workers: 2',
      '',
      '  worker    steps  micro-batches  mean step ms  ms/micro-batch  straggler',
      '  worker-0    700           1400         118.2            20.3',
      '  worker-1    700            600         119.0            47.9  yes',
      "  straggler: mean compute time per micro-batch above 1.5x the median of the other workers'",
      '',
      '  split       examples  accuracy  majority baseline  macro F1',
      '  validation       300     81.0%  52.3% (positive)      0.805',
      '  test             298     82.2%  50.0% (negative)      0.822',
      '  timings and workers: /runs/a/run-summary.json',
    ].join('\n'));
  });

  it('says one in-process worker for `train`, and leaves out stages that did not run', () => {
    const train: RunSummary = { format: 1, workerCount: 1, inProcess: true, timings: { dataPreparation: { seconds: 0.4 }, finetuning: { seconds: 2, steps: 6, seqPerSec: 36 } } };
    expect(formatClosingTable(train, {}, 'x.json')).toBe([
      'run summary',
      '  stage              time  steps  seq/s',
      '  data preparation  0.4 s',
      '  finetuning        2.0 s      6   36.0',
      '  total             2.4 s',
      '  workers: 1 (in-process)',
      '  timings and workers: x.json',
    ].join('\n'));
  });

  it('formats durations in seconds, minutes and hours', () => {
    expect([0.04, 59.94, 60, 185, 3725].map(formatDuration)).toEqual(['0.0 s', '59.9 s', '1m 00s', '3m 05s', '1h 02m']);
  });

  it('aligns columns without trailing blanks', () => {
    expect(alignColumns([['a', 'bb', ''], ['ccc', 'd', '']], ['left', 'right', 'left'])).toEqual(['  a    bb', '  ccc   d']);
  });
});

describe('run-summary.json', () => {
  it('puts data preparation first, rounds, and carries the workers and the straggler rule in a cluster', () => {
    const s = runSummary(
      {
        metrics: {},
        timings: { pretraining: { seconds: 1.23456, steps: 6, sequences: 72, seqPerSec: 58.3333 }, evaluation: { seconds: 0.5 } },
        workers: { w1: { steps: 12, microBatches: 20, meanStepMs: 10.04, msPerMicroBatch: 3.14159, straggler: false } },
      },
      { dataPreparationSeconds: 2.00049, expectedWorkers: 3 },
    );
    expect(s).toEqual({
      format: 1, workerCount: 3, inProcess: false,
      timings: { dataPreparation: { seconds: 2 }, pretraining: { seconds: 1.235, steps: 6, sequences: 72, seqPerSec: 58.3 }, evaluation: { seconds: 0.5 } },
      workers: { w1: { steps: 12, microBatches: 20, meanStepMs: 10, msPerMicroBatch: 3.14, straggler: false } },
      stragglerRule: STRAGGLER_RULE,
    });
    expect(Object.keys(s.timings)[0]).toBe('dataPreparation');
  });

  it('has no workers block for an in-process run', () => {
    const s = runSummary({ metrics: {}, timings: {} }, { dataPreparationSeconds: 1, expectedWorkers: null });
    expect(s).toEqual({ format: 1, workerCount: 1, inProcess: true, timings: { dataPreparation: { seconds: 1 } } });
  });
});

describe('stragglers and the worker tally', () => {
  it('flags a worker slower per micro-batch than 1.5x the median of the others', () => {
    expect(stragglers(new Map([['a', 10], ['b', 11], ['c', 16]]))).toEqual(['c']);
    expect(stragglers(new Map([['a', 10], ['b', 11], ['c', 15]]))).toEqual([]);
    expect(stragglers(new Map([['a', 10], ['b', 31]]))).toEqual(['b']);
    // One worker, or one without measurements, is never judged.
    expect(stragglers(new Map([['a', 10]]))).toEqual([]);
    expect(stragglers(new Map([['a', 10], ['b', 0]]))).toEqual([]);
  });

  it('sums micro-batches and timings reports per worker and passes each call on', () => {
    const seen: string[] = [];
    const next: ServiceObserver = {
      received: (w, n) => seen.push(`received ${w} ${n}`),
      served: (w) => seen.push(`served ${w}`),
      refusedUpload: () => seen.push('refused'),
      timings: (w) => seen.push(`timings ${w}`),
    };
    const tally = new WorkerTally(next);
    tally.received('w1', 2, 100);
    tally.received('w1', 1, 100);
    tally.received('w0', 1, 100);
    tally.served('w0', 10);
    tally.refusedUpload(new Error('x'));
    tally.timings('w1', { phase: 'pretrain', steps: 2, stepMs: 50, computeMs: 60 });
    tally.timings('w0', { phase: 'pretrain', steps: 2, stepMs: 52, computeMs: 4 });
    expect(tally.report()).toEqual({
      w0: { steps: 2, microBatches: 1, meanStepMs: 26, msPerMicroBatch: 4, straggler: false },
      w1: { steps: 2, microBatches: 3, meanStepMs: 25, msPerMicroBatch: 20, straggler: true },
    });
    expect(seen).toEqual(['received w1 2', 'received w1 1', 'received w0 1', 'served w0', 'refused', 'timings w1', 'timings w0']);
  });
});

describe('the run clock', () => {
  it('sums wall time per stage and seq/s over the steps own durations', async () => {
    let now = 0;
    const clock = new RunClock(() => now);
    await clock.time('pretraining', async () => {
      now += 5000;
      clock.step('pretrain', 12, 1000);
      clock.step('pretrain', 12, 1000);
    });
    await clock.time('evaluation', async () => void (now += 500));
    await clock.time('evaluation', async () => void (now += 250));
    expect(clock.timings()).toEqual({
      pretraining: { seconds: 5, steps: 2, sequences: 24, seqPerSec: 12 },
      evaluation: { seconds: 0.75 },
    });
  });
});
