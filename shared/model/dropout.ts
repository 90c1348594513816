/**
 * Deterministic dropout. The keep mask is drawn in plain JS from a counter-based
 * hash of (dropout seed, site, element index), so it is the same on every
 * backend and every machine, and a micro-batch's gradient depends only on its
 * data and its seed. Pure: no I/O, no global RNG state.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backendHas, DROPOUT_APPLY, DROPOUT_MASK, type DropoutMaskAttrs } from '../backend/custom-kernels.js';

/** A 32-bit avalanche hash (Murmur3 fmix32 over a mixed key); fast, stateless, backend-independent. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Derives the seed of one dropout site from the micro-batch seed and a site number. */
export function siteSeed(seed: number, site: number): number {
  return mix32((seed ^ Math.imul(site + 1, 0x9e3779b9)) >>> 0);
}

/**
 * A mask of 0 and 1/(1-rate), shape `shape`, from the site seed. Element i is
 * kept when hash(seed, i) / 2^32 >= rate.
 */
export function dropoutMask(shape: number[], rate: number, seed: number): tf.Tensor {
  let size = 1;
  for (const d of shape) size *= d;
  const scale = 1 / (1 - rate);
  const threshold = Math.floor(rate * 4294967296);
  if (backendHas(DROPOUT_MASK)) {
    // The same bytes computed by the backend where the tensor lives (wasm-blas: native, on the heap).
    const attrs: DropoutMaskAttrs = { shape: [...shape], seed: seed >>> 0, threshold, scale };
    return tf.engine().runKernel(DROPOUT_MASK, {}, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  }
  const mask = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    mask[i] = mix32((seed + Math.imul(i, 0x9e3779b9)) >>> 0) >= threshold ? scale : 0;
  }
  return tf.tensor(mask, shape, 'float32');
}

/**
 * x * dropoutMask(x.shape, rate, seed) as one backend kernel each way (the
 * mask is never materialised; its gradient dy * mask is the same kernel on dy).
 */
function dropoutApply(x: tf.Tensor, rate: number, seed: number): tf.Tensor {
  const attrs: DropoutMaskAttrs = { shape: [...x.shape], seed: seed >>> 0, threshold: Math.floor(rate * 4294967296), scale: 1 / (1 - rate) };
  const run = (t: tf.Tensor): tf.Tensor => tf.engine().runKernel(DROPOUT_APPLY, { x: t }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const op = tf.customGrad(((...args: unknown[]) => {
    const [xx] = args as [tf.Tensor];
    return { value: run(xx), gradFunc: (dy: tf.Tensor) => run(dy) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
  return op(x);
}

/** Counts dropout sites so each call in a forward pass gets its own stream. */
export class DropoutSites {
  private next = 0;
  constructor(
    private readonly seed: number,
    readonly training: boolean,
  ) {}

  apply(x: tf.Tensor, rate: number): tf.Tensor {
    const site = this.next++;
    if (!this.training || rate === 0) return x;
    const seed = siteSeed(this.seed, site);
    if (backendHas(DROPOUT_APPLY)) return dropoutApply(x, rate, seed);
    return tf.mul(x, dropoutMask(x.shape, rate, seed));
  }
}
