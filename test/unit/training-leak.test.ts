/**
 * The trainer's own step — micro-batch gradients of BERT (MLM + NSP), the tree
 * sum, clipping and the AdamW update — leaves no tensor behind on wasm-blas:
 * the live tensor count and the backend's buffers stay flat across steps.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../shared/backend/select.js';
import { parseBertConfig } from '../../shared/model/config.js';
import { paramSpecs } from '../../shared/model/params.js';
import { microBatchGradient } from '../../shared/training/gradients.js';
import { initParams } from '../../shared/training/init.js';
import { Replica } from '../../shared/training/replica.js';
import { randomPretrainBatch } from '../../shared/training/synthetic-batches.js';
import { treeSum } from '../../shared/training/tree-sum.js';

describe('training step memory', () => {
  it('does not grow the tensor count across repeated steps', async () => {
    await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    const bert = parseBertConfig({ vocab_size: 300, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64 });
    const specs = paramSpecs(bert, { heads: 'pretraining' });
    const replica = Replica.fromValues(specs, initParams(bert, specs, 3));
    const batches = [0, 1].map((i) => randomPretrainBatch(bert.vocab_size, 4, 16, 3, 20 + i));
    const update = { adamW: { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0.01 }, clipNorm: 1, schedule: { peakLr: 1e-3, warmupSteps: 2, totalSteps: 50 } };
    const step = (s: number): void => {
      const grads = batches.map((b, j) => microBatchGradient(bert, replica.layout, replica.paramTensors(), b, { sequences: 8, maskedTokens: 10 }, s * 2 + j).grad);
      replica.applyGradient(treeSum({ lo: 0, hi: 2 }, (i) => grads[i]!), s, update);
    };
    step(0);
    step(1);
    const tensors = tf.memory().numTensors;
    const buffers = tf.memory().numDataBuffers;
    for (let s = 2; s < 12; s++) step(s);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.memory().numDataBuffers).toBe(buffers);
  });
});
