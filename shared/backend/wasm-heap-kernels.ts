/**
 * Native versions of wasm kernels that a BERT step spends real time in, for
 * 'wasm-blas', each giving the same bytes as the stock kernel it replaces:
 * Sum over a contiguous run of axes (no transpose; same float32 addition
 * order), GatherV2 of whole slices (a copy), Identity and same-dtype Cast
 * without a copy (shared data, reference-counted like tfjs-cpu), and the
 * dropout keep mask (custom-kernels.ts) written straight onto the heap,
 * Transpose as a shared view (order-preserving permutations) or a row copy
 * (last axis kept), and LayerNorm forward and backward in one pass each.
 * Cases outside what the native code handles go to the stock kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';
import {
  DROPOUT_APPLY, DROPOUT_MASK, GELU, HEAD_MATMUL, LAYER_NORM, LAYER_NORM_GRAD, MASKED_SOFTMAX, MASKED_SOFTMAX_GRAD,
  SOFTMAX_XENT, SOFTMAX_XENT_GRAD, type DropoutMaskAttrs, type HeadMatmulAttrs, type LayerNormAttrs, type MaskedSoftmaxAttrs,
} from './custom-kernels.js';
import { heapOffset } from './heap-offset.js';
import type { NativeBlas } from './native-api.js';

interface HeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number | null } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(dataId: tf.DataId): void;
  disposeData(dataId: tf.DataId): boolean;
}
type Args = { inputs: Record<string, tf.TensorInfo>; backend: HeapBackend; attrs: Record<string, unknown> };

function heap(b: HeapBackend): ArrayBuffer {
  return b.wasm.HEAPU8.buffer as ArrayBuffer;
}
function offset(b: HeapBackend, t: tf.TensorInfo, what: string): number {
  return heapOffset(b.dataIdMap, t, what);
}
const product = (dims: readonly number[]): number => dims.reduce((p, d) => p * d, 1);

/** Runs `fill(outs)` on fresh outputs of the given shapes and dtypes, disposing them all if `fill` throws. */
function withOutputs(b: HeapBackend, specs: readonly (readonly [number[], tf.DataType])[], fill: (outs: tf.TensorInfo[]) => void): tf.TensorInfo[] {
  const outs: tf.TensorInfo[] = [];
  try {
    for (const [shape, dtype] of specs) outs.push(b.makeOutput(shape, dtype));
    fill(outs);
  } catch (err) {
    for (const t of outs) b.disposeData(t.dataId);
    throw err;
  }
  return outs;
}

/** withOutputs for one output. */
function withOutput(b: HeapBackend, shape: number[], dtype: tf.DataType, fill: (out: tf.TensorInfo) => void): tf.TensorInfo {
  return withOutputs(b, [[shape, dtype]], ([out]) => fill(out!))[0]!;
}

function sumKernel(native: NativeBlas, stock: tf.KernelFunc): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const x = args.inputs['x']!;
    const axes = [...new Set(tf.util.parseAxisParam(args.attrs['axis'] as number | number[], x.shape))].sort((p, q) => p - q);
    const contiguous = axes.every((a, i) => a === axes[0]! + i);
    if (x.dtype !== 'float32' || axes.length === 0 || !contiguous) return stock(args as never);
    const first = axes[0]!;
    const last = axes[axes.length - 1]!;
    const outer = product(x.shape.slice(0, first));
    const reduce = product(x.shape.slice(first, last + 1));
    const inner = product(x.shape.slice(last + 1));
    const shape = args.attrs['keepDims'] ? x.shape.map((d, i) => (i >= first && i <= last ? 1 : d)) : x.shape.filter((_, i) => i < first || i > last);
    return withOutput(b, shape, 'float32', (out) =>
      native.sumAxis(heap(b), { xOffset: offset(b, x, 'Sum x'), outOffset: offset(b, out, 'Sum out'), outer, reduce, inner }),
    );
  }) as unknown as tf.KernelFunc;
}

function gatherKernel(native: NativeBlas, stock: tf.KernelFunc): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const x = args.inputs['x']!;
    const ids = args.inputs['indices']!;
    const batchDims = (args.attrs['batchDims'] as number | undefined) ?? 0;
    if (batchDims !== 0 || (x.dtype !== 'float32' && x.dtype !== 'int32') || ids.dtype !== 'int32') {
      return stock(args as never);
    }
    const axis = tf.util.parseAxisParam(args.attrs['axis'] as number, x.shape)[0]!;
    const shape = [...x.shape.slice(0, axis), ...ids.shape, ...x.shape.slice(axis + 1)];
    return withOutput(b, shape, x.dtype, (out) =>
      native.gatherRows(heap(b), {
        xOffset: offset(b, x, 'GatherV2 x'),
        idsOffset: offset(b, ids, 'GatherV2 indices'),
        outOffset: offset(b, out, 'GatherV2 out'),
        outer: product(x.shape.slice(0, axis)),
        dim: x.shape[axis]!,
        slice: product(x.shape.slice(axis + 1)),
        numIds: product(ids.shape),
      }),
    );
  }) as unknown as tf.KernelFunc;
}

/** The input's data under a new tensor (tfjs-cpu's Identity): no kernel writes its inputs. */
function share(b: HeapBackend, x: tf.TensorInfo): tf.TensorInfo {
  b.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

function identityKernel(stock: tf.KernelFunc): tf.KernelFunc {
  return ((args: Args) => {
    const x = args.inputs['x']!;
    return x.dtype === 'string' ? stock(args as never) : share(args.backend, x);
  }) as unknown as tf.KernelFunc;
}

function castKernel(stock: tf.KernelFunc): tf.KernelFunc {
  return ((args: Args) => {
    const x = args.inputs['x']!;
    return x.dtype !== 'string' && x.dtype === args.attrs['dtype'] ? share(args.backend, x) : stock(args as never);
  }) as unknown as tf.KernelFunc;
}

function dropoutMaskKernel(native: NativeBlas): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const a = args.attrs as unknown as DropoutMaskAttrs;
    return withOutput(b, [...a.shape], 'float32', (out) =>
      native.dropoutMask(heap(b), { outOffset: offset(b, out, 'dropout mask'), size: product(a.shape), seed: a.seed, threshold: a.threshold, scale: a.scale }),
    );
  }) as unknown as tf.KernelFunc;
}

function dropoutApplyKernel(native: NativeBlas): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const x = args.inputs['x']!;
    requireDtype(x, 'float32', `${DROPOUT_APPLY} x`);
    const a = args.attrs as unknown as DropoutMaskAttrs;
    if (product(a.shape) !== product(x.shape)) throw new BackendError(`wasm-blas ${DROPOUT_APPLY}: expected x of shape [${a.shape}], got [${x.shape}]`);
    return withOutput(b, [...x.shape], 'float32', (out) =>
      native.dropoutMask(heap(b), {
        xOffset: offset(b, x, 'dropout x'), outOffset: offset(b, out, 'dropout out'),
        size: product(x.shape), seed: a.seed, threshold: a.threshold, scale: a.scale,
      }),
    );
  }) as unknown as tf.KernelFunc;
}

function requireDtype(t: tf.TensorInfo, dtype: tf.DataType, what: string): void {
  if (t.dtype !== dtype) throw new BackendError(`wasm-blas ${what}: expected dtype ${dtype}, got ${t.dtype}`);
}

function softmaxXentKernel(native: NativeBlas): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const logits = args.inputs['logits']!;
    const labels = args.inputs['labels']!;
    requireDtype(logits, 'float32', `${SOFTMAX_XENT} logits`);
    requireDtype(labels, 'int32', `${SOFTMAX_XENT} labels`);
    const [rows, classes] = logits.shape as [number, number];
    if (logits.shape.length !== 2 || labels.shape.length !== 1 || labels.shape[0] !== rows) {
      throw new BackendError(`wasm-blas ${SOFTMAX_XENT}: expected logits [n, C] and labels [n], got [${logits.shape}] and [${labels.shape}]`);
    }
    return withOutputs(b, [[[rows, classes], 'float32'], [[rows], 'float32'], [[rows], 'int32']], ([probs, loss, argmax]) =>
      native.softmaxXent(heap(b), {
        rows, classes,
        logitsOffset: offset(b, logits, 'logits'), labelsOffset: offset(b, labels, 'labels'),
        probsOffset: offset(b, probs!, 'probs'), lossOffset: offset(b, loss!, 'loss'), argmaxOffset: offset(b, argmax!, 'argmax'),
      }),
    );
  }) as unknown as tf.KernelFunc;
}

function softmaxXentGradKernel(native: NativeBlas): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const probs = args.inputs['probs']!;
    const labels = args.inputs['labels']!;
    const dy = args.inputs['dy']!;
    requireDtype(probs, 'float32', `${SOFTMAX_XENT_GRAD} probs`);
    requireDtype(labels, 'int32', `${SOFTMAX_XENT_GRAD} labels`);
    requireDtype(dy, 'float32', `${SOFTMAX_XENT_GRAD} dy`);
    const [rows, classes] = probs.shape as [number, number];
    if (product(labels.shape) !== rows || product(dy.shape) !== rows) {
      throw new BackendError(`wasm-blas ${SOFTMAX_XENT_GRAD}: expected labels and dy of ${rows} elements, got [${labels.shape}] and [${dy.shape}]`);
    }
    return withOutput(b, [rows, classes], 'float32', (out) =>
      native.softmaxXentGrad(heap(b), {
        rows, classes,
        probsOffset: offset(b, probs, 'probs'), labelsOffset: offset(b, labels, 'labels'),
        dyOffset: offset(b, dy, 'dy'), outOffset: offset(b, out, 'out'),
      }),
    );
  }) as unknown as tf.KernelFunc;
}

/** One head's stored matrix [rows, cols] in a packed or split operand. */
function headMatrix(t: tf.TensorInfo, split: boolean, batch: number, heads: number, what: string): [number, number] {
  const s = t.shape;
  if (split && s.length === 2 && s[0]! % batch === 0 && s[1]! % heads === 0) return [s[0]! / batch, s[1]! / heads];
  if (!split && s.length === 4 && s[0] === batch && s[1] === heads) return [s[2]!, s[3]!];
  const want = split ? `[${batch} x rows, ${heads} x cols] (split)` : `[${batch}, ${heads}, rows, cols] (packed)`;
  throw new BackendError(`wasm-blas ${HEAD_MATMUL} ${what}: expected ${want}, got [${s}]`);
}

function headMatmulKernel(native: NativeBlas): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const x = args.inputs['a']!;
    const y = args.inputs['b']!;
    const at = args.attrs as unknown as HeadMatmulAttrs;
    requireDtype(x, 'float32', `${HEAD_MATMUL} a`);
    requireDtype(y, 'float32', `${HEAD_MATMUL} b`);
    const [ar, ac] = headMatrix(x, at.aSplit, at.batch, at.heads, 'a');
    const [br, bc] = headMatrix(y, at.bSplit, at.batch, at.heads, 'b');
    const [m, k] = at.transposeA ? [ac, ar] : [ar, ac];
    const [kb, n] = at.transposeB ? [bc, br] : [br, bc];
    if (k !== kb) throw new BackendError(`wasm-blas ${HEAD_MATMUL}: expected b's inner dimension ${k} (a's), got ${kb}`);
    const shape = at.outSplit ? [at.batch * m, at.heads * n] : [at.batch, at.heads, m, n];
    return withOutput(b, shape, 'float32', (out) =>
      native.headMatmul(heap(b), {
        batch: at.batch, heads: at.heads, m, n, k, transposeA: at.transposeA, transposeB: at.transposeB,
        aOffset: offset(b, x, 'a'), aSplit: at.aSplit, bOffset: offset(b, y, 'b'), bSplit: at.bSplit,
        outOffset: offset(b, out, 'out'), outSplit: at.outSplit,
      }),
    );
  }) as unknown as tf.KernelFunc;
}

function geluKernel(native: NativeBlas): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const x = args.inputs['x']!;
    requireDtype(x, 'float32', `${GELU} x`);
    return withOutputs(b, [[[...x.shape], 'float32'], [[...x.shape], 'float32']], ([y, dydx]) =>
      native.gelu(heap(b), {
        size: product(x.shape), xOffset: offset(b, x, 'x'), outOffset: offset(b, y!, 'y'), derivOffset: offset(b, dydx!, 'dydx'),
      }),
    );
  }) as unknown as tf.KernelFunc;
}

/**
 * Transpose: a permutation that moves no axis of size > 1 relative to another
 * shares the input's data (the bytes are already in output order); one that
 * keeps the last axis last is a native row copy. Others go to stock wasm.
 */
function transposeKernel(native: NativeBlas, stock: tf.KernelFunc): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const x = args.inputs['x']!;
    const perm = args.attrs['perm'] as number[];
    const shape = perm.map((a) => x.shape[a]!);
    if (x.dtype === 'string' || perm.length !== x.shape.length) return stock(args as never);
    const moved = perm.filter((a) => x.shape[a]! > 1);
    if (moved.every((a, i) => i === 0 || a > moved[i - 1]!)) {
      b.incRef(x.dataId);
      return { dataId: x.dataId, shape, dtype: x.dtype };
    }
    if ((x.dtype !== 'float32' && x.dtype !== 'int32') || perm[perm.length - 1] !== perm.length - 1 || product(x.shape) === 0) {
      return stock(args as never);
    }
    return withOutput(b, shape, x.dtype, (out) =>
      native.transposeRows(heap(b), { xOffset: offset(b, x, 'Transpose x'), outOffset: offset(b, out, 'Transpose out'), shape: [...x.shape], perm: [...perm], elementBytes: 4 }),
    );
  }) as unknown as tf.KernelFunc;
}

function layerNormKernel(native: NativeBlas): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
    const width = x!.shape[x!.shape.length - 1]!;
    for (const [name, t] of [['x', x], ['gamma', gamma], ['beta', beta]] as const) requireDtype(t!, 'float32', `${LAYER_NORM} ${name}`);
    if (product(gamma!.shape) !== width || product(beta!.shape) !== width) {
      throw new BackendError(`wasm-blas ${LAYER_NORM}: expected gamma and beta of ${width} elements, got [${gamma!.shape}] and [${beta!.shape}]`);
    }
    const rows = product(x!.shape) / width;
    return withOutputs(b, [[[...x!.shape], 'float32'], [[rows], 'float32'], [[rows], 'float32']], ([out, mean, rstd]) =>
      native.layerNorm(heap(b), {
        rows, width, eps: (args.attrs as unknown as LayerNormAttrs).eps,
        xOffset: offset(b, x!, 'x'), gammaOffset: offset(b, gamma!, 'gamma'), betaOffset: offset(b, beta!, 'beta'),
        outOffset: offset(b, out!, 'out'), meanOffset: offset(b, mean!, 'mean'), rstdOffset: offset(b, rstd!, 'rstd'),
      }),
    );
  }) as unknown as tf.KernelFunc;
}

function layerNormGradKernel(native: NativeBlas): tf.KernelFunc {
  return ((args: Args) => {
    const { backend: b } = args;
    const { x, gamma, mean, rstd, dy } = args.inputs as Record<string, tf.TensorInfo>;
    for (const [name, t] of [['x', x], ['gamma', gamma], ['mean', mean], ['rstd', rstd], ['dy', dy]] as const) {
      requireDtype(t!, 'float32', `${LAYER_NORM_GRAD} ${name}`);
    }
    const width = x!.shape[x!.shape.length - 1]!;
    const rows = product(x!.shape) / width;
    if (product(dy!.shape) !== rows * width || product(gamma!.shape) !== width || product(mean!.shape) !== rows || product(rstd!.shape) !== rows) {
      throw new BackendError(
        `wasm-blas ${LAYER_NORM_GRAD}: expected dy [${x!.shape}], gamma [${width}], mean and rstd [${rows}], ` +
          `got [${dy!.shape}], [${gamma!.shape}], [${mean!.shape}], [${rstd!.shape}]`,
      );
    }
    return withOutputs(b, [[[...x!.shape], 'float32'], [[...gamma!.shape], 'float32'], [[...gamma!.shape], 'float32']], ([dx, dgamma, dbeta]) =>
      native.layerNorm(heap(b), {
        rows, width,
        xOffset: offset(b, x!, 'x'), gammaOffset: offset(b, gamma!, 'gamma'), meanOffset: offset(b, mean!, 'mean'),
        rstdOffset: offset(b, rstd!, 'rstd'), dyOffset: offset(b, dy!, 'dy'),
        outOffset: offset(b, dx!, 'dx'), dgammaOffset: offset(b, dgamma!, 'dgamma'), dbetaOffset: offset(b, dbeta!, 'dbeta'),
      }),
    );
  }) as unknown as tf.KernelFunc;
}

function maskedSoftmaxKernel(native: NativeBlas, backward: boolean): tf.KernelFunc {
  const name = backward ? MASKED_SOFTMAX_GRAD : MASKED_SOFTMAX;
  return ((args: Args) => {
    const { backend: b } = args;
    const main = args.inputs[backward ? 'y' : 'x']!;
    const other = args.inputs[backward ? 'dy' : 'mask']!;
    requireDtype(main, 'float32', `${name} ${backward ? 'y' : 'x'}`);
    requireDtype(other, 'float32', `${name} ${backward ? 'dy' : 'mask'}`);
    const n = main.shape[main.shape.length - 1]!;
    const outer = main.shape.length > 1 ? main.shape[0]! : 1;
    const inner = product(main.shape) / (outer * n);
    const want = backward ? product(main.shape) : outer * n;
    if (main.shape.length < 2 || product(other.shape) !== want || (!backward && other.shape[other.shape.length - 1] !== n)) {
      throw new BackendError(`wasm-blas ${name}: expected ${backward ? `dy [${main.shape}]` : `mask of [${outer}, ${n}] elements`}, got [${other.shape}]`);
    }
    const { scale } = args.attrs as unknown as MaskedSoftmaxAttrs;
    return withOutput(b, [...main.shape], 'float32', (out) =>
      native.maskedSoftmax(heap(b), {
        outer, inner, n, scale, outOffset: offset(b, out, 'out'),
        ...(backward ? { yOffset: offset(b, main, 'y'), dyOffset: offset(b, other, 'dy') } : { xOffset: offset(b, main, 'x'), maskOffset: offset(b, other, 'mask') }),
      }),
    );
  }) as unknown as tf.KernelFunc;
}

/** Kernels this file replaces on wasm-blas (beside the one it adds, DROPOUT_MASK). */
export const HEAP_KERNELS: readonly string[] = [tf.Sum, tf.GatherV2, tf.Identity, tf.Cast, tf.Transpose];

/** Kernels this file adds (custom-kernels.ts). */
export const ADDED_KERNELS: readonly string[] = [DROPOUT_MASK, DROPOUT_APPLY, SOFTMAX_XENT, SOFTMAX_XENT_GRAD, GELU, HEAD_MATMUL, LAYER_NORM, LAYER_NORM_GRAD, MASKED_SOFTMAX, MASKED_SOFTMAX_GRAD];

/** Replaces HEAP_KERNELS on `backendName` (a copy of wasm's kernels) and adds ADDED_KERNELS. */
export function registerHeapKernels(native: NativeBlas, backendName: string): void {
  const make: Record<string, (stock: tf.KernelFunc) => tf.KernelFunc> = {
    [tf.Sum]: (s) => sumKernel(native, s),
    [tf.GatherV2]: (s) => gatherKernel(native, s),
    [tf.Identity]: identityKernel,
    [tf.Cast]: castKernel,
    [tf.Transpose]: (s) => transposeKernel(native, s),
  };
  for (const name of HEAP_KERNELS) {
    const stock = tf.getKernel(name, 'wasm');
    if (stock == null) throw new BackendError(`wasm-blas: expected wasm's ${name} kernel, got none`);
    if (tf.getKernel(name, backendName) != null) tf.unregisterKernel(name, backendName);
    // The stock setupFunc binds wasm's module functions for the fallback path.
    tf.registerKernel({ ...stock, backendName, kernelFunc: make[name]!(stock.kernelFunc) });
  }
  const added: Record<string, tf.KernelFunc> = {
    [DROPOUT_MASK]: dropoutMaskKernel(native),
    [DROPOUT_APPLY]: dropoutApplyKernel(native),
    [SOFTMAX_XENT]: softmaxXentKernel(native),
    [SOFTMAX_XENT_GRAD]: softmaxXentGradKernel(native),
    [GELU]: geluKernel(native),
    [HEAD_MATMUL]: headMatmulKernel(native),
    [LAYER_NORM]: layerNormKernel(native),
    [LAYER_NORM_GRAD]: layerNormGradKernel(native),
    [MASKED_SOFTMAX]: maskedSoftmaxKernel(native, false),
    [MASKED_SOFTMAX_GRAD]: maskedSoftmaxKernel(native, true),
  };
  for (const kernelName of ADDED_KERNELS) {
    if (tf.getKernel(kernelName, backendName) == null) tf.registerKernel({ kernelName, backendName, kernelFunc: added[kernelName]! });
  }
}
