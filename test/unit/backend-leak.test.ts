/**
 * wasm-blas leaks no tensors: 20 training steps of a small two-layer model
 * (embedding gather, fused dense + relu, GELU, layer norm, dropout, softmax
 * cross-entropy, tf.grads) leave tf.memory().numTensors and the backend's
 * live data ids exactly where the first step left them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';

import '../../shared/backend/register-gradients.js'; // op gradients (tfjs-core's Node build has none)
import { WASM_BLAS, registerWasmBlasBackend } from '../../shared/backend/wasm-blas.js';

const V = 40; // vocab
const H = 16; // hidden
const S = 6; // sequence
const B = 4; // batch
const C = 5; // classes

beforeAll(async () => {
  registerWasmBlasBackend().setNumThreads(1);
  await tf.setBackend(WASM_BLAS);
});

function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  return tf.add(tf.mul(tf.mul(centered, tf.rsqrt(tf.add(variance, 1e-12))), gamma), beta);
}

function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.div(x, Math.SQRT2))));
}

it('numTensors does not grow across 20 training steps on wasm-blas', () => {
  expect(tf.getBackend()).toBe(WASM_BLAS);
  let params = [
    tf.randomNormal([V, H], 0, 0.1, 'float32', 1), // embedding [V, H]
    tf.randomNormal([H, H], 0, 0.1, 'float32', 2), // w1 [H, H]
    tf.zeros([H]), // b1
    tf.ones([H]), // gamma
    tf.zeros([H]), // beta
    tf.randomNormal([H, C], 0, 0.1, 'float32', 3), // w2 [H, C]
    tf.zeros([C]), // b2
  ];
  const ids = tf.tensor2d(Array.from({ length: B * S }, (_, i) => (i * 7) % V), [B, S], 'int32');
  const labels = tf.oneHot(tf.tensor1d(Array.from({ length: B * S }, (_, i) => i % C), 'int32'), C);
  const loss = (step: number) => (emb: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, g: tf.Tensor, bt: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor) => {
    const x = tf.reshape(tf.gather(emb, ids), [B * S, H]); // [B*S, H]
    const h = tf.fused.matMul({ a: x as tf.Tensor2D, b: w1 as tf.Tensor2D, bias: b1, activation: 'relu' });
    const n = layerNorm(tf.dropout(gelu(h), 0.1, undefined, step), g, bt);
    const logits = tf.add(tf.matMul(n, w2), b2); // [B*S, C]
    return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  };
  const counts: number[] = [];
  const ids0 = (tf.backend() as unknown as { numDataIds(): number }).numDataIds.bind(tf.backend());
  const dataIds: number[] = [];
  const losses: number[] = [];
  for (let step = 0; step < 20; step++) {
    const next = tf.tidy(() => {
      const f = loss(step);
      const grads = tf.grads((...p: tf.Tensor[]) => f(p[0]!, p[1]!, p[2]!, p[3]!, p[4]!, p[5]!, p[6]!))(params);
      if (step === 0 || step === 19) losses.push(f(params[0]!, params[1]!, params[2]!, params[3]!, params[4]!, params[5]!, params[6]!).dataSync()[0]!);
      return params.map((p, i) => tf.sub(p, tf.mul(grads[i]!, 0.5)));
    });
    tf.dispose(params);
    params = next;
    counts.push(tf.memory().numTensors);
    dataIds.push(ids0());
  }
  expect(losses.every(Number.isFinite)).toBe(true);
  expect(losses[1]).toBeLessThan(losses[0]!); // it trains, so the kernels did real work
  expect(new Set(counts).size, `numTensors per step: ${counts.join(',')}`).toBe(1);
  expect(new Set(dataIds).size, `backend data ids per step: ${dataIds.join(',')}`).toBe(1);
  tf.dispose([...params, ids, labels]);
});
