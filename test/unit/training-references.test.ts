/**
 * The training arithmetic against values worked out independently — from the
 * formulas, in this file, or by hand — not against another run of the same
 * code: AdamW as google-research/bert's AdamWeightDecayOptimizer (no bias
 * correction, decoupled decay scaled by the learning rate, masked), on both
 * the native kernels and the JS loop; the learning-rate schedule; global-norm
 * clipping; the data plan's coverage and order; precision, recall, F1 and the
 * confusion matrix.
 */
import { describe, expect, it } from 'vitest';
import { jsVectorOps } from '../../shared/training/vector-js.js';
import { selectVectorKernels, vectorOps } from '../../shared/backend/vector-kernels.js';
import { clipByGlobalNorm } from '../../shared/training/clip.js';
import { DataPlan } from '../../shared/training/data-plan.js';
import { classificationMetrics, confusionMatrix } from '../../shared/training/metrics.js';
import { learningRate } from '../../shared/training/schedule.js';
import { initParams } from '../../shared/training/init.js';
import { presetConfig } from '../../shared/model/config.js';
import type { ParamSpec } from '../../shared/model/params.js';

const TINY_BERT = presetConfig('tiny');
const SPEC: ParamSpec = { name: 'w', shape: [64], decay: true, init: 'normal' };

const selected = selectVectorKernels('auto'); // the native kernels where the addon is built
const S = { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0.01 };

/** google-research/bert's update for one element, written out: m, v, then p -= lr * (m / (sqrt(v) + eps) + wd * p [if decayed]). */
function referenceStep(p: number, g: number, m: number, v: number, lr: number, decayed: boolean): [number, number, number] {
  const m1 = S.beta1 * m + (1 - S.beta1) * g;
  const v1 = S.beta2 * v + (1 - S.beta2) * g * g;
  const update = m1 / (Math.sqrt(v1) + S.epsilon) + (decayed ? S.weightDecay * p : 0);
  return [p - lr * update, m1, v1];
}

describe('AdamW (google-research/bert: no bias correction, decoupled masked decay)', () => {
  for (const [name, ops] of [[`selected kernels: ${selected.name}`, vectorOps()], ['JS loop', jsVectorOps]] as const) {
    it(`matches the formula over three steps, element by element (${name})`, () => {
      const params = Float32Array.of(1, -2, 0.5, 3);
      const decay = Uint8Array.of(1, 0, 1, 0);
      const m = new Float32Array(4);
      const v = new Float32Array(4);
      const grads = [Float32Array.of(0.5, -1, 0, 2), Float32Array.of(0.25, 0.5, -0.125, 1), Float32Array.of(-1, 0, 0.5, 0.75)];
      const ref = [...params].map((p) => ({ p, m: 0, v: 0 }));
      for (const [t, g] of grads.entries()) {
        const lr = 0.1 / (t + 1);
        ops.adamWStep(params, g, m, v, decay, lr, S.beta1, S.beta2, S.epsilon, S.weightDecay);
        ref.forEach((r, i) => {
          // The reference keeps float32 state, as the optimizer stores it.
          const [p, m1, v1] = referenceStep(r.p, g[i]!, r.m, r.v, lr, decay[i] === 1);
          Object.assign(r, { p: Math.fround(p), m: Math.fround(m1), v: Math.fround(v1) });
        });
        expect([...params]).toEqual(ref.map((r) => r.p));
        expect([...m]).toEqual(ref.map((r) => r.m));
        expect([...v]).toEqual(ref.map((r) => r.v));
      }
    });
  }

  it('has no bias correction: the first step of g = 0.5 from zero moments moves p by lr * (0.05 / (sqrt(0.00025) + 1e-6) + 0.01 p)', () => {
    // Worked by hand: m = 0.1 * 0.5 = 0.05; v = 0.001 * 0.25 = 0.00025; sqrt(v) = 0.0158114;
    // 0.05 / 0.0158124 = 3.16208; + 0.01 * 1 = 3.17208; p = 1 - 0.1 * 3.17208 = 0.682792.
    // (With Adam's bias correction the step would be ~ lr * 1 = 0.1, p ~ 0.9.)
    const p = Float32Array.of(1);
    jsVectorOps.adamWStep(p, Float32Array.of(0.5), new Float32Array(1), new Float32Array(1), Uint8Array.of(1), 0.1, S.beta1, S.beta2, S.epsilon, S.weightDecay);
    expect(p[0]).toBeCloseTo(0.682792, 5);
  });
});

describe('learning-rate schedule', () => {
  it('warms up linearly (step t uses (t + 1) / warmup), then decays linearly to 0 at totalSteps from the end of the warmup', () => {
    // peak 1e-3, warmup 2, total 10, worked by hand:
    //   t = 0, 1: 1e-3 * (t + 1) / 2             -> 0.5e-3, 1e-3
    //   t >= 2:   1e-3 * (10 - t) / (10 - 2)     -> 1, 7/8, 6/8, ..., 1/8 (x 1e-3), 0 at t = 10
    const s = { peakLr: 1e-3, warmupSteps: 2, totalSteps: 10 };
    const want = [0.5, 1, 1, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0].map((x) => x * 1e-3);
    want.forEach((w, t) => expect(learningRate(s, t)).toBeCloseTo(w, 15));
    expect(learningRate(s, 12)).toBe(0);
  });
});

describe('global-norm clipping', () => {
  it('scales [3, 4] (norm 5) to [0.6, 0.8] at clip 1 and returns the norm before clipping; leaves a smaller gradient alone', () => {
    const g = Float32Array.of(3, 4);
    expect(clipByGlobalNorm(g, 1)).toBe(5);
    expect([...g]).toEqual([Math.fround(0.6), Math.fround(0.8)]);
    const small = Float32Array.of(0.3, 0.4);
    expect(clipByGlobalNorm(small, 1)).toBeCloseTo(0.5, 7);
    expect([...small]).toEqual([Math.fround(0.3), Math.fround(0.4)]);
  });
});

describe('data plan', () => {
  const spec = { stream: 'pretrain', seed: 12345, numExamples: 10, globalBatch: 4, microBatch: 2 };

  it('covers every example exactly once per epoch, in micro-batches of the given size, and again the next epoch', () => {
    const plan = new DataPlan(spec);
    // 10 examples, 4 per step: epoch 0 is positions 0..9 = steps 0, 1 and half of step 2.
    const positions = Array.from({ length: 5 }, (_, step) => [0, 1].flatMap((j) => plan.examples(step, j))).flat();
    expect(positions).toHaveLength(20);
    expect([...positions.slice(0, 10)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect([...positions.slice(10, 20)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(positions.slice(0, 10)).not.toEqual(positions.slice(10, 20)); // each epoch its own permutation
    expect(plan.examples(0, 0)).toHaveLength(2);
  });

  it('is a pure function of its spec: the same examples from a fresh plan, at any step, in any order of asking', () => {
    const a = new DataPlan(spec);
    const b = new DataPlan(spec);
    const late = b.examples(7, 1);
    expect(a.examples(0, 0)).toEqual(b.examples(0, 0));
    expect(a.examples(7, 1)).toEqual(late);
    expect(new DataPlan({ ...spec, stream: 'finetune' }).examples(0, 0)).not.toEqual(a.examples(0, 0));
  });
});

describe('the whole seed', () => {
  it('decides the data order and the initial weights: seeds 2^20 and 2^21 apart (and 1 apart) all differ', () => {
    const order = (seed: number): number[] => new DataPlan({ stream: 'pretrain', seed, numExamples: 1000, globalBatch: 8, microBatch: 8 }).examples(0, 0);
    const weights = (seed: number): number[] => [...initParams(TINY_BERT, [SPEC], seed).get('w')!.subarray(0, 8)];
    for (const [a, b] of [[5, 5 + 2 ** 21], [5, 5 + 2 ** 20], [5, 6], [0, 2 ** 31 - 1]] as const) {
      expect(order(a), `data order, seeds ${a} and ${b}`).not.toEqual(order(b));
      expect(weights(a), `initial weights, seeds ${a} and ${b}`).not.toEqual(weights(b));
    }
    expect(order(5)).toEqual(order(5));
    expect(() => order(2 ** 31)).toThrow(/seed must be an integer in \[0, 2\^31 - 1\], got 2147483648/);
  });
});

describe('classification metrics', () => {
  it('gives the hand-worked precision, recall, F1, accuracy and confusion matrix of a 3-class case', () => {
    // labels      0 0 0 0 1 1 1 2 2 2
    // predictions 0 0 1 2 1 1 0 2 2 1
    const labels = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2];
    const predictions = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1];
    const m = confusionMatrix(labels, predictions, 3);
    expect(m).toEqual([[2, 1, 1], [1, 2, 0], [0, 1, 2]]); // rows true, columns predicted
    const r = classificationMetrics(m, ['a', 'b', 'c'], 5);
    // class a: tp 2, predicted 3, support 4 -> P 2/3, R 1/2, F1 2*(1/3)/(7/6) = 4/7
    // class b: tp 2, predicted 4, support 3 -> P 1/2, R 2/3, F1 4/7
    // class c: tp 2, predicted 3, support 3 -> P 2/3, R 2/3, F1 2/3
    expect(r.perClass.map((c) => [c.precision, c.recall, c.f1, c.support])).toEqual([
      [2 / 3, 1 / 2, expect.closeTo(4 / 7, 12), 4],
      [1 / 2, 2 / 3, expect.closeTo(4 / 7, 12), 3],
      [2 / 3, 2 / 3, expect.closeTo(2 / 3, 12), 3],
    ]);
    expect(r.accuracy).toBe(0.6);
    expect(r.macro.precision).toBeCloseTo((2 / 3 + 1 / 2 + 2 / 3) / 3, 12);
    expect(r.macro.f1).toBeCloseTo((4 / 7 + 4 / 7 + 2 / 3) / 3, 12);
    expect(r.loss).toBe(0.5);
  });

  it('counts a class never predicted as precision 0 (not NaN), as when predictions collapse to one class', () => {
    const r = classificationMetrics(confusionMatrix([0, 0, 1], [0, 0, 0], 2), ['ham', 'spam'], 0);
    expect(r.perClass[1]).toMatchObject({ precision: 0, recall: 0, f1: 0, support: 1 });
    expect(r.accuracy).toBeCloseTo(2 / 3, 12);
  });
});
