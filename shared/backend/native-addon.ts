/**
 * The one loader of the wasm-blas N-API addon (native/build/Release/wasm_blas.node,
 * built by `npm run build:native` from native/). It types the addon's calls
 * (their specs are in native-api.ts) and turns its argument errors into `BackendError`s. It knows byte offsets,
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
import type { NativeBlas } from './native-api.js';
import { applyOpenblasCore, missingFlags, CORETYPE_ENV, type CoreChoice, type CoreSource } from './openblas-core.js';


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
