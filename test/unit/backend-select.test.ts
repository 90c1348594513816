/**
 * Backend selection: on this machine kind (no CUDA, no tfjs-node: its install
 * needs a libtensorflow download) 'auto' picks wasm-blas and says why it
 * skipped the two tfjs-node backends; naming an unloadable backend throws a
 * BackendError naming it; the fingerprint tracks OpenBLAS threads.
 */
import { createRequire } from 'node:module';

import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';

import { BackendError, ConfigError } from '../../shared/errors.js';
import { backendFingerprint, initBackend } from '../../shared/backend/select.js';
import { hostNumerics } from '../../shared/process/host-info.js';

function installed(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false; // not installed: the case these tests are about
  }
}
const tfjsNodeInstalled = installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu');

describe('initBackend', () => {
  it.skipIf(tfjsNodeInstalled)('auto picks wasm-blas and records why tfjs-node-gpu and tfjs-node were not taken', async () => {
    const info = await initBackend({ name: 'auto', blasThreads: 1 });
    expect(info.name).toBe('wasm-blas');
    expect(info.tfBackend).toBe('wasm-blas');
    expect(tf.getBackend()).toBe('wasm-blas');
    expect(info.blasThreads).toBe(1);
    expect(info.blasConfig).toMatch(/OpenBLAS/);
    expect(info.tried.map((t) => t.name)).toEqual(['tfjs-node-gpu', 'tfjs-node']);
    // Without a GPU the first is skipped unattempted; with one, its import fails.
    expect(info.tried[0]!.error).toMatch(/skipped: no CUDA device visible|@tensorflow\/tfjs-node-gpu did not load/);
    expect(info.tried[1]!.error).toMatch(/@tensorflow\/tfjs-node did not load/);
    // and the chosen backend computes
    expect(Array.from(tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync())).toEqual([3, 3, 3, 3]);
  });

  it.skipIf(tfjsNodeInstalled)('an explicitly named backend that cannot load throws BackendError naming it', async () => {
    await expect(initBackend({ name: 'tfjs-node', blasThreads: 1 })).rejects.toThrow(BackendError);
    await expect(initBackend({ name: 'tfjs-node', blasThreads: 1 })).rejects.toThrow(/backend 'tfjs-node' could not be loaded/);
    await expect(initBackend({ name: 'tfjs-node-gpu', blasThreads: 1 })).rejects.toThrow(/backend 'tfjs-node-gpu' could not be loaded/);
  });

  it('explicit wasm-blas, wasm and cpu load; the fingerprint follows backend and OpenBLAS threads', async () => {
    const one = await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    const two = await initBackend({ name: 'wasm-blas', blasThreads: 2 });
    expect(two.blasThreads).toBe(2);
    expect(one.tried).toEqual([]);
    expect(backendFingerprint(one)).toMatch(/^backend=wasm-blas;tf=wasm-blas@4\.22\.0;kernels=\d+;blasThreads=1;openblas=OpenBLAS /);
    expect(backendFingerprint(two)).not.toBe(backendFingerprint(one));
    expect(backendFingerprint(await initBackend({ name: 'wasm-blas', blasThreads: 1 }))).toBe(backendFingerprint(one));
    const wasm = await initBackend({ name: 'wasm', blasThreads: 1 });
    expect([wasm.tfBackend, tf.getBackend(), wasm.blasThreads]).toEqual(['wasm', 'wasm', 0]);
    const cpu = await initBackend({ name: 'cpu', blasThreads: 1 });
    expect([cpu.tfBackend, tf.getBackend()]).toEqual(['cpu', 'cpu']);
    expect(backendFingerprint(cpu)).toMatch(/^backend=cpu;tf=cpu@4\.22\.0;kernels=\d+;blasThreads=0;openblas=none;libc=(glibc-[\d.]+|musl|unknown);cpu=[a-z0-9]+\//);
  });

  it('puts the OpenBLAS core, the C library and the CPU features in the fingerprint', async () => {
    const info = await initBackend({ name: 'wasm-blas', blasThreads: 1 });
    expect(info.host).toEqual(hostNumerics());
    expect(backendFingerprint(info)).toMatch(/;openblas=OpenBLAS .* core=\w+;/);
    const host = { arch: 'x64', libc: 'glibc-2.36', cpuVendor: 'GenuineIntel', cpuFlags: ['sse4_2', 'avx', 'fma', 'avx2'] };
    expect(backendFingerprint({ ...info, host }).split(';').slice(-2)).toEqual(['libc=glibc-2.36', 'cpu=x64/GenuineIntel/sse4_2,avx,fma,avx2']);
    // Another libc, or one CPU feature more, is another fingerprint: registration refuses the worker.
    expect(backendFingerprint({ ...info, host: { ...host, libc: 'musl' } })).not.toBe(backendFingerprint({ ...info, host }));
    expect(backendFingerprint({ ...info, host: { ...host, cpuFlags: [...host.cpuFlags, 'avx512f'] } })).not.toBe(backendFingerprint({ ...info, host }));
    expect(backendFingerprint({ ...info, host: { ...host, cpuVendor: 'unknown', cpuFlags: null } })).toMatch(/;cpu=x64\/unknown\/unknown$/);
  });

  it('rejects a bad thread count as a ConfigError', async () => {
    await expect(initBackend({ name: 'wasm-blas', blasThreads: 0 })).rejects.toThrow(ConfigError);
    await expect(initBackend({ name: 'wasm-blas', blasThreads: 1.5 })).rejects.toThrow(/blasThreads: expected an integer/);
  });
});
