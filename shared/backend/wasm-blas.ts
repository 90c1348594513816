/**
 * The 'wasm-blas' tfjs backend: a fresh @tensorflow/tfjs-backend-wasm instance
 * with every wasm kernel, except that BatchMatMul and _FusedMatMul run on
 * OpenBLAS through the native addon, reading and writing the wasm heap in place,
 * and UnsortedSegmentSum (the gradient of gather, missing from wasm) is added.
 * `registerWasmExtras` adds a JS UnsortedSegmentSum to stock 'wasm' as well.
 *
 * NON-PUBLIC INTERNALS: this is the only file that touches BackendWasm
 * internals (`dataIdMap.get(dataId).memoryOffset`, `makeOutput`, `wasm.HEAPU8`),
 * checked against tfjs 4.22.0 (exact pins in package.json). `assertWasmInternals`
 * runs at every backend init and in test/unit/backend-kernels.test.ts, so a tfjs
 * upgrade that changes them fails loudly instead of corrupting memory.
 *
 * Sharing wasm's kernel configs (and their module-level setup state) with the
 * 'wasm' backend is safe: tfjs-core's engine re-runs every setupFunc of the
 * active backend on each setBackend(), and kernels only run on the active one.
 *
 * Knows tfjs kernel plumbing; knows nothing of models, training or selection.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm'; // registers the 'wasm' backend and its kernels

import { registerOneHotFix } from './wasm-one-hot.js';
import { registerUnaryKernels } from './wasm-unary.js';
import { HEAP_KERNELS, registerHeapKernels } from './wasm-heap-kernels.js';
import { heapOffset } from './heap-offset.js';
import { BackendError, ShapeError } from '../errors.js';
import { loadNativeBlas } from './native-addon.js';
import { ACTIVATION_CODES, type ActivationName, type NativeBlas } from './native-api.js';

export const WASM_BLAS = 'wasm-blas';
/** The tfjs version whose wasm internals this file was written against. */
export const TESTED_TFJS_VERSION = '4.22.0';
/** Kernels that differ from stock wasm: replaced (matmuls) or added (missing from wasm). */
export const WASM_BLAS_KERNELS: readonly string[] = [tf.BatchMatMul, tf._FusedMatMul, tf.UnsortedSegmentSum, ...HEAP_KERNELS];

// ---- the non-public BackendWasm surface we rely on ----------------------------
interface WasmModule {
  HEAPU8: Uint8Array; // replaced by emscripten whenever memory grows
  _malloc: (bytes: number) => number;
}
interface WasmTensorData {
  memoryOffset: number | null; // byte offset in the heap; null for strings
}
interface BackendWasmInternals extends tf.KernelBackend {
  wasm: WasmModule;
  dataIdMap: { get(dataId: tf.DataId): WasmTensorData | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  write(values: tf.backend_util.BackendValues | null, shape: number[], dtype: tf.DataType): tf.DataId;
  disposeData(dataId: tf.DataId): boolean;
}

/** The heap as it is now: call after every allocation (memory growth detaches the old buffer). */
function heapOf(backend: BackendWasmInternals): ArrayBuffer {
  return backend.wasm.HEAPU8.buffer as ArrayBuffer;
}

function offsetOf(backend: BackendWasmInternals, t: tf.TensorInfo, what: string): number {
  return heapOffset(backend.dataIdMap, t, what);
}

/** Throws BackendError unless `backend` still has the BackendWasm internals this file uses. */
export function assertWasmInternals(backend: unknown): asserts backend is BackendWasmInternals {
  const fail = (expected: string, got: string): never => {
    throw new BackendError(
      `wasm-blas: tfjs-backend-wasm internals changed (written for ${TESTED_TFJS_VERSION}, core is ${tf.version_core}): ` +
        `expected ${expected}, got ${got}`,
    );
  };
  const b = backend as Partial<BackendWasmInternals> | null;
  if (b == null || typeof b !== 'object') fail('a backend object', String(backend));
  if (!(b!.wasm?.HEAPU8 instanceof Uint8Array)) fail('backend.wasm.HEAPU8 to be a Uint8Array', typeof b!.wasm?.HEAPU8);
  if (!(b!.wasm!.HEAPU8.buffer instanceof ArrayBuffer)) fail('a non-shared ArrayBuffer heap', String(b!.wasm!.HEAPU8.buffer));
  for (const fn of ['makeOutput', 'write', 'disposeData'] as const) {
    if (typeof b![fn] !== 'function') fail(`backend.${fn}()`, typeof b![fn]);
  }
  if (typeof b!.dataIdMap?.get !== 'function') fail('backend.dataIdMap.get()', typeof b!.dataIdMap?.get);
  const be = b as BackendWasmInternals;
  // Functional probe: a written tensor's bytes sit at its memoryOffset; makeOutput allocates one.
  const probe = be.write(new Float32Array([1.5, -2, 3.25]), [3], 'float32');
  const out = be.makeOutput([2], 'float32');
  try {
    const at = be.dataIdMap.get(probe)?.memoryOffset;
    if (typeof at !== 'number') fail('dataIdMap.get(dataId).memoryOffset to be a number', typeof at);
    const seen = Array.from(new Float32Array(heapOf(be).slice(at!, at! + 12)));
    if (seen.join() !== '1.5,-2,3.25') fail('tensor bytes at memoryOffset [1.5,-2,3.25]', `[${seen.join()}]`);
    if (typeof be.dataIdMap.get(out.dataId)?.memoryOffset !== 'number') fail('makeOutput() to allocate on the heap', 'no memoryOffset');
  } finally {
    be.disposeData(probe);
    be.disposeData(out.dataId);
  }
}

// ---- kernels --------------------------------------------------------------------
interface KernelArgs<A = Record<string, unknown>> {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: BackendWasmInternals;
  attrs?: A;
}

function requireFloat32(t: tf.TensorInfo, what: string): void {
  if (t.dtype !== 'float32') throw new BackendError(`wasm-blas ${what}: expected dtype float32, got ${t.dtype}`);
}

/** Element strides of `x` broadcast over `outShape` (right-aligned; a dim of 1 gets stride 0). */
function broadcastStrides(xShape: readonly number[], outShape: readonly number[]): number[] {
  const natural = xShape.map((_, i) => xShape.slice(i + 1).reduce((p, d) => p * d, 1));
  const lead = outShape.length - xShape.length;
  return outShape.map((_, d) => (d < lead || xShape[d - lead] === 1 ? 0 : natural[d - lead]!));
}

interface Epilogue {
  activation: ActivationName;
  alpha: number;
  bias?: tf.TensorInfo;
  prelu?: tf.TensorInfo;
}

function runMatMul(
  backend: BackendWasmInternals,
  native: NativeBlas,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  epi?: Epilogue,
): tf.TensorInfo {
  requireFloat32(a, 'matMul a');
  requireFloat32(b, 'matMul b');
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) throw new ShapeError('wasm-blas matMul operand ranks', '>= 2', `${ra} and ${rb}`);
  // a: [...aBatch, m, k] or [..., k, m]; b: [...bBatch, k, n] or [..., n, k]
  const m = a.shape[transposeA ? ra - 1 : ra - 2]!;
  const k = a.shape[transposeA ? ra - 2 : ra - 1]!;
  const kb = b.shape[transposeB ? rb - 1 : rb - 2]!;
  const n = b.shape[transposeB ? rb - 2 : rb - 1]!;
  if (k !== kb) {
    throw new ShapeError('wasm-blas matMul inner dims', `equal (a [${a.shape}] tA=${transposeA})`, `${k} vs ${kb} (b [${b.shape}] tB=${transposeB})`);
  }
  const aBatch = a.shape.slice(0, -2);
  const bBatch = b.shape.slice(0, -2);
  const mmShape = [...tf.broadcast_util.assertAndGetBroadcastShape(aBatch, bBatch), m, n]; // [...outBatch, m, n]
  // tfjs-cpu adds the bias (then prelu) with broadcasting; the result may only gain leading 1s.
  let outShape = mmShape;
  if (epi?.bias) outShape = tf.broadcast_util.assertAndGetBroadcastShape(outShape, epi.bias.shape);
  if (epi?.prelu) outShape = tf.broadcast_util.assertAndGetBroadcastShape(outShape, epi.prelu.shape);
  if (tf.util.sizeFromShape(outShape) !== tf.util.sizeFromShape(mmShape)) {
    throw new ShapeError('wasm-blas fusedMatMul bias/prelu', `broadcastable into [${mmShape}]`, `result [${outShape}]`);
  }
  const out = backend.makeOutput(outShape, 'float32');
  const spec: Parameters<NativeBlas['matmul']>[1] = {
    aOffset: offsetOf(backend, a, 'matMul a'),
    bOffset: offsetOf(backend, b, 'matMul b'),
    outOffset: offsetOf(backend, out, 'matMul out'),
    aSize: tf.util.sizeFromShape(a.shape),
    bSize: tf.util.sizeFromShape(b.shape),
    outSize: tf.util.sizeFromShape(mmShape),
    aBatch,
    bBatch,
    m,
    n,
    k,
    transposeA,
    transposeB,
    activation: ACTIVATION_CODES[epi?.activation ?? 'linear'],
    alpha: epi?.alpha ?? 0.2,
  };
  for (const [name, t] of [['bias', epi?.bias], ['prelu', epi?.prelu]] as const) {
    if (t == null) continue;
    requireFloat32(t, `fusedMatMul ${name}`);
    spec[`${name}Offset`] = offsetOf(backend, t, `fusedMatMul ${name}`);
    spec[`${name}Size`] = tf.util.sizeFromShape(t.shape);
    spec[`${name}Strides`] = broadcastStrides(t.shape, mmShape);
  }
  try {
    native.matmul(heapOf(backend), spec); // heap fetched after makeOutput: it may have grown
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  }
  return out;
}

function makeBatchMatMul(native: NativeBlas): tf.KernelFunc {
  return ((args: KernelArgs<{ transposeA: boolean; transposeB: boolean }>) => {
    const { a, b } = args.inputs;
    return runMatMul(args.backend, native, a!, b!, !!args.attrs?.transposeA, !!args.attrs?.transposeB);
  }) as unknown as tf.KernelFunc;
}

function makeFusedMatMul(native: NativeBlas): tf.KernelFunc {
  type Attrs = { transposeA: boolean; transposeB: boolean; activation?: string; leakyreluAlpha?: number };
  return ((args: KernelArgs<Attrs>) => {
    const { a, b, bias, preluActivationWeights } = args.inputs;
    const activation = (args.attrs?.activation ?? 'linear') as ActivationName;
    if (!(activation in ACTIVATION_CODES)) {
      throw new BackendError(`wasm-blas _FusedMatMul activation: expected one of ${Object.keys(ACTIVATION_CODES).join('|')}, got ${activation}`);
    }
    if (activation === 'prelu' && preluActivationWeights == null) {
      throw new BackendError('wasm-blas _FusedMatMul: expected preluActivationWeights for activation prelu, got none');
    }
    const epi: Epilogue = { activation, alpha: args.attrs?.leakyreluAlpha ?? 0.2 };
    if (bias != null) epi.bias = bias;
    if (activation === 'prelu') epi.prelu = preluActivationWeights!;
    return runMatMul(args.backend, native, a!, b!, !!args.attrs?.transposeA, !!args.attrs?.transposeB, epi);
  }) as unknown as tf.KernelFunc;
}

type SegmentSum = NativeBlas['unsortedSegmentSum'];

/**
 * The same loop as native/src/segment.c in JS, for the plain 'wasm' backend
 * when the addon is absent. Float32Array stores round every add to float32,
 * so the result is bit-identical to the C one. Typed-array views throw a
 * RangeError rather than read outside the heap.
 */
const jsSegmentSum: SegmentSum = (heap, s) => {
  const x = new Float32Array(heap, s.xOffset, s.xSize);
  const ids = new Int32Array(heap, s.idsOffset, s.numIds);
  const out = new Float32Array(heap, s.outOffset, s.outSize).fill(0);
  let dropped = 0;
  for (let i = 0; i < s.numIds; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= s.numSegments) {
      dropped++;
      continue;
    }
    for (let j = 0, d = id * s.rowSize, r = i * s.rowSize; j < s.rowSize; j++) out[d + j] += x[r + j]!;
  }
  return dropped;
};

/** TF semantics: segmentIds' shape is a prefix of x's; out is [numSegments, ...x.shape[idsRank:]]. */
function makeUnsortedSegmentSum(segmentSum: SegmentSum): tf.KernelFunc {
  return ((args: KernelArgs<{ numSegments: number }>) => {
    const { backend } = args;
    const x = args.inputs.x!;
    const ids = args.inputs.segmentIds!;
    const numSegments = args.attrs?.numSegments ?? -1;
    requireFloat32(x, 'unsortedSegmentSum x');
    if (ids.dtype !== 'int32') throw new BackendError(`wasm-blas unsortedSegmentSum segmentIds: expected dtype int32, got ${ids.dtype}`);
    if (!Number.isInteger(numSegments) || numSegments < 0) {
      throw new BackendError(`wasm-blas unsortedSegmentSum numSegments: expected an integer >= 0, got ${numSegments}`);
    }
    const r = ids.shape.length;
    if (r > x.shape.length || ids.shape.some((d, i) => d !== x.shape[i])) {
      throw new ShapeError('wasm-blas unsortedSegmentSum segmentIds shape', `a prefix of x.shape [${x.shape}]`, `[${ids.shape}]`);
    }
    const rowShape = x.shape.slice(r);
    const out = backend.makeOutput([numSegments, ...rowShape], 'float32');
    try {
      segmentSum(heapOf(backend), {
        xOffset: offsetOf(backend, x, 'unsortedSegmentSum x'),
        idsOffset: offsetOf(backend, ids, 'unsortedSegmentSum segmentIds'),
        outOffset: offsetOf(backend, out, 'unsortedSegmentSum out'),
        numIds: tf.util.sizeFromShape(ids.shape),
        rowSize: tf.util.sizeFromShape(rowShape),
        numSegments,
        xSize: tf.util.sizeFromShape(x.shape),
        outSize: tf.util.sizeFromShape(out.shape),
      });
    } catch (err) {
      backend.disposeData(out.dataId);
      throw err;
    }
    return out;
  }) as unknown as tf.KernelFunc;
}

// ---- registration ---------------------------------------------------------------
/**
 * Registers the 'wasm-blas' backend and its kernels (idempotent). Loads the
 * addon first, so a missing build throws BackendError and registers nothing.
 */
export function registerWasmBlasBackend(): NativeBlas {
  const native = loadNativeBlas();
  if (tf.findBackendFactory(WASM_BLAS) != null) return native;
  const wasmFactory = tf.findBackendFactory('wasm');
  if (wasmFactory == null) {
    throw new BackendError("wasm-blas: expected the 'wasm' backend registered by @tensorflow/tfjs-backend-wasm, got none");
  }
  const replaced = new Set(WASM_BLAS_KERNELS);
  for (const config of tf.getKernelsForBackend('wasm')) {
    if (!replaced.has(config.kernelName)) tf.registerKernel({ ...config, backendName: WASM_BLAS });
  }
  tf.registerKernel({ kernelName: tf.BatchMatMul, backendName: WASM_BLAS, kernelFunc: makeBatchMatMul(native) });
  tf.registerKernel({ kernelName: tf._FusedMatMul, backendName: WASM_BLAS, kernelFunc: makeFusedMatMul(native) });
  tf.registerKernel({ kernelName: tf.UnsortedSegmentSum, backendName: WASM_BLAS, kernelFunc: makeUnsortedSegmentSum(native.unsortedSegmentSum) });
  registerOneHotFix(WASM_BLAS);
  registerUnaryKernels(native, WASM_BLAS);
  registerHeapKernels(native, WASM_BLAS);
  tf.registerBackend(WASM_BLAS, async () => {
    try {
      const backend = await wasmFactory(); // a new emscripten module: its own heap, own tensor ids
      assertWasmInternals(backend);
      initError = undefined;
      return backend;
    } catch (err) {
      initError = err; // tfjs's engine only warns and makes setBackend() return false
      throw err;
    }
  });
  return native;
}

/**
 * Adds to the stock 'wasm' backend the one kernel BERT training needs that it
 * lacks (UnsortedSegmentSum, the gradient of gather), in JS: needs no addon,
 * so 'wasm' stays a usable fallback. Idempotent.
 */
export function registerWasmExtras(): void {
  if (tf.getKernel(tf.UnsortedSegmentSum, 'wasm') != null) return;
  registerOneHotFix('wasm');
  tf.registerKernel({ kernelName: tf.UnsortedSegmentSum, backendName: 'wasm', kernelFunc: makeUnsortedSegmentSum(jsSegmentSum) });
}

let initError: unknown;

/** Why the last 'wasm-blas' backend init failed (tfjs swallows it), or undefined. */
export function wasmBlasInitError(): unknown {
  return initError;
}
