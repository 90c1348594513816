/**
 * Exp and Erf for 'wasm-blas' through the addon's libm loops: tfjs-backend-wasm
 * 4.22 spends ~10 ns per element on Exp and ~90 on Erf, and every training step
 * of BERT computes the exact GELU (erf) forward and its gradient (exp) over
 * [tokens, intermediate]. Reads and writes the wasm heap in place.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';
import type { NativeBlas } from './native-api.js';

interface HeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

function unaryKernel(native: NativeBlas, op: 0 | 1, name: string): tf.KernelFunc {
  return ({ inputs, backend }) => {
    const { x } = inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') throw new BackendError(`wasm-blas ${name}: expected a float32 input, got ${x.dtype}`);
    const b = backend as unknown as HeapBackend;
    const out = b.makeOutput([...x.shape], 'float32');
    // Offsets after makeOutput; the heap is fetched fresh (an allocation may have grown it).
    native.unary(b.wasm.HEAPU8.buffer as ArrayBuffer, {
      op,
      xOffset: b.dataIdMap.get(x.dataId)!.memoryOffset,
      outOffset: b.dataIdMap.get(out.dataId)!.memoryOffset,
      size: tf.util.sizeFromShape(x.shape),
    });
    return out;
  };
}

export function registerUnaryKernels(native: NativeBlas, backendName: string): void {
  for (const [kernelName, op] of [[tf.Exp, 0], [tf.Erf, 1]] as const) {
    if (tf.getKernel(kernelName, backendName) != null) tf.unregisterKernel(kernelName, backendName);
    tf.registerKernel({ kernelName, backendName, kernelFunc: unaryKernel(native, op, kernelName) });
  }
}
