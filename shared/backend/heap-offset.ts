/**
 * Where a tensor's values lie on the wasm heap, for kernels that hand byte
 * offsets to the native addon. tfjs-backend-wasm stores the result of its
 * `_malloc` without checking it, and malloc answers 0 when the heap (at most
 * 4 GiB) cannot grow: such a tensor "lies" at offset 0, over the heap's own
 * data, and a kernel writing there would corrupt everything. So offset 0 is
 * refused here, before any native code runs, with what to change.
 * Knows the wasm backend's `dataIdMap` entry shape; nothing else.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';

export interface HeapDataMap {
  get(dataId: tf.DataId): { memoryOffset?: number | null } | undefined;
}

const BYTES: Partial<Record<tf.DataType, number>> = { float32: 4, int32: 4, bool: 1 };

export function heapOffset(map: HeapDataMap, t: tf.TensorInfo, what: string): number {
  const at = map.get(t.dataId)?.memoryOffset;
  if (typeof at !== 'number') throw new BackendError(`wasm-blas ${what}: expected a tensor on the wasm heap, got none`);
  if (at === 0) {
    const bytes = t.shape.reduce((p, d) => p * d, 1) * (BYTES[t.dtype] ?? 4);
    throw new BackendError(
      `wasm-blas ${what}: the wasm heap is exhausted: a [${t.shape.join(', ')}] ${t.dtype} tensor (${(bytes / 2 ** 20).toFixed(0)} MiB) ` +
      'could not be allocated within its 4 GiB; expected a smaller micro-batch (or sequence length, or model) per process',
    );
  }
  return at;
}
