/**
 * Turns parameter values (flat Float32Arrays by name) into the tensors the
 * model reads, and back. The caller owns and disposes the tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Params } from './bert.js';
import type { ParamSpec } from './params.js';

export function paramsToTensors(specs: readonly ParamSpec[], values: ReadonlyMap<string, Float32Array>): Params {
  const out: Record<string, tf.Tensor> = {};
  for (const s of specs) {
    const v = values.get(s.name);
    if (!v) throw new Error(`parameter ${s.name} has no value`);
    out[s.name] = tf.tensor(v, [...s.shape], 'float32');
  }
  return out;
}

export function disposeParams(p: Params): void {
  for (const t of Object.values(p)) t.dispose();
}
