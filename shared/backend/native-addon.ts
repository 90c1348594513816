/**
 * The one loader of the wasm-blas N-API addon (native/build/Release/wasm_blas.node,
 * built by `npm run build:native` from native/). It types the addon's calls
 * and turns its argument errors into `BackendError`s. It knows byte offsets,
 * element counts and OpenBLAS; it must not know tfjs, tensors or dataIds
 * (that glue lives in wasm-blas.ts). Two views of the one module: NativeBlas
 * (heap kernels for the wasm-blas backend) and NativeVector (the training
 * step's flat-vector kernels, chosen in vector-kernels.ts).
 *
 * Loading the module loads libopenblas, whose constructor picks its kernel set
 * from OPENBLAS_CORETYPE right then; so this loader, the one place that loads
 * it, first settles that variable (openblas-core.ts: the user's value, else the
 * core the CPU flags support) and, on the first NativeBlas, runs the start
 * probe (blas-probe.ts). That is why it, not only entry points, reads and
 * writes process.env: one variable, read by the outside library it adapts.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

import { BackendError } from '../errors.js';
import { hostNumerics } from '../process/host-info.js';
import type { VectorOps } from '../training/vector-js.js';
import { probeMatmul } from './blas-probe.js';
import { applyOpenblasCore, missingFlags, CORETYPE_ENV, type CoreChoice, type CoreSource } from './openblas-core.js';

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

/**
 * The training step's flat-vector kernels (native/src/vector.c), each giving
 * the same bytes as its JavaScript twin in shared/training/vector-js.ts.
 * Lengths must match; arrays may be views of any buffer.
 */
/** The flat-vector operations of vector-js.ts, computed in C with the same bits, plus the loop-build switch. */
export interface NativeVector extends VectorOps {
  /**
   * 'baseline' keeps the AVX2 builds of the elementwise loops from running
   * (process-wide; both builds give the same bytes, so this is for tests and benchmarks).
   */
  setVectorIsa(isa: 'auto' | 'baseline'): void;
  /** The build of the elementwise loops that runs now. */
  getVectorIsa(): 'avx2' | 'baseline';
}

/** Absolute path of the built addon. */
export function nativeAddonPath(): string {
  return fileURLToPath(new URL('../../native/build/Release/wasm_blas.node', import.meta.url));
}

/** The OpenBLAS core this process runs on, how it came to be, and the start probe's verdict. */
export interface OpenblasCoreReport {
  /** openblas_get_corename() after loading: the kernels in use. */
  coretype: string;
  /** What was asked for: the user's OPENBLAS_CORETYPE, the core the CPU flags support, or null (OpenBLAS's own detection). */
  requested: string | null;
  source: CoreSource;
  reason: string;
  /** The start probe's largest error as a fraction of its bound (passed: <= 1). */
  probeWorstRatio: number;
}

let raw: Record<string, unknown> | undefined;
let cachedBlas: NativeBlas | undefined;
let cachedVector: NativeVector | undefined;
let coreChoice: CoreChoice | undefined;
let coreReport: OpenblasCoreReport | undefined;

/**
 * Settles OPENBLAS_CORETYPE for this process before libopenblas loads
 * (openblas-core.ts) and returns the decision; once per thread. The addon
 * loader calls it itself; a main thread that starts a worker thread which
 * loads the addon must call it first (a thread's env writes do not reach
 * OpenBLAS). Throws BackendError for a user's OPENBLAS_CORETYPE whose kernels
 * use instructions this CPU lacks (it would stop with SIGILL).
 */
export function prepareOpenblasCore(): CoreChoice {
  if (coreChoice !== undefined) return coreChoice;
  const host = hostNumerics();
  const choice = applyOpenblasCore(process.env, { arch: host.arch, vendor: host.cpuVendor, flags: host.cpuFlags }, isMainThread);
  if (choice.source === 'user' && host.cpuFlags !== null) {
    const missing = missingFlags(choice.coretype, host.cpuFlags);
    if (missing.length > 0) {
      throw new BackendError(
        `${CORETYPE_ENV}=${choice.coretype}: expected a CPU with ${missing.join(', ')} (that core's kernels use them), ` +
          `got one without (it would stop with SIGILL); unset it or name a core this CPU supports`,
      );
    }
  }
  coreChoice = choice;
  return choice;
}

/** The core in use and why, once loadNativeBlas() has loaded and probed it; undefined before. */
export function openblasCoreReport(): OpenblasCoreReport | undefined {
  return coreReport;
}

/** The module itself, loaded once; throws BackendError saying how to build it when it is missing or broken. */
function loadModule(): Record<string, unknown> {
  if (raw !== undefined) return raw;
  const path = nativeAddonPath();
  if (!existsSync(path)) {
    throw new BackendError(
      `wasm-blas native addon not built: expected ${path}, got no file; ` +
        'run scripts/setup.sh or `npm run build:native` (needs libopenblas-dev and a C compiler)',
    );
  }
  prepareOpenblasCore(); // before the require: libopenblas reads OPENBLAS_CORETYPE as it loads
  try {
    raw = createRequire(import.meta.url)(path) as Record<string, unknown>;
  } catch (err) {
    throw new BackendError(
      `wasm-blas native addon at ${path} failed to load (rebuild with \`npm run build:native\`; ` +
        `is libopenblas0 installed?): ${(err as Error).message}`,
      { cause: err },
    );
  }
  return raw;
}

/** Throws BackendError when the loaded module lacks one of `names` (an addon built from older sources). */
function checkExports(mod: Record<string, unknown>, names: readonly string[]): void {
  for (const fn of names) {
    if (typeof mod[fn] !== 'function') {
      throw new BackendError(`wasm-blas native addon at ${nativeAddonPath()}: expected export ${fn}(), got none; rebuild it`);
    }
  }
}

/** Loads the addon once; throws BackendError saying how to build it when it is missing or broken. */
export function loadNativeBlas(): NativeBlas {
  if (cachedBlas !== undefined) return cachedBlas;
  const mod = loadModule();
  checkExports(mod, ['matmul', 'unsortedSegmentSum', 'unary', 'sumAxis', 'gatherRows', 'dropoutMask', 'softmaxXent', 'softmaxXentGrad', 'gelu', 'layerNorm', 'maskedSoftmax', 'transposeRows', 'headMatmul', 'setNumThreads', 'getNumThreads', 'getConfig', 'getCorename']);
  const b = mod as unknown as NativeBlas;
  const blas: NativeBlas = {
    matmul: (heap, spec) => rethrow(() => b.matmul(heap, spec)),
    unsortedSegmentSum: (heap, spec) => rethrow(() => b.unsortedSegmentSum(heap, spec)),
    unary: (heap, spec) => rethrow(() => b.unary(heap, spec)),
    sumAxis: (heap, spec) => rethrow(() => b.sumAxis(heap, spec)),
    gatherRows: (heap, spec) => rethrow(() => b.gatherRows(heap, spec)),
    dropoutMask: (heap, spec) => rethrow(() => b.dropoutMask(heap, spec)),
    softmaxXent: (heap, spec) => rethrow(() => b.softmaxXent(heap, spec)),
    softmaxXentGrad: (heap, spec) => rethrow(() => b.softmaxXentGrad(heap, spec)),
    gelu: (heap, spec) => rethrow(() => b.gelu(heap, spec)),
    layerNorm: (heap, spec) => rethrow(() => b.layerNorm(heap, spec)),
    maskedSoftmax: (heap, spec) => rethrow(() => b.maskedSoftmax(heap, spec)),
    transposeRows: (heap, spec) => rethrow(() => b.transposeRows(heap, spec)),
    headMatmul: (heap, spec) => rethrow(() => b.headMatmul(heap, spec)),
    setNumThreads: (threads) => rethrow(() => b.setNumThreads(threads)),
    getNumThreads: () => b.getNumThreads(),
    getConfig: () => b.getConfig(),
    getCorename: () => b.getCorename(),
  };
  coreReport = probeCore(blas);
  cachedBlas = blas;
  return cachedBlas;
}

/** Runs the start probe on the loaded core; throws BackendError naming the core and the worst element when it fails. */
function probeCore(blas: NativeBlas): OpenblasCoreReport {
  const choice = prepareOpenblasCore(); // made by loadModule already; this only reads it
  const coretype = blas.getCorename();
  const probe = probeMatmul(blas.matmul);
  if (!(probe.worstRatio <= 1)) {
    throw new BackendError(
      `OpenBLAS core ${coretype} (${choice.reason}) failed the start probe: expected every element within the float32 bound ` +
        `of a float64 reference, got ${probe.worstRatio.toPrecision(3)}x the bound at ${probe.worst}; ` +
        `set ${CORETYPE_ENV} to another core (e.g. Haswell, or Prescott, which every x86-64 CPU runs)`,
    );
  }
  return { coretype, requested: choice.coretype, source: choice.source, reason: choice.reason, probeWorstRatio: probe.worstRatio };
}

/** The vector kernels of the same addon; throws BackendError when it is missing, broken or built without them. */
export function loadNativeVector(): NativeVector {
  if (cachedVector !== undefined) return cachedVector;
  const mod = loadModule();
  checkExports(mod, ['addInto', 'adamWStep', 'sumOfSquares', 'scaleInPlace', 'setVectorIsa', 'getVectorIsa']);
  const k = mod as unknown as NativeVector;
  cachedVector = {
    addInto: (a, b) => rethrow(() => k.addInto(a, b)),
    adamWStep: (params, grad, m, v, decay, lr, beta1, beta2, epsilon, weightDecay) =>
      rethrow(() => k.adamWStep(params, grad, m, v, decay, lr, beta1, beta2, epsilon, weightDecay)),
    sumOfSquares: (x) => rethrow(() => k.sumOfSquares(x)),
    scaleInPlace: (x, factor) => rethrow(() => k.scaleInPlace(x, factor)),
    setVectorIsa: (isa) => rethrow(() => k.setVectorIsa(isa)),
    getVectorIsa: () => k.getVectorIsa(),
  };
  return cachedVector;
}

/** The addon throws plain Errors (code ERR_WASM_BLAS_ARG); callers catch BackendError. */
function rethrow<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_WASM_BLAS_ARG') {
      throw new BackendError((err as Error).message, { cause: err });
    }
    throw err;
  }
}
