/**
 * The addon's flat-vector kernels (native/src/vector.c) give the same bytes as
 * the JavaScript loops they replace (shared/training/vector-js.ts): float32
 * adds, AdamW, the sum of squares and the scaling of global-norm clipping, on
 * seeded random vectors of mixed magnitudes with NaN, ±Inf, denormals, -0 and
 * odd lengths and offsets, with both builds of the C loops (AVX2 and baseline
 * x86-64). A hand-worked AdamW case checks that both are right,
 * not only alike. Also: the shared entry points (addInto, adamWStep,
 * clipByGlobalNorm) follow the chosen kernels, and 'auto' without the addon
 * falls back to JavaScript and says why.
 *
 * The one input class left out of byte equality: a float add whose two
 * operands are both NaN with different bits. IEEE leaves the result's payload
 * open, C returns the first operand's and V8 returns either one depending on
 * the JIT tier, so JS does not even agree with itself there; the result is NaN
 * on both paths, and the test checks that much.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { loadNativeVector } from '../../shared/backend/native-addon.js';
import { selectVectorKernels, vectorKernelsInfo } from '../../shared/backend/vector-kernels.js';
import { BackendError } from '../../shared/errors.js';
import { clipByGlobalNorm } from '../../shared/training/clip.js';
import { adamWStep, newAdamWState } from '../../shared/training/optimizer.js';
import { addInto } from '../../shared/training/tree-sum.js';
import { jsVectorOps } from '../../shared/training/vector-js.js';
import { mulberry32 } from '../helpers/rng.js';


const NAN_BITS = [0x7fc00000, 0xffc00000, 0x7fc12345, 0x7f800001 /* signalling */];
const SPECIAL_BITS = [
  0x00000000, 0x80000000, // ±0
  0x7f800000, 0xff800000, // ±Inf
  0x00000001, 0x80000001, 0x007fffff, 0x807fffff, // smallest and largest denormals
  0x00800000, 0x7f7fffff, 0xff7fffff, // smallest normal, ±largest finite
];

/**
 * n floats: random bit patterns (every exponent), gradient-like values over
 * 16 decades, near-cancelling pairs of `partner`, and special values; NaNs
 * (of several payloads) only when `nan`.
 */
function mixed(n: number, rand: () => number, nan: boolean, partner?: Float32Array): Float32Array {
  const out = new Float32Array(n);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.3) {
      bits[i] = Math.floor(rand() * 2 ** 32);
      if (!nan && Number.isNaN(out[i])) bits[i]! &= 0xff7fffff; // exponent 254: finite
    } else if (r < 0.7) {
      out[i] = (rand() * 2 - 1) * 10 ** Math.floor(rand() * 16 - 8);
    } else if (r < 0.85 && partner !== undefined) {
      out[i] = -partner[i]! * (1 + (rand() - 0.5) * 2 ** -20); // cancellation
    } else if (nan && r < 0.9) {
      bits[i] = NAN_BITS[Math.floor(rand() * NAN_BITS.length)]!;
    } else {
      bits[i] = SPECIAL_BITS[Math.floor(rand() * SPECIAL_BITS.length)]!;
    }
  }
  return out;
}

function bytesOf(x: Float32Array): Buffer {
  return Buffer.from(x.buffer, x.byteOffset, x.byteLength);
}

/** Byte equality, naming the first differing element. */
function expectSameBits(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  if (bytesOf(got).equals(bytesOf(want))) return;
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  const i = g.findIndex((x, k) => x !== w[k]);
  expect.fail(`${what}: element ${i} is 0x${g[i]!.toString(16)} (${got[i]}), expected 0x${w[i]!.toString(16)} (${want[i]})`);
}

const native = loadNativeVector();
const LENGTHS = [0, 1, 2, 3, 5, 7, 15, 17, 31, 1001, 65_537];

afterAll(() => {
  selectVectorKernels('auto');
});

// Both builds of the elementwise loops (AVX2 where the CPU has it, and the
// baseline every x86-64 runs) must give the JS bytes.
describe.each(['auto', 'baseline'] as const)('native kernels, %s loops', (isa) => {
  beforeAll(() => {
    native.setVectorIsa(isa);
    if (isa === 'baseline') expect(native.getVectorIsa()).toBe('baseline');
  });
  afterAll(() => native.setVectorIsa('auto'));

  describe('addInto', () => {
    it('gives the JS loop bytes for every length, magnitude and special value', () => {
      const rand = mulberry32(1);
      for (const n of LENGTHS) {
        const a = mixed(n, rand, true);
        const b = mixed(n, rand, true, a);
        const js = a.slice();
        const nat = a.slice();
        jsVectorOps.addInto(js, b);
        native.addInto(nat, b);
        // Both-NaN pairs: NaN on both sides, bits then aligned (see the file comment).
        for (let i = 0; i < n; i++) {
          if (Number.isNaN(a[i]) && Number.isNaN(b[i])) {
            expect(Number.isNaN(nat[i]!) && Number.isNaN(js[i]!), `element ${i}: both NaN`).toBe(true);
            nat[i] = js[i]!;
          }
        }
        expectSameBits(nat, js, `a += b, length ${n}`);
      }
    });

    it('gives the JS loop bytes on unaligned views and when the operands alias', () => {
      const rand = mulberry32(2);
      const buf = mixed(4099, rand, false);
      for (const [aOff, bOff, n] of [[1, 3, 4000], [0, 0, 4099], [3, 1, 4000], [2, 6, 4001]] as const) {
        const js = buf.slice();
        const nat = buf.slice();
        jsVectorOps.addInto(js.subarray(aOff, aOff + n), js.subarray(bOff, bOff + n));
        native.addInto(nat.subarray(aOff, aOff + n), nat.subarray(bOff, bOff + n));
        expectSameBits(nat, js, `overlapping views a@${aOff} b@${bOff} n=${n}`);
      }
    });
  });

  describe('adamWStep', () => {
    it('matches a hand-worked 3-element update (exact binary fractions, so every line is exact)', () => {
      // beta1 0.5, beta2 0.75, epsilon 1, weightDecay 0.5, lr 0.25; decay [1, 0, 1].
      // 0: p 1,   g 2,  m 0, v 0:  m' = .5*0 + .5*2 = 1;  v' = .75*0 + .25*4 = 1;
      //    update = 1/(√1 + 1) = .5, + .5*1 (decay) = 1;    p' = 1 - .25*1 = .75
      // 1: p -2,  g -6, m 2, v 0:  m' = 1 - 3 = -2;        v' = 0 + .25*36 = 9;
      //    update = -2/(√9 + 1) = -.5 (no decay);          p' = -2 + .125 = -1.875
      // 2: p .5,  g 0,  m 4, v 12: m' = 2;                 v' = 9 + 0 = 9;
      //    update = 2/(3 + 1) = .5, + .5*.5 (decay) = .75; p' = .5 - .1875 = .3125
      for (const ops of [jsVectorOps, native]) {
        const p = Float32Array.of(1, -2, 0.5);
        const m = Float32Array.of(0, 2, 4);
        const v = Float32Array.of(0, 0, 12);
        ops.adamWStep(p, Float32Array.of(2, -6, 0), m, v, Uint8Array.of(1, 0, 1), 0.25, 0.5, 0.75, 1, 0.5);
        expect([...p]).toEqual([0.75, -1.875, 0.3125]);
        expect([...m]).toEqual([1, -2, 2]);
        expect([...v]).toEqual([1, 9, 9]);
      }
    });

    it('keeps the sign of zero as the JS loop does (-0 - lr * -0 is +0; a +0 "no decay" term would give -0)', () => {
      for (const ops of [jsVectorOps, native]) {
        const p = Float32Array.of(-0, -0, -0, -0, -0);
        const m = Float32Array.of(-0, -0, -0, -0, -0);
        const v = new Float32Array(5);
        ops.adamWStep(p, Float32Array.of(-0, -0, -0, -0, -0), m, v, Uint8Array.of(0, 1, 0, 1, 0), 1e-4, 0.9, 0.999, 1e-6, 0.01);
        expect([...p].map((x) => Object.is(x, 0))).toEqual([true, true, true, true, true]);
        expect([...m].map((x) => Object.is(x, -0))).toEqual([true, true, true, true, true]);
      }
    });

    it('gives the JS loop bytes over several steps, with decay 0 and 1, for every length', () => {
      const rand = mulberry32(3);
      for (const n of LENGTHS) {
        const p0 = mixed(n, rand, false);
        const decay = Uint8Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0));
        const js = { p: p0.slice(), m: mixed(n, rand, false), v: mixed(n, rand, false).map(Math.abs) };
        const nat = { p: js.p.slice(), m: js.m.slice(), v: js.v.slice() };
        for (let step = 0; step < 4; step++) {
          // NaN gradients only on the first step: later a NaN moment meeting a NaN
          // gradient would be a both-NaN add (see the file comment).
          const grad = step < 3 ? mixed(n, rand, step === 0) : Float32Array.from({ length: n }, () => (rand() - 0.5) * 1e-3);
          const lr = [1e-4, 2e-5, 0.5, 1][step]!;
          jsVectorOps.adamWStep(js.p, grad, js.m, js.v, decay, lr, 0.9, 0.999, 1e-6, 0.01);
          native.adamWStep(nat.p, grad, nat.m, nat.v, decay, lr, 0.9, 0.999, 1e-6, 0.01);
          expectSameBits(nat.p, js.p, `params, n ${n}, step ${step}`);
          expectSameBits(nat.m, js.m, `m, n ${n}, step ${step}`);
          expectSameBits(nat.v, js.v, `v, n ${n}, step ${step}`);
        }
      }
    });

    it('gives the JS loop bytes for gradient-like values over 1000 steps (sqrt and division at ordinary scales)', () => {
      const rand = mulberry32(4);
      const n = 257;
      const decay = Uint8Array.from({ length: n }, (_, i) => i % 2);
      const p = Float32Array.from({ length: n }, () => (rand() - 0.5) * 0.04);
      const js = { p, m: new Float32Array(n), v: new Float32Array(n) };
      const nat = { p: p.slice(), m: new Float32Array(n), v: new Float32Array(n) };
      for (let step = 0; step < 1000; step++) {
        const grad = Float32Array.from({ length: n }, () => (rand() - 0.5) * 10 ** (rand() * 6 - 5));
        jsVectorOps.adamWStep(js.p, grad, js.m, js.v, decay, 1e-4, 0.9, 0.999, 1e-6, 0.01);
        native.adamWStep(nat.p, grad, nat.m, nat.v, decay, 1e-4, 0.9, 0.999, 1e-6, 0.01);
      }
      expectSameBits(nat.p, js.p, 'params after 1000 steps');
      expectSameBits(nat.m, js.m, 'm after 1000 steps');
      expectSameBits(nat.v, js.v, 'v after 1000 steps');
    });
  });

  describe('global-norm clipping', () => {
    it('the sum of squares is the same float64, accumulated in index order', () => {
      const rand = mulberry32(5);
      for (const n of LENGTHS) {
        const x = mixed(n, rand, false);
        expect(Object.is(native.sumOfSquares(x), jsVectorOps.sumOfSquares(x)), `n ${n}`).toBe(true);
        const g = Float32Array.from({ length: n }, () => (rand() - 0.5) * 10 ** (rand() * 8 - 6));
        expect(Object.is(native.sumOfSquares(g), jsVectorOps.sumOfSquares(g)), `gradient-like, n ${n}`).toBe(true);
      }
      // Order matters, and both keep it: in float64 ((2^54 + 1) + 1) + 1 is 2^54
      // (each 1 is half an ulp, ties to even), while 2^54 + (1 + 1 + 1) is 2^54 + 4.
      const x = Float32Array.of(2 ** 27, 1, 1, 1);
      expect(jsVectorOps.sumOfSquares(x)).toBe(2 ** 54);
      expect(native.sumOfSquares(x)).toBe(2 ** 54);
      expect(native.sumOfSquares(Float32Array.of(1, NaN, 2))).toBeNaN();
    });

    it('scaling gives the JS loop bytes, NaN and specials included', () => {
      const rand = mulberry32(6);
      for (const factor of [0.3, 1 / 3, 1e-30, 1e30, -0, 0.999999]) {
        for (const n of LENGTHS) {
          const x = mixed(n, rand, true);
          const js = x.slice();
          const nat = x.slice();
          jsVectorOps.scaleInPlace(js, factor);
          native.scaleInPlace(nat, factor);
          expectSameBits(nat, js, `x * ${factor}, n ${n}`);
        }
      }
    });
  });
});

describe('the shared entry points', () => {
  it('addInto, adamWStep and clipByGlobalNorm give the same bytes with native and JS kernels', () => {
    const rand = mulberry32(7);
    const n = 10_007;
    const inputs = { a: mixed(n, rand, false), b: mixed(n, rand, false), grad: mixed(n, rand, false).map((x) => x * 1e-30) };
    const run = (choice: 'js' | 'native') => {
      expect(selectVectorKernels(choice)).toMatchObject({ name: choice, requested: choice, decidedBy: 'explicit' });
      const a = inputs.a.slice();
      addInto(a, inputs.b);
      const grad = inputs.grad.slice();
      const norm = clipByGlobalNorm(grad, 1e-3);
      const params = inputs.a.slice();
      const state = newAdamWState(n);
      const decay = Uint8Array.from({ length: n }, (_, i) => i % 3 === 0 ? 0 : 1);
      adamWStep(params, grad, state, decay, 1e-4, { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0.01 });
      return { a, grad, norm, params, m: state.m, v: state.v };
    };
    const js = run('js');
    const nat = run('native');
    expect(js.norm).toBeGreaterThan(1e-3); // the clip really scaled
    expect(Object.is(nat.norm, js.norm)).toBe(true);
    for (const k of ['a', 'grad', 'params', 'm', 'v'] as const) expectSameBits(nat[k], js[k], k);
  });

  it('keep their length errors, and the addon names a wrong argument', () => {
    selectVectorKernels('native');
    expect(() => addInto(new Float32Array(3), new Float32Array(4))).toThrow(RangeError);
    expect(() => adamWStep(new Float32Array(3), new Float32Array(3), newAdamWState(2), new Uint8Array(3), 1, {
      beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0.01,
    })).toThrow(/AdamW vectors differ in length/);
    expect(() => native.addInto(new Float32Array(3), new Float32Array(4))).toThrow(/b: expected 3 elements .* got 4/);
    expect(() => native.addInto(new Float32Array(3), new Float64Array(3) as unknown as Float32Array)).toThrow(/b: expected a Float32Array, got a Float64Array/);
    const f = new Float32Array(2);
    expect(() => native.adamWStep(f, f, f, f, new Uint8Array(2), 'x' as unknown as number, 0.9, 0.999, 1e-6, 0.01)).toThrow(BackendError);
    expect(() => native.adamWStep(f, f, f, f, f as unknown as Uint8Array, 1, 0.9, 0.999, 1e-6, 0.01)).toThrow(/decay: expected a Uint8Array/);
  });

  it("'auto' takes the addon when it loads, and says so", () => {
    expect(selectVectorKernels('auto')).toMatchObject({ name: 'native', requested: 'auto', decidedBy: 'explicit' });
    expect(vectorKernelsInfo().name).toBe('native');
  });

  it("'auto' without the addon falls back to JavaScript with the reason; 'native' throws", async () => {
    vi.resetModules();
    // The fresh module graph has its own BackendError class: the stand-in throws that one.
    vi.doMock('../../shared/backend/native-addon.js', async () => {
      const errors = await import('../../shared/errors.js');
      return {
        nativeAddonPath: () => 'native/build/Release/wasm_blas.node',
        loadNativeVector: () => {
          throw new errors.BackendError('wasm-blas native addon not built: expected native/build/Release/wasm_blas.node, got no file');
        },
      };
    });
    try {
      const vk = await import('../../shared/backend/vector-kernels.js');
      expect(vk.vectorKernelsInfo()).toMatchObject({ name: 'js', requested: 'auto', decidedBy: 'first use' });
      expect(vk.vectorKernelsInfo().reason).toMatch(/native kernels unavailable: wasm-blas native addon not built/);
      expect(() => vk.selectVectorKernels('native')).toThrow(/vector kernels 'native': native kernels unavailable/);
    } finally {
      vi.doUnmock('../../shared/backend/native-addon.js');
      vi.resetModules();
    }
  });
});
