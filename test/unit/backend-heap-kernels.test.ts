/**
 * The kernels wasm-blas runs natively instead of stock wasm's give the same
 * BYTES as stock wasm (Sum, GatherV2, Identity, Cast) and as the JS dropout
 * mask, and leave no tensors or heap data behind; the model's custom kernels
 * agree with the stock-op compositions they stand for.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import '../../shared/backend/register-gradients.js';
import { initBackend } from '../../shared/backend/select.js';
import { dropoutMask } from '../../shared/model/dropout.js';
import { gelu } from '../../shared/model/bert.js';
import { sparseSoftmaxCrossEntropy } from '../../shared/model/losses.js';
import { HEAD_MATMUL, type HeadMatmulAttrs } from '../../shared/backend/custom-kernels.js';
import { mulberry32 } from '../helpers/rng.js';
import { expectClose, floatsOn } from '../helpers/backend-compare.js';

const rand = mulberry32(7);
const values = (n: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * 10 ** Math.floor(rand() * 6 - 3));

async function bytesOn(backend: 'wasm' | 'wasm-blas' | 'cpu', f: () => tf.Tensor | tf.Tensor[]): Promise<Uint8Array[]> {
  await initBackend({ name: backend, blasThreads: 1 });
  const before = tf.memory().numTensors;
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const res = list.map((t) => new Uint8Array((t.dataSync() as Float32Array).slice().buffer));
  tf.dispose(list);
  expect(tf.memory().numTensors).toBe(before);
  return res;
}
async function sameBytes(what: string, f: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  const got = await bytesOn('wasm-blas', f);
  const want = await bytesOn('wasm', f);
  expect(got.length, what).toBe(want.length);
  got.forEach((g, i) => expect(Buffer.from(g).equals(Buffer.from(want[i]!)), `${what} [${i}]`).toBe(true));
}

describe('wasm-blas heap kernels give stock wasm bytes', () => {
  const x3 = values(7 * 33 * 129);
  it('Sum over every contiguous axis run, with and without keepDims', async () => {
    for (const axis of [0, 1, 2, -1, [0, 1], [1, 2], [0, 1, 2], [0, 2]] as (number | number[])[]) {
      for (const keepDims of [false, true]) {
        await sameBytes(`sum axis ${JSON.stringify(axis)} keepDims ${keepDims}`, () => {
          const t = tf.tensor3d(x3, [7, 33, 129]);
          const s = tf.sum(t, axis, keepDims);
          return [s, tf.reshape(s, [-1])];
        });
      }
    }
    await sameBytes('sum of int32 (stock path)', () => tf.cast(tf.sum(tf.tensor1d([1, 2, 3], 'int32')), 'float32'));
  });
  it('GatherV2 on any axis, float32 and int32, and an out-of-range index throws', async () => {
    const ids = Int32Array.from({ length: 50 }, () => Math.floor(rand() * 33));
    for (const axis of [0, 1, 2]) {
      await sameBytes(`gather axis ${axis}`, () => {
        const t = tf.tensor3d(x3, [7, 33, 129]);
        const idx = tf.tensor1d(ids.map((i) => i % t.shape[axis]!), 'int32');
        return [tf.gather(t, idx, axis), tf.cast(tf.gather(tf.cast(t, 'int32'), idx, axis), 'float32')];
      });
    }
    await sameBytes('gather with 2-D indices', () => tf.gather(tf.tensor2d(x3.slice(0, 33 * 129), [33, 129]), tf.tensor2d(ids.slice(0, 12), [3, 4], 'int32')));
    await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    expect(() => tf.gather(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor1d([2], 'int32'))).toThrow(/\[0, 2\)|not in \[0, 1\]/);
  });
  it('Identity and same-dtype Cast share data and keep values through disposal', async () => {
    await sameBytes('identity/cast', () => {
      const t = tf.tensor1d(x3.slice(0, 100));
      return [tf.clone(t), tf.cast(t, 'float32'), tf.cast(t, 'int32').toFloat()];
    });
    await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    const t = tf.tensor1d([1.5, 2.5]);
    const c = tf.clone(t);
    t.dispose();
    expect(Array.from(c.dataSync())).toEqual([1.5, 2.5]);
    c.dispose();
  });
  it('the native dropout mask equals the JS one', async () => {
    for (const [shape, rate, seed] of [[[32, 2, 128, 16], 0.1, 12345], [[7, 13], 0.5, 0xffffffff], [[1000], 0.9, 0]] as const) {
      const got = await bytesOn('wasm-blas', () => dropoutMask([...shape], rate, seed));
      const want = await bytesOn('cpu', () => dropoutMask([...shape], rate, seed));
      expect(Buffer.from(got[0]!).equals(Buffer.from(want[0]!)), `mask ${shape} ${rate} ${seed}`).toBe(true);
    }
  });
});


describe('wasm-blas fused kernels agree with the stock-op compositions (cpu)', () => {
  it('softmax cross-entropy: loss and gradient, large and tiny class counts', async () => {
    for (const [n, c, spread] of [[37, 30522, 8], [16, 2, 3], [5, 9, 60]] as const) {
      const x = Float32Array.from({ length: n * c }, () => (rand() * 2 - 1) * spread);
      const y = Int32Array.from({ length: n }, () => Math.floor(rand() * c));
      const w = Float32Array.from({ length: n }, () => rand());
      const f = () => {
        const logits = tf.tensor2d(x, [n, c]);
        const labels = tf.tensor1d(y, 'int32');
        const loss = (l: tf.Tensor) => tf.sum(tf.mul(sparseSoftmaxCrossEntropy(l, labels), tf.tensor1d(w)));
        return [sparseSoftmaxCrossEntropy(logits, labels), tf.grad(loss)(logits)];
      };
      expectClose(await floatsOn('wasm-blas', f), await floatsOn('cpu', f), 2e-6, `xent ${n}x${c}`);
    }
    await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    expect(() => sparseSoftmaxCrossEntropy(tf.zeros([2, 3]), tf.tensor1d([0, 3], 'int32'))).toThrow(/label in \[0, 3\)/);
  });
  it('GELU and its gradient over a wide range', async () => {
    const x = Float32Array.from({ length: 20001 }, (_, i) => (i - 10000) / 1000);
    const dy = Float32Array.from({ length: 20001 }, () => rand() * 2 - 1);
    const f = () => {
      const t = tf.tensor1d(x);
      return [gelu(t), tf.grad((v: tf.Tensor) => tf.sum(tf.mul(gelu(v), tf.tensor1d(dy))))(t)];
    };
    expectClose(await floatsOn('wasm-blas', f), await floatsOn('cpu', f), 2e-6, 'gelu');
  });
  it('per-head attention products (HEAD_MATMUL) give the bytes of the transposing path, gradients too', async () => {
    const [batch, seq, heads, d] = [3, 17, 4, 8];
    const H = heads * d;
    const unit = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
    const [q, k, v, dy] = [unit(batch * seq * H), unit(batch * seq * H), unit(batch * seq * H), unit(batch * seq * H)];
    const attrs = (l: Omit<HeadMatmulAttrs, 'batch' | 'heads'>) => ({ batch, heads, ...l }) as unknown as tf.NamedAttrMap;
    const split = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [batch, seq, heads, d]), [0, 2, 1, 3]); // [b*s, H] -> [b, A, s, d]
    const merge = (t: tf.Tensor) => tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [batch * seq, H]);
    const viaTranspose = () => {
      const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => merge(tf.matMul(tf.softmax(tf.matMul(split(a), split(b), false, true)), split(c)));
      const [tq, tk, tv] = [tf.tensor2d(q, [batch * seq, H]), tf.tensor2d(k, [batch * seq, H]), tf.tensor2d(v, [batch * seq, H])];
      const out = f(tq, tk, tv);
      return [out, ...tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), tf.tensor2d(dy, [batch * seq, H]))))([tq, tk, tv])];
    };
    const perHead = () => {
      const run = (a: tf.Tensor, b: tf.Tensor, l: Omit<HeadMatmulAttrs, 'batch' | 'heads'>) => tf.engine().runKernel(HEAD_MATMUL, { a, b }, attrs(l)) as tf.Tensor;
      const [tq, tk, tv] = [tf.tensor2d(q, [batch * seq, H]), tf.tensor2d(k, [batch * seq, H]), tf.tensor2d(v, [batch * seq, H])];
      const g = tf.tensor2d(dy, [batch * seq, H]);
      const scores = run(tq, tk, { transposeA: false, transposeB: true, aSplit: true, bSplit: true, outSplit: false });
      const p = tf.softmax(scores);
      const out = run(p, tv, { transposeA: false, transposeB: false, aSplit: false, bSplit: true, outSplit: true });
      // The backward products by hand, as the model's headContext/headScores gradients make them.
      const dp = run(g, tv, { transposeA: false, transposeB: true, aSplit: true, bSplit: true, outSplit: false });
      const dv = run(p, g, { transposeA: true, transposeB: false, aSplit: false, bSplit: true, outSplit: true });
      const ds = tf.mul(tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true)), p);
      const dq = run(ds, tk, { transposeA: false, transposeB: false, aSplit: false, bSplit: true, outSplit: true });
      const dk = run(ds, tq, { transposeA: true, transposeB: false, aSplit: false, bSplit: true, outSplit: true });
      return [out, dq, dk, dv];
    };
    const want = await floatsOn('wasm-blas', viaTranspose);
    expectClose(await floatsOn('wasm-blas', perHead), want, 1e-5, 'per-head vs transposed');
    expectClose(want, await floatsOn('cpu', viaTranspose), 1e-5, 'transposed path on wasm-blas vs cpu');
    // The forward products alone are the same sgemm calls: the same bytes.
    const fwd = (f: () => tf.Tensor[]) => () => f().slice(0, 1);
    const a = await bytesOn('wasm-blas', fwd(perHead));
    const b = await bytesOn('wasm-blas', fwd(viaTranspose));
    expect(Buffer.from(a[0]!).equals(Buffer.from(b[0]!))).toBe(true);
    await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    const bad = { transposeA: false, transposeB: true, aSplit: true, bSplit: false, outSplit: false };
    expect(() => tf.engine().runKernel(HEAD_MATMUL, { a: tf.zeros([batch * seq, H]), b: tf.zeros([batch * seq, H]) }, attrs(bad)))
      .toThrow(/BertfleetHeadMatmul b: expected \[3, 4, rows, cols\] \(packed\), got \[51,32\]/);
    expect(() => tf.engine().runKernel(HEAD_MATMUL, { a: tf.zeros([batch * seq, H]), b: tf.zeros([batch * 5, H]) }, attrs({ ...bad, transposeB: false, bSplit: true })))
      .toThrow(/expected b's inner dimension 8 \(a's\), got 5/);
  });
  it('every fused kernel gives the same bytes run after run', async () => {
    const x = Float32Array.from({ length: 64 * 3001 }, () => (rand() * 2 - 1) * 5);
    const y = Int32Array.from({ length: 64 }, () => Math.floor(rand() * 3001));
    const f = () => {
      const logits = tf.tensor2d(x, [64, 3001]);
      const labels = tf.tensor1d(y, 'int32');
      return [tf.grad((l: tf.Tensor) => tf.sum(sparseSoftmaxCrossEntropy(l, labels)))(logits), tf.grad((v: tf.Tensor) => tf.sum(gelu(v)))(logits)];
    };
    const a = await bytesOn('wasm-blas', f);
    const b = await bytesOn('wasm-blas', f);
    a.forEach((g, i) => expect(Buffer.from(g).equals(Buffer.from(b[i]!))).toBe(true));
  });
});
