/**
 * Which implementation runs the step's flat-vector arithmetic (tree-sum adds,
 * AdamW, clipping): the addon's C loops (native/src/vector.c) or the reference
 * JavaScript loops (shared/training/vector-js.ts). Both give the same bytes —
 * test/unit/native-vector.test.ts holds them to it — so the choice changes
 * speed, never results, and a cluster may mix machines with and without the addon.
 *
 * The choice is made once per thread (module state is per isolate) and kept:
 * an entry point calls `selectVectorKernels` and logs the returned info; code
 * that runs before any choice gets 'auto' on first use, recorded the same way
 * (`vectorKernelsInfo()` says which and why). Does not log, reads no environment.
 */
import { BackendError } from '../errors.js';
import { jsVectorOps, type VectorOps } from '../training/vector-js.js';
import { loadNativeVector, nativeAddonPath } from './native-addon.js';

export type VectorKernelsChoice = 'auto' | 'native' | 'js';
export const VECTOR_KERNELS_CHOICES: readonly VectorKernelsChoice[] = ['auto', 'native', 'js'];

export interface VectorKernelsInfo {
  /** What runs. */
  name: 'native' | 'js';
  requested: VectorKernelsChoice;
  /** 'explicit': selectVectorKernels was called; 'first use': 'auto' was taken when a kernel first ran. */
  decidedBy: 'explicit' | 'first use';
  /** Why: the addon's path, or why it could not be used. */
  reason: string;
}

let active: { ops: VectorOps; info: VectorKernelsInfo } | undefined;

function resolve(requested: VectorKernelsChoice, decidedBy: VectorKernelsInfo['decidedBy']): { ops: VectorOps; info: VectorKernelsInfo } {
  if (requested === 'js') {
    return { ops: jsVectorOps, info: { name: 'js', requested, decidedBy, reason: 'JavaScript loops requested' } };
  }
  try {
    const ops = loadNativeVector();
    const reason = `wasm-blas addon at ${nativeAddonPath()}, ${ops.getVectorIsa()} loops`;
    return { ops, info: { name: 'native', requested, decidedBy, reason } };
  } catch (err) {
    if (requested === 'native' || !(err instanceof BackendError)) {
      throw new BackendError(`vector kernels '${requested}': native kernels unavailable: ${(err as Error).message}`, { cause: err });
    }
    // 'auto' decides: the JS loops give the same bytes; the reason is reported, not dropped.
    return { ops: jsVectorOps, info: { name: 'js', requested, decidedBy, reason: `native kernels unavailable: ${err.message}` } };
  }
}

/**
 * Chooses the implementation for this thread and returns what was chosen and
 * why (the caller logs it). 'native' throws BackendError when the addon cannot
 * be used; 'auto' falls back to JavaScript and says why in `reason`.
 */
export function selectVectorKernels(choice: VectorKernelsChoice): VectorKernelsInfo {
  if (!VECTOR_KERNELS_CHOICES.includes(choice)) {
    throw new BackendError(`vector kernels: expected one of ${VECTOR_KERNELS_CHOICES.join('|')}, got ${String(choice)}`);
  }
  active = resolve(choice, 'explicit');
  return active.info;
}

function current(): { ops: VectorOps; info: VectorKernelsInfo } {
  if (active === undefined) active = resolve('auto', 'first use');
  return active;
}

/** The kernels in effect; takes 'auto' on first use when no choice was made. */
export function vectorOps(): VectorOps {
  return current().ops;
}

/** What vectorOps() runs and why (makes the 'auto' choice if none was made yet). */
export function vectorKernelsInfo(): VectorKernelsInfo {
  return current().info;
}
