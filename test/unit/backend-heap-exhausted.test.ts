/**
 * When the 4 GiB wasm heap cannot hold a kernel's output, tfjs-backend-wasm's
 * malloc answers 0 and tfjs records the tensor at offset 0, over the heap's
 * own data. wasm-blas refuses such a tensor before its native code writes
 * anything, with what to change, and the heap keeps working afterwards.
 * The heap is filled for real (3 GiB allocated, never touched, so RSS stays small).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { HEAD_MATMUL } from '../../shared/backend/custom-kernels.js';
import { initBackend } from '../../shared/backend/select.js';
import { readFloatsInto } from '../../shared/backend/read-into.js';

interface WasmInternals {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: tf.DataId): boolean;
}

describe('wasm-blas on an exhausted heap', () => {
  it('refuses an output malloc could not place, names its size and what to change, and goes on working', async () => {
    await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    const be = tf.backend() as unknown as WasmInternals;
    const filler = be.makeOutput([768 * 2 ** 20], 'float32'); // 3 GiB of the heap's 4
    const a = tf.zeros([24576, 1]);
    const b = tf.zeros([16384, 1]);
    const attrs = { batch: 1, heads: 1, transposeA: false, transposeB: true, aSplit: true, bSplit: true, outSplit: false };
    const before = tf.memory().numTensors;
    // The product is [1, 1, 24576, 16384]: 1.5 GiB more than the heap can take.
    expect(() => tf.engine().runKernel(HEAD_MATMUL, { a, b }, attrs as unknown as tf.NamedAttrMap))
      .toThrow(/wasm heap is exhausted: a \[1, 1, 24576, 16384\] float32 tensor \(1536 MiB\) could not be allocated within its 4 GiB; expected a smaller micro-batch/);
    expect(tf.memory().numTensors).toBe(before);
    be.disposeData(filler.dataId);
    const sum = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2]));
    const got = new Float32Array(4);
    readFloatsInto(sum, got, 0);
    expect([...got]).toEqual([3, 3, 3, 3]);
    tf.dispose([a, b, sum]);
  });
});
