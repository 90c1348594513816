/**
 * wasm-blas kernels agree with tfjs's own 'cpu' kernels. Criterion, per element:
 * |got - want| <= 1e-5 * max(1, |want|). Shapes and values come from a seeded
 * PRNG, so runs are reproducible. Also guards the non-public BackendWasm
 * internals that shared/backend/wasm-blas.ts relies on, the addon's argument
 * validation, and a matmul that grows (and so detaches) the wasm heap.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';

import { BackendError } from '../../shared/errors.js';
import '../../shared/backend/register-gradients.js'; // op gradients (tfjs-core's Node build has none)
import { loadNativeBlas } from '../../shared/backend/native-addon.js';
import {
  TESTED_TFJS_VERSION,
  WASM_BLAS,
  WASM_BLAS_KERNELS,
  assertWasmInternals,
  registerWasmBlasBackend,
  registerWasmExtras,
} from '../../shared/backend/wasm-blas.js';
import { mulberry32 } from '../helpers/rng.js';

const rand = mulberry32(20240601);
const dim = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const values = (shape: number[]) => Float32Array.from({ length: tf.util.sizeFromShape(shape) }, () => rand() * 2 - 1);

interface Result {
  shape: number[];
  data: Float32Array;
}
/** Runs `f` on a backend; returns plain arrays and leaves no tensors behind. */
async function on(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<Result[]> {
  await tf.setBackend(backend);
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const res = list.map((t) => ({ shape: t.shape, data: Float32Array.from(t.dataSync() as Float32Array) }));
  tf.dispose(list);
  return res;
}
function expectClose(got: Result[], want: Result[], what: string): void {
  expect(got.length, what).toBe(want.length);
  got.forEach((g, i) => {
    expect(g.shape, `${what} [${i}] shape`).toEqual(want[i]!.shape);
    let worst = 0;
    let at = -1;
    g.data.forEach((v, j) => {
      const w = want[i]!.data[j]!;
      const excess = Math.abs(v - w) / Math.max(1, Math.abs(w));
      if (!(excess <= worst)) [worst, at] = [excess, j]; // NaN-safe: a NaN always counts
    });
    expect(worst, `${what} [${i}] worst relative error at ${at}: got ${g.data[at]}, want ${want[i]!.data[at]}`).toBeLessThanOrEqual(1e-5);
  });
}
/** Same function on wasm-blas and cpu. */
async function agree(what: string, f: () => tf.Tensor | tf.Tensor[]): Promise<void> {
  expectClose(await on(WASM_BLAS, f), await on('cpu', f), what);
}

const TRANSPOSES = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
] as const;
/** Operand shapes for logical a [...aBatch, m, k] and b [...bBatch, k, n] under the transposes. */
function operands(aBatch: number[], bBatch: number[], m: number, k: number, n: number, tA: boolean, tB: boolean) {
  const aShape = [...aBatch, ...(tA ? [k, m] : [m, k])];
  const bShape = [...bBatch, ...(tB ? [n, k] : [k, n])];
  return { aShape, bShape, a: values(aShape), b: values(bShape) };
}

beforeAll(async () => {
  registerWasmBlasBackend().setNumThreads(1);
  await tf.setBackend(WASM_BLAS);
});

describe('wasm internals (non-public, pinned)', () => {
  it('still match what wasm-blas.ts relies on', async () => {
    expect(tf.version_core).toBe(TESTED_TFJS_VERSION);
    expect(tfwasm.version_wasm).toBe(TESTED_TFJS_VERSION);
    await tf.setBackend(WASM_BLAS);
    expect(() => assertWasmInternals(tf.backend())).not.toThrow();
    const names = new Set(tf.getKernelsForBackend(WASM_BLAS).map((k) => k.kernelName));
    for (const k of tf.getKernelsForBackend('wasm')) expect(names.has(k.kernelName), k.kernelName).toBe(true);
    for (const k of WASM_BLAS_KERNELS) expect(names.has(k), k).toBe(true);
  });
});

describe('BatchMatMul', () => {
  for (const [tA, tB] of TRANSPOSES) {
    it(`rank 2 and rank 3 (tA=${tA}, tB=${tB})`, async () => {
      for (const batch of [[], [dim(2, 4)]]) {
        const o = operands(batch, batch, dim(1, 33), dim(1, 40), dim(1, 33), tA, tB);
        await agree(`[${o.aShape}]x[${o.bShape}]`, () => tf.matMul(tf.tensor(o.a, o.aShape), tf.tensor(o.b, o.bShape), tA, tB));
      }
    });
    it(`batch broadcast: A batch 1, B batch 1, rank-3 x rank-2 (tA=${tA}, tB=${tB})`, async () => {
      for (const [aB, bB] of [[[1], [3]], [[3], [1]], [[4], []], [[], [2]]]) {
        const o = operands(aB!, bB!, dim(1, 20), dim(1, 30), dim(1, 20), tA, tB);
        await agree(`[${o.aShape}]x[${o.bShape}]`, () => tf.matMul(tf.tensor(o.a, o.aShape), tf.tensor(o.b, o.bShape), tA, tB));
      }
    });
    it(`rank 4 with broadcast on one outer dim (tA=${tA}, tB=${tB})`, async () => {
      // tfjs-cpu indexes batches modulo the flattened batch, which is right only
      // when the broadcast dims lead; compare against explicitly tiled operands.
      for (const [aB, bB] of [[[2, 3], [2, 3]], [[2, 3], [1, 3]], [[2, 3], [2, 1]], [[2, 1], [1, 3]]]) {
        const o = operands(aB!, bB!, dim(1, 12), dim(1, 20), dim(1, 12), tA, tB);
        const outB = aB!.map((d, i) => Math.max(d, bB![i]!));
        const got = await on(WASM_BLAS, () => tf.matMul(tf.tensor(o.a, o.aShape), tf.tensor(o.b, o.bShape), tA, tB));
        const want = await on('cpu', () => {
          const a = tf.tile(tf.tensor(o.a, o.aShape), [...outB.map((d, i) => d / aB![i]!), 1, 1]);
          const b = tf.tile(tf.tensor(o.b, o.bShape), [...outB.map((d, i) => d / bB![i]!), 1, 1]);
          return tf.matMul(a, b, tA, tB);
        });
        expectClose(got, want, `[${o.aShape}]x[${o.bShape}]`);
      }
    });
  }
  it('attention shapes and gradients with transposes', async () => {
    const q = values([4, 16, 8]);
    const kk = values([4, 16, 8]);
    await agree('grads of q k^T', () => {
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, b, false, true), tf.range(0, 16)));
      return tf.grads(f)([tf.tensor(q, [4, 16, 8]), tf.tensor(kk, [4, 16, 8])]);
    });
  });
});

describe('_FusedMatMul', () => {
  const ACTS = ['linear', 'relu', 'relu6', 'elu', 'leakyrelu', 'prelu', 'sigmoid'] as const;
  for (const activation of ACTS) {
    it(`${activation}: no bias, bias [N], bias [1,N], full bias; 2-D and batched`, async () => {
      for (const batch of [[], [3]]) {
        const [tA, tB] = TRANSPOSES[dim(0, 3)]!;
        const m = dim(1, 20);
        const n = dim(1, 20);
        const o = operands(batch, batch, m, dim(1, 30), n, tA, tB);
        for (const biasShape of [null, [n], [1, n], [...batch, m, n]]) {
          const bias = biasShape && values(biasShape);
          const prelu = values([n]).map((v) => v * 0.5);
          const preluFull = values([...batch, m, n]);
          for (const weights of activation === 'prelu' ? [[n], [...batch, m, n]] : [null]) {
            await agree(`${activation} bias=[${biasShape}] prelu=[${weights}] tA=${tA} tB=${tB}`, () =>
              tf.fused.matMul({
                a: tf.tensor(o.a, o.aShape) as tf.Tensor as tf.Tensor2D, // the op takes any rank >= 2
                b: tf.tensor(o.b, o.bShape) as tf.Tensor as tf.Tensor2D,
                transposeA: tA,
                transposeB: tB,
                ...(bias ? { bias: tf.tensor(bias, biasShape!) } : {}),
                activation,
                leakyreluAlpha: 0.3,
                ...(weights ? { preluActivationWeights: tf.tensor(weights.length === 1 ? prelu : preluFull, weights) } : {}),
              }),
            );
          }
        }
      }
    });
  }
  it('kernel-level rank-4 inputs with bias [3,1,N] and rank-4 bias on 3-D output; empty and k=0 shapes', async () => {
    const [m, k, n] = [dim(1, 9), dim(1, 9), dim(1, 9)];
    const a = values([2, 3, m, k]);
    const b = values([2, 3, k, n]);
    const bias = values([3, 1, n]);
    const run = (aS: number[], bS: number[], biasT: tf.Tensor, act: string) => () =>
      tf.engine().runKernel(tf._FusedMatMul, { a: tf.tensor(a.slice(0, tf.util.sizeFromShape(aS)), aS), b: tf.tensor(b.slice(0, tf.util.sizeFromShape(bS)), bS), bias: biasT }, {
        transposeA: false, transposeB: false, activation: act, leakyreluAlpha: 0.2,
      }) as tf.Tensor;
    await agree('rank-4 + bias [3,1,N]', run([2, 3, m, k], [2, 3, k, n], tf.tensor(bias, [3, 1, n]), 'relu'));
    await agree('3-D + bias [1,1,1,N]', run([3, m, k], [3, k, n], tf.tensor(bias.slice(0, n), [1, 1, 1, n]), 'elu'));
    await agree('empty m', () => tf.matMul(tf.zeros([0, 3]), tf.ones([3, 4])));
    await agree('k = 0', () => tf.add(tf.matMul(tf.zeros([2, 0]), tf.ones([0, 3])), 1));
  });
  for (const [tA, tB] of TRANSPOSES) {
    it(`gradients of tf.fused.matMul with bias (linear and relu, tA=${tA}, tB=${tB})`, async () => {
      const o = operands([], [], dim(2, 16), dim(2, 16), dim(2, 16), tA, tB);
      const n = o.bShape[tB ? 0 : 1]!;
      const bias = values([n]);
      for (const activation of ['linear', 'relu'] as const) {
        await agree(`grad ${activation}`, () => {
          const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
            tf.sum(tf.square(tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias: c, transposeA: tA, transposeB: tB, activation })));
          return tf.grads(f)([tf.tensor(o.a, o.aShape), tf.tensor(o.b, o.bShape), tf.tensor(bias, [n])]);
        });
      }
    });
  }
});

describe('UnsortedSegmentSum', () => {
  it('1-D ids with repeats and out-of-range ids, like cpu', async () => {
    const ids = [3, 0, 3, 3, -1, 5, 1, 9, 0, 3];
    const x = values([ids.length, 4, 3]);
    await agree('segment sum', () => tf.unsortedSegmentSum(tf.tensor(x, [ids.length, 4, 3]), tf.tensor1d(ids, 'int32'), 6));
    await agree('segment sum 1-D x', () => tf.unsortedSegmentSum(tf.tensor1d(x.slice(0, 10)), tf.tensor1d(ids, 'int32'), 4));
  });
  it("the JS fallback on stock 'wasm' is bit-identical to the addon and agrees with cpu", async () => {
    registerWasmExtras();
    const ids = [2, 0, 2, 7, 1, 2, -3, 0];
    const x = values([8, 33]);
    const f = () => tf.unsortedSegmentSum(tf.tensor(x, [8, 33]), tf.tensor1d(ids, 'int32'), 4);
    const js = await on('wasm', f);
    expectClose(js, await on('cpu', f), 'wasm js');
    expect(js[0]!.data).toEqual((await on(WASM_BLAS, f))[0]!.data);
  });
  it('2-D ids over the leading dims of x (TF semantics)', async () => {
    const ids = [1, 1, 0, 2, 2, 2, 0, 1];
    const x = values([2, 4, 5]);
    const got = await on(WASM_BLAS, () => tf.unsortedSegmentSum(tf.tensor(x, [2, 4, 5]), tf.tensor2d(ids, [2, 4], 'int32') as tf.Tensor as tf.Tensor1D, 3)); // typed 1-D, kernel takes a prefix
    const want = await on('cpu', () => tf.unsortedSegmentSum(tf.tensor(x, [8, 5]), tf.tensor1d(ids, 'int32'), 3));
    expectClose(got, want, '2-D ids');
  });
  it('tf.grad of tf.gather on a [vocab, hidden] table with repeated indices', async () => {
    const table = values([50, 16]);
    const idx = [[1, 2, 3, 1, 49], [0, 49, 49, 2, 1]];
    const w = values([2, 5, 16]);
    await agree('gather grad', () =>
      tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor2d(idx.flat(), [2, 5], 'int32')), tf.tensor(w, [2, 5, 16]))))(tf.tensor(table, [50, 16])),
    );
  });
});

describe('heap and argument safety', () => {
  it('a matmul whose output grows the wasm heap (detaching the old buffer) is still right', async () => {
    await tf.setBackend(WASM_BLAS);
    const be = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } };
    const heapBytes = be.wasm.HEAPU8.buffer.byteLength;
    const n = 2048;
    const m = Math.ceil(heapBytes / 4 / n) + 16; // the output alone is bigger than the whole heap
    const a = values([m, 4]);
    const b = values([4, n]);
    const got = tf.tidy(() => {
      const ta = tf.tensor(a, [m, 4]);
      const tb = tf.tensor(b, [4, n]);
      const before = be.wasm.HEAPU8.buffer;
      const out = tf.matMul(ta, tb);
      expect(before.byteLength, 'old heap buffer detached by growth').toBe(0);
      return tf.slice(out, [m - 3, 0], [3, n]); // the tail rows live in the new memory
    });
    const res = [{ shape: got.shape, data: Float32Array.from(got.dataSync() as Float32Array) }];
    got.dispose();
    expect(be.wasm.HEAPU8.buffer.byteLength).toBeGreaterThan(heapBytes);
    expectClose(res, await on('cpu', () => tf.matMul(tf.tensor(a.slice((m - 3) * 4), [3, 4]), tf.tensor(b, [4, n]))), 'grown heap');
  });
  it('the addon rejects bad offsets, sizes, overlaps and detached heaps by argument name', () => {
    const native = loadNativeBlas();
    const heap = new ArrayBuffer(1024);
    const spec = { aOffset: 0, bOffset: 64, outOffset: 128, aSize: 16, bSize: 16, outSize: 16, aBatch: [], bBatch: [], m: 4, n: 4, k: 4, transposeA: false, transposeB: false };
    expect(native.matmul(heap, spec)).toBe(1);
    expect(() => native.matmul(heap, { ...spec, outOffset: 1000 })).toThrow(/outOffset: expected 64 bytes .*\(byteLength 1024\)/);
    expect(() => native.matmul(heap, { ...spec, aOffset: 2 })).toThrow(/aOffset: expected a non-negative 4-byte-aligned/);
    expect(() => native.matmul(heap, { ...spec, aSize: 15 })).toThrow(/aSize: expected 16 .* got 15/);
    expect(() => native.matmul(heap, { ...spec, outOffset: 32 })).toThrow(/outOffset: expected an output region disjoint from aOffset/);
    expect(() => native.matmul(heap, { ...spec, aBatch: [2], bBatch: [3], aSize: 32, bSize: 48 })).toThrow(/bBatch: expected batch dim 0 broadcastable/);
    expect(() => native.matmul(heap, { ...spec, biasOffset: 512, biasSize: 4, biasStrides: [4, 1] })).toThrow(/biasStrides: expected strides reaching at most index 3/);
    expect(() => native.matmul(heap, { ...spec, m: 1.5 })).toThrow(BackendError);
    expect(() => native.unsortedSegmentSum(heap, { xOffset: 0, idsOffset: 64, outOffset: 1020, numIds: 4, rowSize: 2, numSegments: 3, xSize: 8, outSize: 6 })).toThrow(/outOffset/);
    structuredClone(heap, { transfer: [heap] }); // detaches `heap`, as wasm memory growth does
    expect(() => native.matmul(heap, spec)).toThrow(/heap: expected a live ArrayBuffer, got a detached one/);
  });
  it('is bitwise reproducible run to run (what the backend fingerprint promises)', async () => {
    const a = values([3, 40, 70]);
    const b = values([70, 50]);
    const f = () => [tf.matMul(tf.tensor(a, [3, 40, 70]), tf.tensor(b, [70, 50])), tf.matMul(tf.tensor(a, [3, 40, 70]), tf.tensor(a, [3, 40, 70]), true, false)];
    const first = await on(WASM_BLAS, f);
    const second = await on(WASM_BLAS, f);
    first.forEach((r, i) => expect(r.data).toEqual(second[i]!.data));
  });
  it('switching wasm -> wasm-blas -> wasm keeps both correct (shared kernel setup state)', async () => {
    const x = values([7, 9]);
    const f = () => tf.softmax(tf.add(tf.tensor(x, [7, 9]), tf.scalar(1)));
    const cpu = await on('cpu', f);
    expectClose(await on('wasm', f), cpu, 'wasm first');
    expectClose(await on(WASM_BLAS, f), cpu, 'wasm-blas');
    expectClose(await on('wasm', f), cpu, 'wasm again');
  });
});
