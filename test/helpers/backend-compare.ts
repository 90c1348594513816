/** Running a tensor function on a named backend and comparing its outputs with a reference's. */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { initBackend } from '../../shared/backend/select.js';

/** `f`'s outputs on `backend` as float32 copies; asserts no tensor leaked. */
export async function floatsOn(backend: 'wasm' | 'wasm-blas' | 'cpu', f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await initBackend({ name: backend, blasThreads: 1 });
  const before = tf.memory().numTensors;
  const out = tf.tidy(f);
  const res = out.map((t) => Float32Array.from(t.dataSync() as Float32Array));
  tf.dispose(out);
  expect(tf.memory().numTensors).toBe(before);
  return res;
}

/** Same count and lengths, and every element within `tol` relative (absolute below 1) of `want`'s. */
export function expectClose(got: Float32Array[], want: Float32Array[], tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  got.forEach((g, i) => {
    expect(g.length, `${what} [${i}] length`).toBe(want[i]!.length);
    let worst = 0;
    g.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - want[i]![j]!) / Math.max(1, Math.abs(want[i]![j]!)))));
    expect(worst, `${what} [${i}]`).toBeLessThanOrEqual(tol);
  });
}
