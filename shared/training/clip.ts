/**
 * Global-norm clipping, as `tf.clip_by_global_norm`: g * clip / max(‖g‖, clip).
 * The norm is accumulated in float64 in index order, so it is the same number
 * on every replica.
 */
export function globalNorm(grad: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < grad.length; i++) sum += grad[i]! * grad[i]!;
  return Math.sqrt(sum);
}

/** Clips in place and returns the norm before clipping. */
export function clipByGlobalNorm(grad: Float32Array, clipNorm: number): number {
  const norm = globalNorm(grad);
  if (norm > clipNorm) {
    const scale = clipNorm / norm;
    for (let i = 0; i < grad.length; i++) grad[i] = grad[i]! * scale;
  }
  return norm;
}
