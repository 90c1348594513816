/**
 * The kernels bertfleet replaces on the wasm backends besides matmul: Exp and
 * Erf (libm loops on the heap) and OneHot (wasm's writes int32 bits for any
 * dtype) agree with tfjs's cpu kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../shared/backend/select.js';

async function on(backend: 'cpu' | 'wasm-blas' | 'wasm', f: () => tf.Tensor): Promise<Float32Array | Int32Array> {
  await initBackend({ name: backend, blasThreads: 1 });
  const t = f();
  const v = t.dataSync() as Float32Array | Int32Array;
  t.dispose();
  return v;
}

function closeTo(got: ArrayLike<number>, want: ArrayLike<number>): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want[i]!)));
}

const values = Float32Array.from({ length: 4099 }, (_, i) => ((i * 7919) % 4099) / 4099 * 24 - 12);

describe('unary kernels on the wasm backends', () => {
  for (const backend of ['wasm-blas', 'wasm'] as const) {
    it(`${backend}: exp agrees with cpu`, async () => {
      closeTo(await on(backend, () => tf.exp(tf.tensor(values))), await on('cpu', () => tf.exp(tf.tensor(values))));
    });
    it(`${backend}: erf agrees with cpu`, async () => {
      closeTo(await on(backend, () => tf.erf(tf.tensor(values))), await on('cpu', () => tf.erf(tf.tensor(values))));
    });
    it(`${backend}: a float32 one-hot holds ones and zeros (out-of-range ids give a zero row)`, async () => {
      const f = () => tf.oneHot(tf.tensor1d([2, 0, 5, -1], 'int32'), 4, 1, 0, 'float32');
      expect(Array.from(await on(backend, f))).toEqual(Array.from(await on('cpu', f)));
      expect(Array.from(await on(backend, f))).toEqual([0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    });
  }
});
