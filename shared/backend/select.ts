/**
 * Backend selection: turns a configured backend name ('auto' or a concrete
 * one) into an initialized, active tfjs backend and says what was chosen and
 * why others were not. Does not log (the entry point logs "backend chosen")
 * and reads no environment variables: OpenBLAS threads are a parameter.
 * Knows the candidate backends; knows nothing of models, workers or the coordinator.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu'; // registers 'cpu'

import { BackendError, ConfigError } from '../errors.js';
import { hostNumerics, type HostNumerics } from '../process/host-info.js';
import { openblasCoreReport, type OpenblasCoreReport } from './native-addon.js';
import { WASM_BLAS, registerWasmBlasBackend, registerWasmExtras, wasmBlasInitError } from './wasm-blas.js';
import { KERNELS_VERSION } from './custom-kernels.js';

export type BackendName = 'auto' | 'tfjs-node-gpu' | 'tfjs-node' | 'wasm-blas' | 'wasm' | 'cpu';
export type ConcreteBackendName = Exclude<BackendName, 'auto'>;

/** The order 'auto' tries. */
export const AUTO_ORDER: readonly ConcreteBackendName[] = ['tfjs-node-gpu', 'tfjs-node', 'wasm-blas', 'wasm', 'cpu'];

export interface BackendInfo {
  /** The concrete backend chosen. */
  name: ConcreteBackendName;
  /** tfjs's name for it (tf.getBackend()): 'tensorflow', 'wasm-blas', 'wasm' or 'cpu'. */
  tfBackend: string;
  /** OpenBLAS threads in effect; 0 when the backend does not use OpenBLAS. */
  blasThreads: number;
  /** openblas_get_config() plus core name; '' when the backend does not use OpenBLAS. */
  blasConfig: string;
  /** The OpenBLAS core in use, why (user's OPENBLAS_CORETYPE, CPU flags, OpenBLAS's detection) and its start probe; null without OpenBLAS. */
  openblasCore: OpenblasCoreReport | null;
  /** Human-readable versions and settings. */
  details: string;
  /** The C library and CPU features this process computes on (shared/process/host-info.ts). */
  host: HostNumerics;
  /** Candidates tried before the chosen one (for 'auto'), each with why it was not taken. */
  tried: { name: ConcreteBackendName; error: string }[];
}

export interface InitBackendOptions {
  name: BackendName;
  /** OpenBLAS threads for this process (wasm-blas only); default 1. */
  blasThreads?: number;
}

interface Loaded {
  tfBackend: string;
  blasThreads: number;
  blasConfig: string;
  openblasCore: OpenblasCoreReport | null;
  details: string;
}

/** Why a candidate cannot be used (messages starting "skipped:" were not attempted). */
class Unavailable extends Error {
  override readonly name = 'Unavailable';
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function activate(tfName: string): Promise<void> {
  const ok = await tf.setBackend(tfName);
  if (!ok) {
    const cause = tfName === WASM_BLAS ? wasmBlasInitError() : undefined;
    throw new Unavailable(`tf.setBackend('${tfName}') failed${cause !== undefined ? `: ${message(cause)}` : ''}`);
  }
  await tf.ready();
  if (tf.getBackend() !== tfName) {
    throw new Unavailable(`expected tf.getBackend() to be '${tfName}' after setBackend, got '${tf.getBackend()}'`);
  }
}

function cudaVisible(): boolean {
  if (existsSync('/dev/nvidia0')) return true;
  const r = spawnSync('nvidia-smi', ['-L'], { timeout: 10_000, stdio: 'ignore' });
  return r.status === 0;
}

/** tfjs-node(-gpu) are optional dependencies whose install downloads libtensorflow. */
async function loadTfjsNode(pkg: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu'): Promise<Loaded> {
  let mod: { version?: Record<string, string> };
  try {
    mod = (await import(pkg)) as typeof mod; // a variable specifier: the package may not exist
  } catch (err) {
    throw new Unavailable(`${pkg} did not load (optional dependency; installing it downloads libtensorflow): ${message(err)}`);
  }
  await activate('tensorflow');
  return { tfBackend: 'tensorflow', blasThreads: 0, blasConfig: '', openblasCore: null, details: `${pkg} ${mod.version?.['tfjs-node'] ?? '?'}, tfjs-core ${tf.version_core}` };
}

async function load(name: ConcreteBackendName, blasThreads: number): Promise<Loaded> {
  switch (name) {
    case 'tfjs-node-gpu':
      if (!cudaVisible()) throw new Unavailable('skipped: no CUDA device visible (/dev/nvidia0 absent and `nvidia-smi -L` failed)');
      return loadTfjsNode('@tensorflow/tfjs-node-gpu');
    case 'tfjs-node':
      return loadTfjsNode('@tensorflow/tfjs-node');
    case 'wasm-blas': {
      const native = registerWasmBlasBackend();
      native.setNumThreads(blasThreads);
      await activate(WASM_BLAS);
      const threads = native.getNumThreads();
      if (threads !== blasThreads) {
        throw new Unavailable(`OpenBLAS threads: expected ${blasThreads}, got ${threads} (library built with fewer MAX_THREADS?)`);
      }
      const blasConfig = `${native.getConfig()} core=${native.getCorename()}`;
      const openblasCore = openblasCoreReport();
      if (openblasCore === undefined) throw new Unavailable('expected the OpenBLAS core report after loading the addon, got none');
      return { tfBackend: WASM_BLAS, blasThreads: threads, blasConfig, openblasCore, details: `${blasConfig}; tfjs-core ${tf.version_core} + tfjs-backend-wasm` };
    }
    case 'wasm':
      registerWasmExtras(); // UnsortedSegmentSum, so gather has a gradient
      await activate('wasm');
      return { tfBackend: 'wasm', blasThreads: 0, blasConfig: '', openblasCore: null, details: `tfjs-backend-wasm + JS UnsortedSegmentSum; tfjs-core ${tf.version_core}` };
    case 'cpu':
      await activate('cpu');
      return { tfBackend: 'cpu', blasThreads: 0, blasConfig: '', openblasCore: null, details: `tfjs-backend-cpu (pure JS); tfjs-core ${tf.version_core}` };
  }
}

/**
 * Initializes and activates a backend. 'auto' takes the first of AUTO_ORDER
 * that loads and lists the others in `tried`; a concrete name that cannot load
 * throws BackendError naming it and the reason.
 */
export async function initBackend(opts: InitBackendOptions): Promise<BackendInfo> {
  const blasThreads = opts.blasThreads ?? 1;
  if (!Number.isInteger(blasThreads) || blasThreads < 1 || blasThreads > 1024) {
    throw new ConfigError([`blasThreads: expected an integer in [1, 1024], got ${blasThreads}`]);
  }
  const candidates = opts.name === 'auto' ? AUTO_ORDER : [opts.name];
  if (opts.name !== 'auto' && !AUTO_ORDER.includes(opts.name)) {
    throw new ConfigError([`backend: expected one of auto|${AUTO_ORDER.join('|')}, got ${String(opts.name)}`]);
  }
  // Production mode: no debug checks, and no console banners (the cpu backend's
  // "install tfjs-node" note); the chosen backend is reported by the caller instead.
  tf.env().set('PROD', true);
  const tried: BackendInfo['tried'] = [];
  for (const name of candidates) {
    try {
      const loaded = await load(name, blasThreads);
      return { name, ...loaded, host: hostNumerics(), tried };
    } catch (err) {
      // Any failure (ours or tfjs's) means "this candidate cannot load": named
      // backends rethrow it, 'auto' records it in `tried` and moves on.
      if (opts.name !== 'auto') {
        throw new BackendError(`backend '${name}' could not be loaded: ${message(err)}`, { cause: err });
      }
      tried.push({ name, error: message(err) });
    }
  }
  throw new BackendError(`backend 'auto': no backend could be loaded: ${tried.map((t) => `${t.name}: ${t.error}`).join('; ')}`);
}

/**
 * What must be equal across workers for bitwise-identical results: backend,
 * tfjs version, OpenBLAS threads and build with the core it dispatched to
 * (`core=...`), the C library (libm), and the CPU architecture, vendor and
 * the instruction-set extensions numeric kernels choose between.
 * Registration compares these; what they cannot see (a GPU's atomics, a
 * faulty core) the gradient audit catches (cluster.auditEverySteps).
 */
export function backendFingerprint(info: BackendInfo): string {
  const { arch, libc, cpuVendor, cpuFlags } = info.host;
  return [
    `backend=${info.name}`,
    `tf=${info.tfBackend}@${tf.version_core}`,
    `kernels=${KERNELS_VERSION}`,
    `blasThreads=${info.blasThreads}`,
    `openblas=${info.blasConfig === '' ? 'none' : info.blasConfig}`,
    `libc=${libc}`,
    `cpu=${arch}/${cpuVendor}/${cpuFlags === null ? 'unknown' : cpuFlags.join(',')}`,
  ].join(';');
}
