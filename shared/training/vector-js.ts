/**
 * The reference JavaScript loops of the step's flat-vector arithmetic: the
 * tree sum's a += b, one AdamW update, and the sum of squares and scaling of
 * global-norm clipping. native/src/vector.c mirrors each one operation for
 * operation and must give the same bytes (test/unit/native-vector.test.ts);
 * shared/backend/vector-kernels.ts chooses which of the two runs. These loops
 * are the fallback when the addon is not there, and the definition of the bits.
 * They assume lengths were checked by the caller. Pure: no I/O, no state.
 */

/** The operations both implementations provide (native-addon.ts's NativeVector extends it). */
export interface VectorOps {
  addInto(a: Float32Array, b: Float32Array): void;
  adamWStep(
    params: Float32Array,
    grad: Float32Array,
    m: Float32Array,
    v: Float32Array,
    decay: Uint8Array,
    lr: number,
    beta1: number,
    beta2: number,
    epsilon: number,
    weightDecay: number,
  ): void;
  sumOfSquares(x: Float32Array): number;
  scaleInPlace(x: Float32Array, factor: number): void;
}

/**
 * a += b. The add is done in float64 and rounded to float32, which equals IEEE
 * float32 addition because 53 >= 2*24 + 2.
 */
function addInto(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}

/**
 * AdamW in float64, stored as float32. `update` divides the float64 mi by the
 * root of the float64 vi, not their float32 stores; decay applies where decay[i] === 1.
 */
function adamWStep(
  params: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  decay: Uint8Array,
  lr: number,
  beta1: number,
  beta2: number,
  epsilon: number,
  weightDecay: number,
): void {
  const n = params.length;
  for (let i = 0; i < n; i++) {
    const g = grad[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * g;
    const vi = beta2 * v[i]! + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let update = mi / (Math.sqrt(vi) + epsilon);
    if (decay[i] === 1) update += weightDecay * params[i]!;
    params[i] = params[i]! - lr * update;
  }
}

/** Σ x[i]² in float64, index order (each float32 square is exact in float64). */
function sumOfSquares(x: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]! * x[i]!;
  return sum;
}

/** x[i] = float32(x[i] * factor), the product in float64. */
function scaleInPlace(x: Float32Array, factor: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * factor;
}

export const jsVectorOps: VectorOps = { addInto, adamWStep, sumOfSquares, scaleInPlace };
