/**
 * The backward pass that frees as it goes (shared/training/backprop.ts): the
 * same gradient bytes as tf.grads on BERT with dropout, no tensor left behind,
 * and a lower peak of live tensor bytes (tf.profile's peakBytes).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '../../shared/backend/register-gradients.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseBertConfig } from '../../shared/model/config.js';
import { pretrainingLoss } from '../../shared/model/losses.js';
import { disposeParams, paramsToTensors } from '../../shared/model/param-tensors.js';
import { paramSpecs } from '../../shared/model/params.js';
import { grads } from '../../shared/training/backprop.js';
import { pretrainTensors } from '../../shared/training/batches.js';
import { initParams } from '../../shared/training/init.js';
import { randomPretrainBatch } from '../../shared/training/synthetic-batches.js';

const config = parseBertConfig({
  vocab_size: 96, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, max_position_embeddings: 32,
});
const specs = paramSpecs(config, { heads: 'pretraining' });
const batch = randomPretrainBatch(config.vocab_size, 4, 16, 3, 7);
const counts = { sequences: 4, maskedTokens: 12 };

/** The pretraining loss as a function of the parameters, with dropout on. */
function loss(...ps: tf.Tensor[]): tf.Tensor {
  const byName = Object.fromEntries(specs.map((s, i) => [s.name, ps[i]!]));
  return pretrainingLoss(config, byName, pretrainTensors(batch), counts, { training: true, dropoutSeed: 3 }).loss;
}

async function gradientsWith(how: 'tf.grads' | 'backprop'): Promise<{ values: Float32Array[]; peakBytes: number; leaked: number }> {
  const params = paramsToTensors(specs, initParams(config, specs, 1));
  const xs = specs.map((s) => params[s.name]!);
  const before = tf.memory().numTensors;
  let values: Float32Array[] = [];
  const profile = await tf.profile(() => {
    const gs = tf.tidy(() => (how === 'tf.grads' ? tf.grads(loss)(xs) : grads(loss)(xs)));
    values = gs.map((g) => g.dataSync() as Float32Array);
    tf.dispose(gs);
  });
  const leaked = tf.memory().numTensors - before;
  disposeParams(params);
  return { values, peakBytes: profile.peakBytes, leaked };
}

describe('backward pass freeing as it goes', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('gives the same gradient bytes as tf.grads, keeps less alive at its peak and leaves no tensor behind', async () => {
    const reference = await gradientsWith('tf.grads');
    const freeing = await gradientsWith('backprop');
    expect(freeing.values.length).toBe(specs.length);
    freeing.values.forEach((v, i) => {
      expect(Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(Buffer.from(reference.values[i]!.buffer, reference.values[i]!.byteOffset, v.byteLength)), specs[i]!.name).toBe(true);
    });
    expect(freeing.leaked).toBe(0);
    expect(freeing.peakBytes).toBeLessThan(reference.peakBytes * 0.8);
  });

  it('throws, as tf.grads, when a parameter does not reach the loss', () => {
    const unused = tf.scalar(1);
    const used = tf.scalar(2);
    expect(() => grads((a: tf.Tensor) => tf.mul(a, 3))([used, unused])).toThrow(/no gradient for x #1|expected a gradient for every x/);
    tf.dispose([unused, used]);
  });
});
