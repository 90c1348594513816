/**
 * Copies a float32 tensor's values into part of a Float32Array. On the wasm
 * backends (stock and wasm-blas) it reads the tensor where it lies on the
 * heap, one copy; elsewhere it goes through dataSync (which, on wasm, would
 * first copy the values into a fresh buffer: 45 MB of short-lived memory per
 * micro-batch for a mini model's gradient).
 * Knows the wasm backend's `dataIdMap`/`wasm.HEAPU8` internals, as wasm-blas.ts does.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';
import { heapOffset, type HeapDataMap } from './heap-offset.js';

interface MaybeWasm {
  wasm?: { HEAPU8?: Uint8Array };
  dataIdMap?: HeapDataMap;
}

export function readFloatsInto(t: tf.Tensor, dst: Float32Array, at: number): void {
  if (t.dtype !== 'float32') throw new BackendError(`readFloatsInto: expected a float32 tensor, got ${t.dtype}`);
  if (at < 0 || at + t.size > dst.length) {
    throw new BackendError(`readFloatsInto: expected ${t.size} values to fit at ${at} in ${dst.length}, got ${at + t.size - dst.length} too many`);
  }
  const b = tf.engine().findBackend(tf.getBackend()) as unknown as MaybeWasm;
  const heap = b.wasm?.HEAPU8;
  if (heap instanceof Uint8Array && b.dataIdMap !== undefined) {
    const offset = heapOffset(b.dataIdMap, t, 'readFloatsInto');
    dst.set(new Float32Array(heap.buffer, heap.byteOffset + offset, t.size), at);
    return;
  }
  dst.set(t.dataSync() as Float32Array, at);
}
