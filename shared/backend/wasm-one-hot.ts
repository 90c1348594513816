/**
 * A correct OneHot for the wasm backends. tfjs-backend-wasm 4.22's C kernel
 * writes int32 bit patterns whatever the dtype, so a float32 one-hot reads as
 * 1.4e-45 instead of 1 (and silently breaks every cross-entropy gradient built
 * on it). This JS kernel writes the requested dtype through the heap views;
 * indices outside [0, depth) give an all-off row, as TensorFlow does.
 */
import * as tf from '@tensorflow/tfjs-core';

interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

const oneHot: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { indices } = inputs as { indices: tf.TensorInfo };
  const { depth, onValue, offValue, dtype } = attrs as unknown as tf.OneHotAttrs;
  const b = backend as unknown as HeapBackend;
  const out = b.makeOutput([...indices.shape, depth], dtype);
  // Views after makeOutput: an allocation may have grown (and replaced) the heap.
  const values = b.typedArrayFromHeap(out);
  const ids = b.typedArrayFromHeap(indices);
  values.fill(offValue);
  for (let row = 0; row < ids.length; row++) {
    const id = ids[row]!;
    if (id >= 0 && id < depth) values[row * depth + id] = onValue;
  }
  return out;
};

/** Replaces OneHot on a wasm-family backend (idempotent). */
export function registerOneHotFix(backendName: string): void {
  if (tf.getKernel(tf.OneHot, backendName) != null) tf.unregisterKernel(tf.OneHot, backendName);
  tf.registerKernel({ kernelName: tf.OneHot, backendName, kernelFunc: oneHot });
}
