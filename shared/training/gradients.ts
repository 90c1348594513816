/**
 * The gradient of one micro-batch: a pure function of (parameters, batch,
 * global counts, dropout seed), returned as one flat float32 vector in
 * parameter-table order, plus the loss sums and correct counts that metrics
 * are built from. Nothing here depends on which process runs it.
 */
import * as tf from '@tensorflow/tfjs-core';
import '../backend/register-gradients.js';
import type { Params } from '../model/bert.js';
import type { BertConfig } from '../model/config.js';
import { classificationLoss, pretrainingLoss, type GlobalCounts } from '../model/losses.js';
import { classifyTensors, maskedTokenCount, pretrainTensors, type BatchArrays } from './batches.js';
import { grads as gradsOf } from './backprop.js';
import { readFloatsInto } from '../backend/read-into.js';
import type { FlatLayout } from './flat.js';

/** Sums over a micro-batch; added up (in tree order) over the global batch. */
export interface MicroStats {
  sequences: number;
  lossSum: number; // pretraining: MLM token-loss sum; classification: CE sum
  nspLossSum: number;
  correct: number; // MLM correct masked tokens, or correct classifications
  nspCorrect: number;
  maskedTokens: number;
}

export interface MicroResult {
  grad: Float32Array;
  stats: MicroStats;
}

function lossAndStats(c: BertConfig, p: Params, b: BatchArrays, counts: GlobalCounts, training: boolean, seed: number, classWeights: Float32Array | null) {
  if (b.kind === 'pretrain') {
    const out = pretrainingLoss(c, p, pretrainTensors(b), counts, { training, dropoutSeed: seed });
    return { loss: out.loss, stats: [out.mlmLossSum, out.nspLossSum, out.mlmCorrect, out.nspCorrect], masked: maskedTokenCount(b) };
  }
  const out = classificationLoss(c, p, classifyTensors(b), counts, { training, dropoutSeed: seed, classWeights });
  const correct = tf.sum(tf.cast(tf.equal(tf.argMax(out.logits, 1), tf.tensor1d(b.labels, 'int32')), 'float32'));
  return { loss: out.loss, stats: [out.lossSum, tf.scalar(0), correct, tf.scalar(0)], masked: 0 };
}

function readStats(b: BatchArrays, stats: tf.Tensor[], masked: number): MicroStats {
  const [lossSum, nspLossSum, correct, nspCorrect] = stats.map((t) => t.dataSync()[0]!) as [number, number, number, number];
  return { sequences: b.size, lossSum, nspLossSum, correct, nspCorrect, maskedTokens: masked };
}

export interface GradientOptions {
  /** Write the gradient here (every element is overwritten) instead of into a fresh array. */
  into?: Float32Array | undefined;
  /**
   * Classification only: per-class loss weights [numLabels] (see
   * class-weights.ts); the stats' lossSum is then the weighted sum that is
   * optimised. Null or absent: the plain cross-entropy.
   */
  classWeights?: Float32Array | null;
}

export function microBatchGradient(
  c: BertConfig,
  layout: FlatLayout,
  params: Params,
  batch: BatchArrays,
  counts: GlobalCounts,
  dropoutSeed: number,
  opts: GradientOptions = {},
): MicroResult {
  const { into, classWeights = null } = opts;
  if (into !== undefined && into.length !== layout.total) throw new RangeError(`gradient buffer of ${into.length} floats, expected ${layout.total}`);
  const names = layout.specs.map((s) => s.name);
  const xs = names.map((n) => params[n]!);
  let kept: tf.Tensor[] = [];
  let masked = 0;
  const grads = tf.tidy(() =>
    gradsOf((...ps: tf.Tensor[]) => {
      const byName: Record<string, tf.Tensor> = {};
      names.forEach((n, i) => (byName[n] = ps[i]!));
      const out = lossAndStats(c, byName, batch, counts, true, dropoutSeed, classWeights);
      kept = out.stats.map((t) => tf.keep(t));
      masked = out.masked;
      return out.loss;
    })(xs),
  );
  const grad = into ?? new Float32Array(layout.total);
  grads.forEach((g, i) => readFloatsInto(g, grad, layout.offsets[i]!));
  tf.dispose(grads);
  const stats = readStats(batch, kept, masked);
  tf.dispose(kept);
  return { grad, stats };
}

/**
 * Loss sums and correct counts without gradients (evaluation), and class
 * predictions for classification. The loss is always the plain cross-entropy,
 * so evaluation losses compare across class weightings.
 */
export function microBatchEval(c: BertConfig, params: Params, batch: BatchArrays): { stats: MicroStats; predictions?: Int32Array } {
  const counts: GlobalCounts = { sequences: batch.size, maskedTokens: 1 };
  let stats: MicroStats | undefined;
  let predictions: Int32Array | undefined;
  tf.tidy(() => {
    if (batch.kind === 'classify') {
      const out = classificationLoss(c, params, classifyTensors(batch), counts, { training: false, dropoutSeed: 0 });
      predictions = tf.argMax(out.logits, 1).dataSync() as Int32Array;
      let correct = 0;
      predictions.forEach((p, i) => (correct += p === batch.labels[i] ? 1 : 0));
      stats = { sequences: batch.size, lossSum: out.lossSum.dataSync()[0]!, nspLossSum: 0, correct, nspCorrect: 0, maskedTokens: 0 };
    } else {
      const out = lossAndStats(c, params, batch, counts, false, 0, null);
      stats = readStats(batch, out.stats, out.masked);
    }
  });
  return predictions ? { stats: stats!, predictions } : { stats: stats! };
}
