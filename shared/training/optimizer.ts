/**
 * AdamW as google-research/bert's `AdamWeightDecayOptimizer` has it (β1 0.9,
 * β2 0.999, ε 1e-6, no bias correction, decoupled weight decay 0.01 added to
 * the update and scaled by the learning rate, not applied to LayerNorm or
 * biases), on flat float32 vectors outside any tensor backend: every replica
 * runs the same loop on the same bytes and gets the same bytes. The update is
 * computed in float64 and stored as float32, identically everywhere (the loop
 * is in vector-js.ts; the addon's twin gives the same bytes).
 */
import { z } from 'zod';

import { vectorOps } from '../backend/vector-kernels.js';

export const adamWSchema = z.object({
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  epsilon: z.number().positive().default(1e-6),
  weightDecay: z.number().min(0).default(0.01),
});
export type AdamWSettings = z.infer<typeof adamWSchema>;

export interface AdamWState {
  m: Float32Array;
  v: Float32Array;
}

export function newAdamWState(size: number): AdamWState {
  return { m: new Float32Array(size), v: new Float32Array(size) };
}

/** One update of `params` in place. `decay[i]` is 1 where weight decay applies. */
export function adamWStep(
  params: Float32Array,
  grad: Float32Array,
  state: AdamWState,
  decay: Uint8Array,
  lr: number,
  s: AdamWSettings,
): void {
  const { m, v } = state;
  const { beta1, beta2, epsilon, weightDecay } = s;
  const n = params.length;
  if (grad.length !== n || m.length !== n || v.length !== n || decay.length !== n) {
    throw new RangeError(`AdamW vectors differ in length: params ${n}, grad ${grad.length}, m ${m.length}, v ${v.length}, decay ${decay.length}`);
  }
  vectorOps().adamWStep(params, grad, m, v, decay, lr, beta1, beta2, epsilon, weightDecay);
}
