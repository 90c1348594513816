/**
 * The native kernels wasm-blas adds for LayerNorm, attention's masked softmax,
 * dropout applied without a mask tensor and Transpose: forward and gradient
 * agree with the stock-op compositions on cpu, dropout and Transpose give the
 * same BYTES as stock wasm, every result is the same bytes run after run, and
 * no tensors are left behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import '../../shared/backend/register-gradients.js';
import { layerNorm, maskedSoftmax } from '../../shared/model/bert.js';
import { DropoutSites } from '../../shared/model/dropout.js';
import { mulberry32 } from '../helpers/rng.js';
import { expectClose, floatsOn } from '../helpers/backend-compare.js';

const rand = mulberry32(11);
const values = (n: number, spread = 3) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * spread);

const bytes = (a: Float32Array[]) => a.map((x) => Buffer.from(x.buffer));
async function deterministic(f: () => tf.Tensor[], what: string): Promise<Float32Array[]> {
  const a = await floatsOn('wasm-blas', f);
  const b = await floatsOn('wasm-blas', f);
  bytes(a).forEach((x, i) => expect(x.equals(bytes(b)[i]!), `${what} [${i}] run after run`).toBe(true));
  return a;
}

describe('wasm-blas model kernels', () => {
  it('LayerNorm forward and gradients (x, gamma, beta) match the stock composition, odd and even widths', async () => {
    for (const [rows, w] of [[37, 256], [5, 7], [3, 1]] as const) {
      const x = values(rows * w, 4);
      const g = values(w, 1.5);
      const b = values(w, 1);
      const dy = values(rows * w, 1);
      const f = () => {
        const p = { 'ln.weight': tf.tensor1d(g), 'ln.bias': tf.tensor1d(b) };
        const xt = tf.tensor2d(x, [rows, w]);
        const loss = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) =>
          tf.sum(tf.mul(layerNorm({ 'ln.weight': gg, 'ln.bias': bb }, 'ln', xx, 1e-12), tf.tensor2d(dy, [rows, w])));
        const grads = tf.grads(loss as (...a: tf.Tensor[]) => tf.Tensor)([xt, p['ln.weight'], p['ln.bias']]);
        return [layerNorm(p, 'ln', xt, 1e-12), ...grads];
      };
      expectClose(await deterministic(f, 'layerNorm'), await floatsOn('cpu', f), w === 1 ? 1e-5 : 2e-5, `layerNorm ${rows}x${w}`);
    }
  });
  it('masked softmax forward and gradient match softmax(x * scale + mask)', async () => {
    const [B, A, S] = [3, 2, 17];
    const x = values(B * A * S * S, 6);
    const mask = Float32Array.from({ length: B * S }, () => (rand() < 0.2 ? -10000 : 0));
    const dy = values(B * A * S * S, 1);
    const f = () => {
      const m = tf.tensor4d(mask, [B, 1, 1, S]);
      const xt = tf.tensor4d(x, [B, A, S, S]);
      const loss = (v: tf.Tensor) => tf.sum(tf.mul(maskedSoftmax(v, m, 0.125), tf.tensor4d(dy, [B, A, S, S])));
      return [maskedSoftmax(xt, m, 0.125), tf.grad(loss)(xt)];
    };
    expectClose(await deterministic(f, 'maskedSoftmax'), await floatsOn('cpu', f), 2e-6, 'maskedSoftmax');
  });
  it('dropout without a mask tensor and Transpose give stock wasm bytes', async () => {
    const x = values(4 * 6 * 3 * 5);
    const dy = values(4 * 6 * 3 * 5);
    const f = () => {
      const xt = tf.tensor4d(x, [4, 6, 3, 5]);
      const drop = (v: tf.Tensor) => new DropoutSites(1234, true).apply(v, 0.1);
      const grad = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(drop(v), tf.tensor4d(dy, [4, 6, 3, 5]))))(xt);
      return [drop(xt), grad, tf.transpose(xt, [0, 2, 1, 3]), tf.transpose(xt, [2, 0, 1, 3]), tf.transpose(tf.reshape(xt, [4, 6, 1, 15]), [0, 2, 1, 3]), tf.transpose(xt, [3, 2, 1, 0])];
    };
    const got = bytes(await deterministic(f, 'dropout/transpose'));
    const want = bytes(await floatsOn('wasm', f));
    got.forEach((g, i) => expect(g.equals(want[i]!), `output ${i}`).toBe(true));
  });
});
