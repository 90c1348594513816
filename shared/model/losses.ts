/**
 * Losses for the pretraining and classification objectives. Each returns the
 * micro-batch's SUM of per-example losses divided by counts of the WHOLE global
 * batch (masked tokens, sequences), so the sum of micro-batch gradients is the
 * gradient of the global batch's mean loss, whatever the micro-batch split.
 * The classification loss may weigh each example by its label's class weight
 * (imbalanced data), which keeps that property. Pure functions of (parameters, batch).
 */
import * as tf from '@tensorflow/tfjs-core';
import { backendHas, SOFTMAX_XENT, SOFTMAX_XENT_GRAD } from '../backend/custom-kernels.js';
import type { BertConfig } from './config.js';
import { encode, type Params } from './bert.js';
import { DropoutSites, siteSeed } from './dropout.js';
import { classifierLogits, mlmLogits, nspLogits } from './heads.js';

/**
 * Per-row softmax cross-entropy with integer labels: logits [n, c], labels [n]
 * -> losses [n]. Custom gradient (softmax - onehot) avoids materialising a dense
 * one-hot on the forward pass and a scatter on the backward pass.
 */
const stockSoftmaxCrossEntropy = tf.customGrad(((...args: unknown[]) => {
  const [logits, labels, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  const lg = logits as tf.Tensor2D;
  const [n, classes] = lg.shape;
  // The softmax once, kept for the backward pass; the loss is -log of the label's
  // probability, floored at 1e-37 (a loss of ~85 nats) where float32 underflows.
  // (tfjs-wasm's Softmax is several times faster than its Exp on [tokens, vocab].)
  const probs = tf.softmax(lg);
  const rowStart = tf.range(0, n * classes, classes, 'int32'); // [n] int32
  const picked = tf.gather(tf.reshape(probs, [-1]), tf.add(rowStart, labels as tf.Tensor1D)); // [n]
  const loss = tf.neg(tf.log(tf.maximum(picked, 1e-37)));
  save([probs, labels]);
  return {
    value: loss,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [p, y] = saved as [tf.Tensor2D, tf.Tensor1D];
      const grad = tf.mul(tf.sub(p, tf.oneHot(y, classes, 1, 0, 'float32')), tf.reshape(dy, [n, 1]));
      return [grad, tf.zerosLike(y)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (logits: tf.Tensor, labels: tf.Tensor) => tf.Tensor1D;

/**
 * The same loss as one backend kernel each way (wasm-blas: one native pass per
 * row). The forward kernel also gives each row's argmax (the first index of the
 * largest logit, as tf.argMax); it is handed back beside the loss.
 */
function kernelSoftmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor, wantArgmax: boolean): { loss: tf.Tensor1D; argmax?: tf.Tensor1D } {
  let argmax: tf.Tensor1D | undefined;
  const op = tf.customGrad(((...args: unknown[]) => {
    const [lg, lb, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [probs, loss, am] = tf.engine().runKernel(SOFTMAX_XENT, { logits: lg, labels: lb }) as tf.Tensor[];
    if (wantArgmax) argmax = tf.keep(am as tf.Tensor1D); // customGrad's forward runs in a tidy; the caller disposes it
    save([probs!, lb]);
    return {
      value: loss!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [p, y] = saved as [tf.Tensor2D, tf.Tensor1D];
        return [tf.engine().runKernel(SOFTMAX_XENT_GRAD, { probs: p, labels: y, dy }) as tf.Tensor, tf.zerosLike(y)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (logits: tf.Tensor, labels: tf.Tensor) => tf.Tensor1D;
  const loss = op(logits, labels);
  return argmax === undefined ? { loss } : { loss, argmax };
}

/** Per-row losses and each row's argmax (int32), from one kernel where the backend has it. The caller disposes argmax. */
export function sparseSoftmaxCrossEntropyWithArgmax(logits: tf.Tensor, labels: tf.Tensor): { loss: tf.Tensor1D; argmax: tf.Tensor1D } {
  if (backendHas(SOFTMAX_XENT)) {
    const { loss, argmax } = kernelSoftmaxCrossEntropy(logits, labels, true);
    return { loss, argmax: argmax! };
  }
  return { loss: stockSoftmaxCrossEntropy(logits, labels), argmax: tf.argMax(logits, 1) as tf.Tensor1D };
}

export function sparseSoftmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor1D {
  return backendHas(SOFTMAX_XENT) ? kernelSoftmaxCrossEntropy(logits, labels, false).loss : stockSoftmaxCrossEntropy(logits, labels);
}

export interface PretrainingBatch {
  inputIds: tf.Tensor2D; // [b, s] int32
  tokenTypeIds: tf.Tensor2D; // [b, s] int32
  attentionMask: tf.Tensor2D; // [b, s] float32
  maskedPositions: tf.Tensor2D; // [b, P] int32
  maskedIds: tf.Tensor2D; // [b, P] int32
  maskedWeights: tf.Tensor2D; // [b, P] float32, 0 at padding predictions
  nspLabels: tf.Tensor1D; // [b] int32
}

/** Counts over the whole global batch that normalise every micro-batch's loss. */
export interface GlobalCounts {
  sequences: number;
  /** Sum of masked-LM weights (real masked tokens); pretraining only. */
  maskedTokens?: number;
}

export interface PretrainingLoss {
  loss: tf.Scalar; // mlm + nsp, normalised by global counts
  mlmLossSum: tf.Scalar; // sum over this micro-batch of weighted token losses
  nspLossSum: tf.Scalar;
  mlmCorrect: tf.Scalar; // weighted count of correct masked predictions
  nspCorrect: tf.Scalar;
}

export function pretrainingLoss(
  c: BertConfig,
  p: Params,
  b: PretrainingBatch,
  counts: GlobalCounts,
  opts: { training: boolean; dropoutSeed: number },
): PretrainingLoss {
  const { sequenceOutput, pooledOutput } = encode(c, p, b, opts);
  const logits = mlmLogits(c, p, sequenceOutput, b.maskedPositions); // [b*P, V]
  const ids = tf.reshape(b.maskedIds, [-1]) as tf.Tensor1D;
  const weights = tf.reshape(b.maskedWeights, [-1]);
  const { loss: tokenLoss, argmax: predicted } = sparseSoftmaxCrossEntropyWithArgmax(logits, ids);
  const mlmLossSum = tf.sum(tf.mul(tokenLoss, weights));
  const nsp = nspLogits(p, pooledOutput);
  const nspLossSum = tf.sum(sparseSoftmaxCrossEntropy(nsp, b.nspLabels));
  const maskedTokens = Math.max(counts.maskedTokens ?? 1, 1);
  const loss = tf.add(tf.div(mlmLossSum, maskedTokens), tf.div(nspLossSum, counts.sequences)) as tf.Scalar;
  const mlmCorrect = tf.sum(tf.mul(tf.cast(tf.equal(predicted, ids), 'float32'), weights)) as tf.Scalar;
  predicted.dispose();
  const nspCorrect = tf.sum(tf.cast(tf.equal(tf.argMax(nsp, 1), b.nspLabels), 'float32')) as tf.Scalar;
  return { loss, mlmLossSum: mlmLossSum as tf.Scalar, nspLossSum: nspLossSum as tf.Scalar, mlmCorrect, nspCorrect };
}

export interface ClassificationBatch {
  inputIds: tf.Tensor2D;
  tokenTypeIds: tf.Tensor2D;
  attentionMask: tf.Tensor2D;
  labels: tf.Tensor1D; // [b] int32
}

export interface ClassificationOutput {
  loss: tf.Scalar;
  lossSum: tf.Scalar;
  logits: tf.Tensor2D;
}

/**
 * The micro-batch's sum of per-example cross-entropies, each times its label's
 * class weight when `classWeights` ([numLabels]) is given: sum_i w_{y_i} · CE_i.
 * Divided by the global batch's sequence count (not by the sum of weights, as
 * PyTorch's weighted mean does), so it stays a sum of per-micro-batch terms and
 * the reduced gradient does not depend on the split; balanced weights average
 * 1 over the training set, so the scale stays that of the plain mean.
 */
export function weightedCrossEntropySum(logits: tf.Tensor2D, labels: tf.Tensor1D, classWeights?: Float32Array | null): tf.Scalar {
  const ce = sparseSoftmaxCrossEntropy(logits, labels); // [b]
  if (!classWeights) return tf.sum(ce) as tf.Scalar;
  const w = tf.gather(tf.tensor1d(classWeights, 'float32'), labels); // [b]
  return tf.sum(tf.mul(ce, w)) as tf.Scalar;
}

/** Classification as BertForSequenceClassification: dropout on the pooled output, then the classifier. */
export function classificationLoss(
  c: BertConfig,
  p: Params,
  b: ClassificationBatch,
  counts: GlobalCounts,
  opts: { training: boolean; dropoutSeed: number; classWeights?: Float32Array | null },
): ClassificationOutput {
  const { pooledOutput } = encode(c, p, b, opts);
  // A site number far from the encoder's so the streams never coincide.
  const drop = new DropoutSites(siteSeed(opts.dropoutSeed, 1 << 20), opts.training);
  const logits = classifierLogits(p, drop.apply(pooledOutput, c.hidden_dropout_prob) as tf.Tensor2D);
  const lossSum = weightedCrossEntropySum(logits, b.labels, opts.classWeights);
  return { loss: tf.div(lossSum, counts.sequences) as tf.Scalar, lossSum, logits };
}
