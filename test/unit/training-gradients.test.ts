/**
 * The micro-batch gradient: every parameter receives one; summing micro-batch
 * gradients (normalised by global counts) gives the whole batch's gradient;
 * the custom cross-entropy gradient matches tfjs's own.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '../../shared/backend/register-gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseBertConfig } from '../../shared/model/config.js';
import { sparseSoftmaxCrossEntropy } from '../../shared/model/losses.js';
import { paramsToTensors, disposeParams } from '../../shared/model/param-tensors.js';
import { paramSpecs } from '../../shared/model/params.js';
import type { PretrainArrays } from '../../shared/training/batches.js';
import { FlatLayout } from '../../shared/training/flat.js';
import { microBatchGradient } from '../../shared/training/gradients.js';
import { initParams } from '../../shared/training/init.js';
import { randomPretrainBatch, sliceBatch } from '../../shared/training/synthetic-batches.js';

const config = parseBertConfig({
  vocab_size: 96, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64,
  max_position_embeddings: 32, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0,
});

describe('micro-batch gradients', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  const specs = paramSpecs(config, { heads: 'pretraining' });
  const layout = new FlatLayout(specs);

  it('gives every parameter a non-zero gradient', () => {
    const params = paramsToTensors(specs, initParams(config, specs, 1));
    const batch = randomPretrainBatch(config.vocab_size, 4, 16, 3, 7);
    const { grad } = microBatchGradient(config, layout, params, batch, { sequences: 4, maskedTokens: 12 }, 1);
    for (const s of specs) {
      const g = layout.view(grad, s.name);
      expect(g.some((x) => x !== 0), s.name).toBe(true);
    }
    disposeParams(params);
  });

  it('sums micro-batch gradients to the whole batch gradient', () => {
    const params = paramsToTensors(specs, initParams(config, specs, 2));
    const batch: PretrainArrays = randomPretrainBatch(config.vocab_size, 8, 16, 3, 9);
    const masked = batch.maskedLmWeights.reduce((a, b) => a + b, 0);
    const counts = { sequences: 8, maskedTokens: masked };
    const whole = microBatchGradient(config, layout, params, batch, counts, 5).grad;
    const a = microBatchGradient(config, layout, params, sliceBatch(batch, 0, 4), counts, 5).grad;
    const b = microBatchGradient(config, layout, params, sliceBatch(batch, 4, 8), counts, 5).grad;
    let maxErr = 0;
    let maxAbs = 0;
    for (let i = 0; i < whole.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(a[i]! + b[i]! - whole[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(whole[i]!));
    }
    expect(maxErr / maxAbs).toBeLessThan(1e-4);
    disposeParams(params);
  });

  it('matches tfjs cross-entropy gradients', () => {
    const logits = tf.randomNormal([5, 7], 0, 2, 'float32', 3);
    const labels = tf.tensor1d([0, 3, 6, 2, 2], 'int32');
    const mine = tf.grad((x: tf.Tensor) => tf.sum(sparseSoftmaxCrossEntropy(x, labels)))(logits);
    const ref = tf.grad((x: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 7), x, undefined, 0, tf.Reduction.SUM))(logits);
    const d = tf.max(tf.abs(tf.sub(mine, ref))).dataSync()[0]!;
    expect(d).toBeLessThan(1e-5);
  });
});
