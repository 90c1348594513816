/**
 * Global-norm clipping, as `tf.clip_by_global_norm`: g * clip / max(‖g‖, clip).
 * The norm is accumulated in float64 in index order, so it is the same number
 * on every replica (native or JS loop, same bytes: see backend/vector-kernels.ts).
 */
import { vectorOps } from '../backend/vector-kernels.js';

export function globalNorm(grad: Float32Array): number {
  return Math.sqrt(vectorOps().sumOfSquares(grad));
}

/** Clips in place and returns the norm before clipping. */
export function clipByGlobalNorm(grad: Float32Array, clipNorm: number): number {
  const norm = globalNorm(grad);
  if (norm > clipNorm) {
    const scale = clipNorm / norm;
    vectorOps().scaleInPlace(grad, scale);
  }
  return norm;
}
