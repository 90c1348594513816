/**
 * The OpenBLAS core decision (shared/backend/openblas-core.ts): CPU flags name
 * the core (AVX-512 -> SkylakeX/Cooperlake, AVX2+FMA -> Haswell/Zen), a user's
 * OPENBLAS_CORETYPE wins, no flags or a pre-AVX2 CPU leave OpenBLAS to detect,
 * a value a bertfleet parent set is decided afresh, and a worker thread only
 * reports. Then the start probe (blas-probe.ts) against the real addon and
 * against matmuls that compute wrongly.
 */
import { describe, expect, it } from 'vitest';

import { probeMatmul } from '../../shared/backend/blas-probe.js';
import { loadNativeBlas, openblasCoreReport } from '../../shared/backend/native-addon.js';
import type { HeapMatMulSpec } from '../../shared/backend/native-api.js';
import {
  applyOpenblasCore, chooseOpenblasCore, missingFlags, CHOSEN_BY_BERTFLEET_ENV, CORETYPE_ENV, type CoreHost,
} from '../../shared/backend/openblas-core.js';

const SSE3 = ['sse2', 'pni', 'ssse3', 'sse4_1', 'sse4_2'];
const AVX = [...SSE3, 'avx', 'f16c'];
const AVX2 = [...AVX, 'fma', 'avx2'];
const AVX512 = [...AVX2, 'avx512f', 'avx512dq', 'avx512cd', 'avx512bw', 'avx512vl'];
const intel = (flags: string[] | null): CoreHost => ({ arch: 'x64', vendor: 'GenuineIntel', flags });
const amd = (flags: string[] | null): CoreHost => ({ arch: 'x64', vendor: 'AuthenticAMD', flags });
const unset = { given: undefined, chosenByBertfleet: undefined };

describe('chooseOpenblasCore', () => {
  it('names the core the CPU flags support', () => {
    expect(chooseOpenblasCore(unset, intel(AVX512))).toMatchObject({ source: 'cpu-flags', coretype: 'SkylakeX' });
    expect(chooseOpenblasCore(unset, intel([...AVX512, 'avx512_bf16']))).toMatchObject({ source: 'cpu-flags', coretype: 'Cooperlake' });
    expect(chooseOpenblasCore(unset, amd([...AVX512, 'avx512_bf16']))).toMatchObject({ source: 'cpu-flags', coretype: 'Cooperlake' });
    expect(chooseOpenblasCore(unset, intel(AVX2))).toMatchObject({ source: 'cpu-flags', coretype: 'Haswell' });
    expect(chooseOpenblasCore(unset, amd(AVX2))).toMatchObject({ source: 'cpu-flags', coretype: 'Zen' });
    expect(chooseOpenblasCore(unset, { arch: 'x64', vendor: 'HygonGenuine', flags: AVX2 })).toMatchObject({ coretype: 'Zen' });
    const skx = chooseOpenblasCore(unset, intel(AVX512));
    expect(skx.reason).toBe('CPU flags avx,avx2,fma,avx512f,avx512bw,avx512dq,avx512vl (GenuineIntel)');
  });

  it('asks for a core only when every flag its kernels use is present', () => {
    // Xeon Phi: AVX-512F without BW/DQ/VL runs Haswell kernels, as OpenBLAS itself decides.
    expect(chooseOpenblasCore(unset, intel([...AVX2, 'avx512f', 'avx512cd']))).toMatchObject({ coretype: 'Haswell' });
    // AVX2 without FMA is no Haswell.
    expect(chooseOpenblasCore(unset, intel([...AVX, 'avx2']))).toMatchObject({ source: 'openblas', coretype: null });
  });

  it("leaves a Prescott-class or AVX-only CPU to OpenBLAS's own detection", () => {
    expect(chooseOpenblasCore(unset, intel(SSE3))).toEqual({ source: 'openblas', coretype: null, reason: "no AVX2+FMA among the CPU flags: OpenBLAS's own detection" });
    expect(chooseOpenblasCore(unset, intel(AVX))).toMatchObject({ source: 'openblas', coretype: null });
  });

  it('makes no choice without CPU flags or off x86-64', () => {
    expect(chooseOpenblasCore(unset, intel(null))).toEqual({
      source: 'openblas', coretype: null, reason: "CPU flags unknown (no /proc/cpuinfo): OpenBLAS's own detection",
    });
    expect(chooseOpenblasCore(unset, { arch: 'arm64', vendor: '0x41', flags: ['fp', 'asimd', 'sve'] })).toMatchObject({ source: 'openblas', coretype: null });
  });

  it("lets the user's OPENBLAS_CORETYPE win, whatever the flags", () => {
    expect(chooseOpenblasCore({ given: 'Prescott', chosenByBertfleet: undefined }, intel(AVX512))).toEqual({
      source: 'user', coretype: 'Prescott', reason: 'OPENBLAS_CORETYPE=Prescott given in the environment',
    });
    expect(chooseOpenblasCore({ given: 'Haswell', chosenByBertfleet: 'SkylakeX' }, intel(AVX512))).toMatchObject({ source: 'user', coretype: 'Haswell' });
    expect(chooseOpenblasCore({ given: 'Haswell', chosenByBertfleet: undefined }, intel(null))).toMatchObject({ source: 'user' });
    // An empty value is no value.
    expect(chooseOpenblasCore({ given: '', chosenByBertfleet: undefined }, intel(AVX2))).toMatchObject({ source: 'cpu-flags', coretype: 'Haswell' });
  });

  it('decides afresh when the value is one a bertfleet parent set', () => {
    expect(chooseOpenblasCore({ given: 'SkylakeX', chosenByBertfleet: 'SkylakeX' }, intel(AVX512))).toMatchObject({ source: 'cpu-flags', coretype: 'SkylakeX' });
    expect(chooseOpenblasCore({ given: 'SkylakeX', chosenByBertfleet: 'SkylakeX' }, intel(AVX2))).toMatchObject({ source: 'cpu-flags', coretype: 'Haswell' });
  });
});

describe('missingFlags', () => {
  it('lists the flags a named core needs that the CPU lacks, case-insensitively', () => {
    expect(missingFlags('SkylakeX', AVX2)).toEqual(['avx512f', 'avx512bw', 'avx512dq', 'avx512vl']);
    expect(missingFlags('cooperlake', AVX512)).toEqual(['avx512_bf16']);
    expect(missingFlags('HASWELL', AVX2)).toEqual([]);
    expect(missingFlags('Prescott', SSE3)).toEqual([]);
    expect(missingFlags('NoSuchCore', [])).toEqual([]);
  });
});

describe('applyOpenblasCore', () => {
  it('on the main thread sets OPENBLAS_CORETYPE and its marker to the choice', () => {
    const env: Record<string, string | undefined> = { PATH: '/bin' };
    expect(applyOpenblasCore(env, intel(AVX512), true)).toMatchObject({ source: 'cpu-flags', coretype: 'SkylakeX' });
    expect(env).toEqual({ PATH: '/bin', [CORETYPE_ENV]: 'SkylakeX', [CHOSEN_BY_BERTFLEET_ENV]: 'SkylakeX' });
    // A child on the same host (inheriting both) decides the same and changes nothing.
    const child = { ...env };
    expect(applyOpenblasCore(child, intel(AVX512), true)).toMatchObject({ source: 'cpu-flags', coretype: 'SkylakeX' });
    expect(child).toEqual(env);
  });

  it("leaves a user's value untouched and writes no marker", () => {
    const env: Record<string, string | undefined> = { [CORETYPE_ENV]: 'Haswell' };
    expect(applyOpenblasCore(env, intel(AVX512), true)).toMatchObject({ source: 'user', coretype: 'Haswell' });
    expect(env).toEqual({ [CORETYPE_ENV]: 'Haswell' });
  });

  it("removes an inherited bertfleet value when this host leaves the core to OpenBLAS, and writes nothing when there is none", () => {
    const env: Record<string, string | undefined> = { [CORETYPE_ENV]: 'SkylakeX', [CHOSEN_BY_BERTFLEET_ENV]: 'SkylakeX' };
    expect(applyOpenblasCore(env, intel(SSE3), true)).toMatchObject({ source: 'openblas', coretype: null });
    expect(env).toEqual({});
    const empty: Record<string, string | undefined> = {};
    applyOpenblasCore(empty, intel(null), true);
    expect(empty).toEqual({});
  });

  it('in a worker thread reports the choice only if the main thread made it', () => {
    const inherited = { [CORETYPE_ENV]: 'Haswell', [CHOSEN_BY_BERTFLEET_ENV]: 'Haswell' };
    expect(applyOpenblasCore({ ...inherited }, intel(AVX2), false)).toMatchObject({ source: 'cpu-flags', coretype: 'Haswell' });
    const bare: Record<string, string | undefined> = {};
    const choice = applyOpenblasCore(bare, intel(AVX2), false);
    expect(choice).toMatchObject({ source: 'openblas', coretype: null });
    expect(choice.reason).toMatch(/^not applied: OpenBLAS was first loaded in a worker thread.*wanted Haswell/);
    expect(bare).toEqual({});
  });
});

describe('probeMatmul', () => {
  const blas = loadNativeBlas();

  it('passes on the core this process loaded, which the report names', () => {
    const probe = probeMatmul(blas.matmul);
    expect(probe.cases).toBe(4);
    expect(probe.worstRatio).toBeLessThanOrEqual(1);
    const report = openblasCoreReport()!;
    expect(report.coretype).toBe(blas.getCorename());
    expect(report.probeWorstRatio).toBeLessThanOrEqual(1);
    if (report.source !== 'openblas') expect(report.coretype.toLowerCase()).toBe(report.requested!.toLowerCase());
  });

  it('fails a matmul that is off in one element or leaves elements unwritten', () => {
    const offByOne = (heap: ArrayBuffer, spec: HeapMatMulSpec): number => {
      blas.matmul(heap, spec);
      const out = new Float32Array(heap, spec.outOffset, spec.outSize);
      if (spec.m === 37) out[5] = out[5]! + 0.01; // ~1e-3 of its Σ|a·b|: far past float32 rounding (~1e-6)
      return 1;
    };
    const off = probeMatmul(offByOne);
    expect(off.worstRatio).toBeGreaterThan(1);
    expect(off.worst).toMatch(/^case 1 \[1x37x53\]@\[53x29\] tA element \(0,0,5\)/);
    expect(probeMatmul(() => 0).worstRatio).toBe(Infinity);
  });
});
