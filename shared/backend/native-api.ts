/**
 * The wasm-blas addon's heap kernels as JS sees them: the activation codes of
 * the fused epilogue and the spec object each call takes (byte offsets into
 * the wasm heap, element counts, flags), mirroring native/src/*.c. Types and
 * constants only; native-addon.ts loads the module and wraps its errors.
 */

/** Activation codes understood by the addon's fused epilogue (see native/src/matmul.c). */
export const ACTIVATION_CODES = {
  linear: 0,
  relu: 1,
  relu6: 2,
  elu: 3,
  leakyrelu: 4,
  prelu: 5,
  sigmoid: 6,
} as const;
export type ActivationName = keyof typeof ACTIVATION_CODES;

/**
 * One batched matmul on the heap. A is [...aBatch, m, k] ([..., k, m] when
 * transposeA), B is [...bBatch, k, n] ([..., n, k] when transposeB); batch
 * shapes broadcast numpy-style; out is [...outBatch, m, n]. Offsets are bytes,
 * sizes are float32 element counts (checked against the shapes in C).
 */
export interface HeapMatMulSpec {
  aOffset: number;
  bOffset: number;
  outOffset: number;
  aSize: number;
  bSize: number;
  outSize: number;
  aBatch: readonly number[];
  bBatch: readonly number[];
  m: number;
  n: number;
  k: number;
  transposeA: boolean;
  transposeB: boolean;
  /** Epilogue: out = act(out + bias). Default linear. */
  activation?: (typeof ACTIVATION_CODES)[ActivationName];
  /** leakyrelu slope. */
  alpha?: number;
  /** Bias, broadcast over out: element strides per out dim ([...outBatch, m, n]); 0 broadcasts. */
  biasOffset?: number;
  biasSize?: number;
  biasStrides?: readonly number[];
  /** prelu weights, broadcast like the bias. */
  preluOffset?: number;
  preluSize?: number;
  preluStrides?: readonly number[];
}

/** x is [numIds, rowSize] (float32), ids [numIds] (int32), out [numSegments, rowSize]. */
export interface HeapSegmentSumSpec {
  xOffset: number;
  idsOffset: number;
  outOffset: number;
  numIds: number;
  rowSize: number;
  numSegments: number;
  xSize: number;
  outSize: number;
}

export interface HeapUnarySpec {
  /** 0 = exp, 1 = erf. */
  op: 0 | 1;
  xOffset: number;
  outOffset: number;
  size: number;
}

/** x as [outer, reduce, inner] float32; out[o, i] = float32 sum over r in ascending order (stock wasm Sum's bytes). */
export interface HeapSumSpec {
  xOffset: number;
  outOffset: number;
  outer: number;
  reduce: number;
  inner: number;
}

/** x as [outer, dim, slice] of 4-byte elements, ids [numIds] int32; out[o, j, :] = x[o, ids[j], :]. */
export interface HeapGatherSpec {
  xOffset: number;
  idsOffset: number;
  outOffset: number;
  outer: number;
  dim: number;
  slice: number;
  numIds: number;
}

/** The bytes of shared/model/dropout.ts dropoutMask(): [size] float32 of 0 and scale. */
export interface HeapDropoutMaskSpec {
  outOffset: number;
  /** With xOffset ([size] float32), out = x * mask. */
  xOffset?: number;
  size: number;
  seed: number;
  threshold: number;
  scale: number;
}

/** Softmax cross-entropy forward over [rows, classes] (native/src/xent.c). */
export interface HeapSoftmaxXentSpec {
  rows: number;
  classes: number;
  logitsOffset: number;
  labelsOffset: number;
  probsOffset: number;
  lossOffset: number;
  argmaxOffset: number;
}
export interface HeapSoftmaxXentGradSpec {
  rows: number;
  classes: number;
  probsOffset: number;
  labelsOffset: number;
  dyOffset: number;
  outOffset: number;
}
/** GELU over [size] float32 into outOffset, and its derivative GELU'(x) into derivOffset (native/src/gelu.c). */
export interface HeapGeluSpec {
  size: number;
  xOffset: number;
  outOffset: number;
  derivOffset: number;
}

/** LayerNorm over [rows, width] (native/src/layernorm.c): forward writes out, mean [rows], rstd [rows]. */
export interface HeapLayerNormSpec {
  rows: number;
  width: number;
  xOffset: number;
  gammaOffset: number;
  meanOffset: number;
  rstdOffset: number;
  outOffset: number;
  /** Forward only. */
  betaOffset?: number;
  eps?: number;
  /** Backward: with dyOffset, out is dx and dgamma/dbeta [width] are written too. */
  dyOffset?: number;
  dgammaOffset?: number;
  dbetaOffset?: number;
}

/**
 * Attention's softmax(x * scale + mask) over rows of n, x [outer, inner, n], mask [outer, n]
 * (native/src/softmax.c); with dyOffset and yOffset (the forward's output), dx = scale * y * (dy - sum(dy * y)).
 */
export interface HeapMaskedSoftmaxSpec {
  outer: number;
  inner: number;
  n: number;
  scale: number;
  outOffset: number;
  xOffset?: number;
  maskOffset?: number;
  yOffset?: number;
  dyOffset?: number;
}

/** Transpose keeping the last axis last: x [shape] of elementBytes-byte elements into out (native/src/transpose.c). */
export interface HeapTransposeRowsSpec {
  xOffset: number;
  outOffset: number;
  shape: number[];
  perm: number[];
  elementBytes: number;
}

/**
 * Per-head products C[b,h] = op(A[b,h]) @ op(B[b,h]) (native/src/head_matmul.c); each
 * operand packed [batch, heads, rows, cols] or split [batch*rows, heads*cols] (a head
 * is a column block, as in a dense layer's output).
 */
export interface HeapHeadMatmulSpec {
  batch: number;
  heads: number;
  m: number;
  n: number;
  k: number;
  transposeA: boolean;
  transposeB: boolean;
  aOffset: number;
  aSplit: boolean;
  bOffset: number;
  bSplit: boolean;
  outOffset: number;
  outSplit: boolean;
}

export interface NativeBlas {
  /** Returns how many cblas_sgemm calls it made (1 when the batch was folded into m). */
  matmul(heap: ArrayBuffer, spec: HeapMatMulSpec): number;
  /** Returns how many rows were dropped for an id outside [0, numSegments). */
  unsortedSegmentSum(heap: ArrayBuffer, spec: HeapSegmentSumSpec): number;
  /** Elementwise expf / erff from libm (float32 in, float32 out). */
  unary(heap: ArrayBuffer, spec: HeapUnarySpec): void;
  sumAxis(heap: ArrayBuffer, spec: HeapSumSpec): void;
  gatherRows(heap: ArrayBuffer, spec: HeapGatherSpec): void;
  dropoutMask(heap: ArrayBuffer, spec: HeapDropoutMaskSpec): void;
  softmaxXent(heap: ArrayBuffer, spec: HeapSoftmaxXentSpec): void;
  softmaxXentGrad(heap: ArrayBuffer, spec: HeapSoftmaxXentGradSpec): void;
  gelu(heap: ArrayBuffer, spec: HeapGeluSpec): void;
  layerNorm(heap: ArrayBuffer, spec: HeapLayerNormSpec): void;
  maskedSoftmax(heap: ArrayBuffer, spec: HeapMaskedSoftmaxSpec): void;
  transposeRows(heap: ArrayBuffer, spec: HeapTransposeRowsSpec): void;
  headMatmul(heap: ArrayBuffer, spec: HeapHeadMatmulSpec): void;
  setNumThreads(threads: number): void;
  getNumThreads(): number;
  /** openblas_get_config(), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64". */
  getConfig(): string;
  /** openblas_get_corename(): the kernel set DYNAMIC_ARCH picked for this CPU. */
  getCorename(): string;
}
