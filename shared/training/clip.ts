/**
 * Global-norm clipping, as `tf.clip_by_global_norm`: g * clip / max(‖g‖, clip).
 * The norm is accumulated in float64 in index order, so it is the same number
 * on every replica (native or JS loop, same bytes: see backend/vector-kernels.ts).
 * A float32 square cannot overflow a float64 sum of any gradient that fits in
 * memory, so the norm is non-finite exactly when some element is NaN or
 * ±Infinity: the norm doubles as the non-finite guard's detector (replica.ts).
 */
import { vectorOps } from '../backend/vector-kernels.js';

export function globalNorm(grad: Float32Array): number {
  return Math.sqrt(vectorOps().sumOfSquares(grad));
}

/**
 * Clips in place and returns the norm before clipping. A non-finite norm
 * leaves the gradient untouched (the caller must not apply it: replica.ts skips the step).
 */
export function clipByGlobalNorm(grad: Float32Array, clipNorm: number): number {
  const norm = globalNorm(grad);
  if (Number.isFinite(norm) && norm > clipNorm) {
    const scale = clipNorm / norm;
    vectorOps().scaleInPlace(grad, scale);
  }
  return norm;
}
