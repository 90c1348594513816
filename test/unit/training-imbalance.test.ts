/**
 * Imbalanced data, against values worked out by hand or from the formulas in
 * this file: scikit-learn's balanced class weights n / (k · n_c); the weighted
 * cross-entropy sum_i w_{y_i} · CE_i and its gradient w_{y_i} · (softmax - onehot);
 * that the weighted loss still splits across micro-batches; the majority-class
 * baseline and the detection of predictions collapsed to one class; the
 * summary lines and the finetune.classWeights setting.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '../../shared/backend/register-gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatSummary } from '../../cli/summary.js';
import { parseRunConfig } from '../../shared/config/run-config.js';
import { ConfigError } from '../../shared/errors.js';
import { parseBertConfig } from '../../shared/model/config.js';
import { weightedCrossEntropySum } from '../../shared/model/losses.js';
import { disposeParams, paramsToTensors } from '../../shared/model/param-tensors.js';
import { paramSpecs } from '../../shared/model/params.js';
import type { BatchSource, ClassifyArrays } from '../../shared/training/batches.js';
import { balancedClassWeights, finetuneClassWeights, labelCounts } from '../../shared/training/class-weights.js';
import { FlatLayout } from '../../shared/training/flat.js';
import { microBatchGradient } from '../../shared/training/gradients.js';
import { initParams } from '../../shared/training/init.js';
import {
  classificationMetrics,
  collapsedPrediction,
  confusionMatrix,
  majorityBaseline,
  splitMetrics,
} from '../../shared/training/metrics.js';

/** A classification batch of `labels.length` rows of `seq` random token ids (deterministic). */
function classifyBatch(labels: number[], seq = 8, vocab = 96): ClassifyArrays {
  const n = labels.length;
  const inputIds = Int32Array.from({ length: n * seq }, (_, i) => (i % seq === 0 ? 2 : 3 + ((i * 37 + 11) % (vocab - 3))));
  return {
    kind: 'classify', size: n, seqLength: seq, inputIds,
    inputMask: new Int32Array(n * seq).fill(1), segmentIds: new Int32Array(n * seq), labels: Int32Array.from(labels),
  };
}

function sourceOf(labels: number[]): BatchSource {
  const all = classifyBatch(labels);
  return {
    size: labels.length,
    batch: (rows) => classifyBatch(rows.map((r) => all.labels[r]!)),
  };
}

describe('balanced class weights', () => {
  it('gives n / (k · n_c): counts [3, 1] -> [4/6, 4/2]', () => {
    const w = balancedClassWeights([3, 1]);
    expect(w).toBeInstanceOf(Float32Array);
    expect(w[0]).toBeCloseTo(0.6667, 4);
    expect(w[1]).toBe(2);
    expect(w[0]).toBe(Math.fround(2 / 3)); // one rounding of the float64 value
  });

  it('averages 1 over the training examples, three classes [6, 3, 1] -> [10/18, 10/9, 10/3]', () => {
    const counts = [6, 3, 1];
    const w = balancedClassWeights(counts);
    expect(Array.from(w)).toEqual([10 / 18, 10 / 9, 10 / 3].map(Math.fround));
    expect(counts.reduce((a, n, c) => a + n * w[c]!, 0) / 10).toBeCloseTo(1, 6);
  });

  it('refuses a label with no training example, naming it', () => {
    expect(() => balancedClassWeights([4, 0, 2], ['ham', 'spam', 'other'])).toThrow(ConfigError);
    expect(() => balancedClassWeights([4, 0, 2], ['ham', 'spam', 'other'])).toThrow(/expected every label in the training split, got none of "spam" \(of 6 training examples\)/);
  });

  it('counts labels of a classification source across read chunks', () => {
    const labels = Array.from({ length: 2500 }, (_, i) => (i % 5 === 0 ? 1 : 0));
    expect(labelCounts(sourceOf(labels), 2)).toEqual([2000, 500]);
  });

  it('takes the run\'s training split for "balanced" and gives null for "none"', () => {
    const data = { sources: { 'classify-train': sourceOf([0, 0, 0, 1]) }, labels: ['ham', 'spam'], fingerprint: 'x' };
    expect(finetuneClassWeights('none', data)).toBeNull();
    expect(Array.from(finetuneClassWeights('balanced', data)!)).toEqual([Math.fround(2 / 3), 2]);
  });
});

describe('weighted cross-entropy', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  // logits [[2, 0], [0, 1], [1, 1]], labels [0, 1, 1], weights [2/3, 2]
  // CE_0 = ln(1 + e^-2) = 0.126928, CE_1 = ln(1 + e^-1) = 0.313262, CE_2 = ln 2 = 0.693147
  // sum w·CE = 2/3 · 0.126928 + 2 · 0.313262 + 2 · 0.693147 = 2.097436
  const L = [[2, 0], [0, 1], [1, 1]];
  const Y = [0, 1, 1];
  const W = [2 / 3, 2];

  it('sums w_{y_i} · CE_i as worked by hand', () => {
    expect(2 / 3 * Math.log(1 + Math.exp(-2)) + 2 * Math.log(1 + Math.exp(-1)) + 2 * Math.LN2).toBeCloseTo(2.097436, 6);
    const v = tf.tidy(() => weightedCrossEntropySum(tf.tensor2d(L), tf.tensor1d(Y, 'int32'), Float32Array.from(W)).dataSync()[0]!);
    expect(v).toBeCloseTo(2.097436, 5);
    const plain = tf.tidy(() => weightedCrossEntropySum(tf.tensor2d(L), tf.tensor1d(Y, 'int32')).dataSync()[0]!);
    expect(plain).toBeCloseTo(0.126928 + 0.313262 + 0.693147, 5);
    const ones = tf.tidy(() => weightedCrossEntropySum(tf.tensor2d(L), tf.tensor1d(Y, 'int32'), Float32Array.from([1, 1])).dataSync()[0]!);
    expect(ones).toBe(plain);
  });

  it('has the gradient w_{y_i} · (softmax_i - onehot_i)', () => {
    const g = tf.tidy(() =>
      Array.from(tf.grad((x: tf.Tensor) => weightedCrossEntropySum(x as tf.Tensor2D, tf.tensor1d(Y, 'int32'), Float32Array.from(W)))(tf.tensor2d(L)).dataSync()),
    );
    const expected = L.flatMap((row, i) => {
      const z = row.map(Math.exp);
      const s = z[0]! + z[1]!;
      return row.map((_, j) => W[Y[i]!]! * (z[j]! / s - (j === Y[i] ? 1 : 0)));
    });
    // by hand, row 0: 2/3 · (e^2/(e^2+1) - 1, 1/(e^2+1)) = 2/3 · (-0.119203, 0.119203) = (-0.079469, 0.079469)
    expect(expected[0]).toBeCloseTo(-0.079469, 6);
    g.forEach((x, i) => expect(x).toBeCloseTo(expected[i]!, 6));
  });

  it('keeps the micro-batch split: two halves add up to the whole batch gradient', () => {
    const bert = parseBertConfig({
      vocab_size: 96, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 4, intermediate_size: 64,
      max_position_embeddings: 16, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0,
    });
    const specs = paramSpecs(bert, { heads: 'classification', numLabels: 2 });
    const layout = new FlatLayout(specs);
    const params = paramsToTensors(specs, initParams(bert, specs, 3));
    const labels = [0, 0, 0, 1, 0, 0, 1, 0];
    const whole = classifyBatch(labels);
    const S = whole.seqLength;
    const half = (lo: number, hi: number): ClassifyArrays => ({
      ...whole, size: hi - lo, inputIds: whole.inputIds.slice(lo * S, hi * S), inputMask: whole.inputMask.slice(lo * S, hi * S),
      segmentIds: whole.segmentIds.slice(lo * S, hi * S), labels: whole.labels.slice(lo, hi),
    });
    const counts = { sequences: 8 };
    const classWeights = balancedClassWeights([6, 2]);
    const w = microBatchGradient(bert, layout, params, whole, counts, 1, { classWeights });
    const a = microBatchGradient(bert, layout, params, half(0, 4), counts, 1, { classWeights });
    const b = microBatchGradient(bert, layout, params, half(4, 8), counts, 1, { classWeights });
    const plain = microBatchGradient(bert, layout, params, whole, counts, 1);
    let maxErr = 0;
    let maxAbs = 0;
    let differs = false;
    for (let i = 0; i < w.grad.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(a.grad[i]! + b.grad[i]! - w.grad[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(w.grad[i]!));
      differs ||= w.grad[i] !== plain.grad[i];
    }
    expect(maxErr / maxAbs).toBeLessThan(1e-4);
    expect(differs).toBe(true);
    expect(a.stats.lossSum + b.stats.lossSum).toBeCloseTo(w.stats.lossSum, 4);
    disposeParams(params);
  });
});

describe('majority baseline and collapse', () => {
  it('scores the training split\'s most frequent label on the evaluated split', () => {
    // split: 11 true "ham", 3 true "spam"; training counts ham 900, spam 300
    const m = confusionMatrix([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1], new Array(14).fill(0), 2);
    expect(majorityBaseline(m, ['ham', 'spam'], [900, 300])).toEqual({ label: 'ham', accuracy: 11 / 14 });
    // the training majority need not be this split's: spam-heavy training, scored on the same split
    expect(majorityBaseline(m, ['ham', 'spam'], [100, 300])).toEqual({ label: 'spam', accuracy: 3 / 14 });
    // a tie goes to the lowest label id
    expect(majorityBaseline(m, ['ham', 'spam'], [5, 5]).label).toBe('ham');
  });

  it('detects every prediction in one class while the split has several', () => {
    expect(collapsedPrediction([[11, 0], [3, 0]])).toEqual({ label: 0, share: 11 / 14 });
    expect(collapsedPrediction([[0, 4], [0, 2]])).toEqual({ label: 1, share: 2 / 6 }); // to the minority class too
    expect(collapsedPrediction([[10, 1], [3, 0]])).toBeNull(); // one prediction of another class
    expect(collapsedPrediction([[5, 0], [0, 0]])).toBeNull(); // the split has one true class
    expect(collapsedPrediction([[0, 0], [0, 0]])).toBeNull(); // empty
  });

  it('puts the baseline beside the accuracy and names the collapsed label in the split metrics', () => {
    const base = classificationMetrics([[11, 0], [3, 0]], ['ham', 'spam'], 7);
    const m = splitMetrics(base, ['ham', 'spam'], [900, 300]);
    expect(Object.keys(m).slice(0, 4)).toEqual(['examples', 'accuracy', 'majorityBaseline', 'collapsedTo']);
    expect(m.majorityBaseline).toEqual({ label: 'ham', accuracy: 11 / 14 });
    expect(m.collapsedTo).toBe('ham');
    expect(m.accuracy).toBe(11 / 14);
    expect(splitMetrics(classificationMetrics([[10, 1], [1, 2]], ['ham', 'spam'], 0), ['ham', 'spam'], [9, 3]).collapsedTo).toBeNull();
  });
});

describe('summary and config', () => {
  const pretraining = { skipped: 'initialised from x' };

  it('shows the baseline beside the accuracy, the class weights and a warning with advice on collapse', () => {
    const test = splitMetrics(classificationMetrics([[11, 0], [3, 0]], ['ham', 'spam'], 7), ['ham', 'spam'], [900, 300]);
    const validation = splitMetrics(classificationMetrics([[10, 1], [2, 1]], ['ham', 'spam'], 7), ['ham', 'spam'], [900, 300]);
    const classWeights = { mode: 'balanced', trainCounts: { ham: 900, spam: 300 }, weights: { ham: 2 / 3, spam: 2 } };
    const s = formatSummary({ pretraining, finetuning: { classWeights, validation, test } }, '/out');
    expect(s).toMatch(/^finetuning \(test split, 14 examples\): accuracy 78\.6% \(majority baseline 78\.6%: always "ham"\), macro F1 0\.440$/m);
    expect(s).toMatch(/^ {2}class weights \(balanced\): ham 0\.667, spam 2\.000$/m);
    expect(s).toMatch(/^warning: every test prediction is "ham" .*finetune\.classWeights to "balanced" \(--class-weights balanced\), finetune for more steps, or lower finetune\.peakLr$/m);
    expect(s).not.toMatch(/every validation prediction/);
  });

  it('still prints a metrics.json from before the baseline (a finished run resumed)', () => {
    const test = classificationMetrics([[10, 1], [2, 1]], ['ham', 'spam'], 7);
    const s = formatSummary({ pretraining, finetuning: { validation: test, test } }, '/out');
    expect(s).toMatch(/^finetuning \(test split, 14 examples\): accuracy 78\.6%, macro F1/m);
    expect(s).not.toMatch(/warning|baseline|class weights/);
  });

  it('defaults finetune.classWeights to "none" and refuses another value than none or balanced', () => {
    expect(parseRunConfig({}).finetune.classWeights).toBe('none');
    expect(parseRunConfig({ finetune: { classWeights: 'balanced' } }).finetune.classWeights).toBe('balanced');
    expect(() => parseRunConfig({ finetune: { classWeights: 'auto' } })).toThrow(/finetune\.classWeights: Invalid option: expected one of "none"\|"balanced"/);
  });
});
