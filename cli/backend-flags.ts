/**
 * The `--backend` and `--blas-threads` flags every compute command takes, and
 * the start-up lines that say which backend was chosen and why others were not,
 * and which flat-vector kernels (native or JS) run the optimizer and tree sum.
 */
import { initBackend, type BackendInfo, type BackendName } from '../shared/backend/select.js';
import { selectVectorKernels } from '../shared/backend/vector-kernels.js';
import type { Logger } from '../shared/log.js';
import { intFlag, UsageError, type Options } from './args.js';

export const BACKEND_NAMES: readonly BackendName[] = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm-blas', 'wasm', 'cpu'];

export const backendOptions: Options = {
  backend: { type: 'string' },
  'blas-threads': { type: 'string' },
};

export const BACKEND_HELP = `  --backend NAME        ${BACKEND_NAMES.join(' | ')} (default auto: the first that loads,
                        tfjs-node-gpu only when a CUDA device is visible)
  --blas-threads N      OpenBLAS threads for wasm-blas (default 1 per process)
                        OpenBLAS kernels: OPENBLAS_CORETYPE if set, else the core the CPU
                        flags support (AVX-512: SkylakeX/Cooperlake, AVX2+FMA: Haswell/Zen),
                        else OpenBLAS's own detection; logged as 'openblas core chosen'`;

export function backendChoice(values: Record<string, unknown>, fallback?: { backend?: string; blasThreads?: number }): {
  name: BackendName;
  blasThreads: number;
} {
  const name = (values['backend'] ?? fallback?.backend ?? 'auto') as string;
  if (!BACKEND_NAMES.includes(name as BackendName)) {
    throw new UsageError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got "${name}"`);
  }
  const blasThreads = intFlag(values, 'blas-threads', { min: 1 }) ?? fallback?.blasThreads ?? 1;
  return { name: name as BackendName, blasThreads };
}

export async function startBackend(choice: { name: BackendName; blasThreads: number }, log: Logger): Promise<BackendInfo> {
  const info = await initBackend(choice);
  log.info(
    { backend: info.name, blasThreads: info.blasThreads, details: info.details, skipped: info.tried.map((t) => `${t.name}: ${t.error}`) },
    'backend chosen',
  );
  if (info.openblasCore !== null) log.info(info.openblasCore, 'openblas core chosen');
  startVectorKernels(log);
  return info;
}

/**
 * The flat-vector kernels (native or JS) for the optimizer and tree sum,
 * chosen and logged; all a process that runs no tensor code (the
 * coordinator) needs.
 */
export function startVectorKernels(log: Logger): void {
  const vector = selectVectorKernels('auto'); // same bytes either way; the choice is speed
  log.info({ vectorKernels: vector.name, reason: vector.reason }, 'vector kernels chosen');
}
