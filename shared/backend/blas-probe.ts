/**
 * The start probe of the OpenBLAS core in use: a few small sgemm calls through
 * the addon (plain, transposed, batched; sizes that reach both the main
 * micro-kernel and its edge cases) compared with a float64 reference computed
 * here in JavaScript. A core whose kernels compute wrongly on this CPU fails it
 * by orders of magnitude; float32 rounding stays far inside the bound
 * |got - ref| <= 2·k·2⁻²⁴·Σ|a·b| + 1e-30 (the classic dot-product error bound, doubled).
 * A core whose instructions the CPU lacks would not get here (SIGILL):
 * openblas-core.ts only ever names cores whose flags the CPU shows.
 *
 * Knows the addon's heap matmul call; knows nothing of tfjs or the environment.
 */
import type { HeapMatMulSpec } from './native-api.js';

export interface ProbeResult {
  /** Largest |got - ref| / bound over every output element; <= 1 passes. */
  worstRatio: number;
  /** Which case and element gave it, for the error message. */
  worst: string;
  cases: number;
}

interface ProbeCase {
  batch: number;
  m: number;
  n: number;
  k: number;
  transposeA: boolean;
  transposeB: boolean;
}

const CASES: readonly ProbeCase[] = [
  { batch: 1, m: 64, n: 96, k: 128, transposeA: false, transposeB: false },
  { batch: 1, m: 37, n: 29, k: 53, transposeA: true, transposeB: false },
  { batch: 1, m: 31, n: 45, k: 70, transposeA: false, transposeB: true },
  { batch: 3, m: 17, n: 33, k: 24, transposeA: false, transposeB: false },
];

/** Deterministic values in [-1, 1] that are not all the same magnitude. */
function fill(out: Float32Array, seed: number): void {
  for (let i = 0; i < out.length; i++) out[i] = Math.sin(seed + i * 0.7373) * (0.25 + ((i * 7) % 11) / 14);
}

/** Runs every case through `matmul` and compares it with the float64 reference. */
export function probeMatmul(matmul: (heap: ArrayBuffer, spec: HeapMatMulSpec) => number): ProbeResult {
  let worstRatio = 0;
  let worst = 'none';
  CASES.forEach((c, index) => {
    const aSize = c.batch * c.m * c.k;
    const bSize = c.batch * c.k * c.n;
    const outSize = c.batch * c.m * c.n;
    const heap = new ArrayBuffer(4 * (aSize + bSize + outSize));
    const a = new Float32Array(heap, 0, aSize); // [batch, m, k] or [batch, k, m] when transposeA
    const b = new Float32Array(heap, 4 * aSize, bSize); // [batch, k, n] or [batch, n, k] when transposeB
    const out = new Float32Array(heap, 4 * (aSize + bSize), outSize); // [batch, m, n]
    fill(a, index + 1);
    fill(b, index + 11);
    out.fill(Number.NaN); // every element must be written
    const batchShape = c.batch === 1 ? [] : [c.batch];
    matmul(heap, {
      aOffset: 0, bOffset: 4 * aSize, outOffset: 4 * (aSize + bSize), aSize, bSize, outSize,
      aBatch: batchShape, bBatch: batchShape, m: c.m, n: c.n, k: c.k, transposeA: c.transposeA, transposeB: c.transposeB,
    });
    for (let p = 0; p < c.batch; p++) {
      for (let i = 0; i < c.m; i++) {
        for (let j = 0; j < c.n; j++) {
          let ref = 0;
          let magnitude = 0;
          for (let q = 0; q < c.k; q++) {
            const x = a[p * c.m * c.k + (c.transposeA ? q * c.m + i : i * c.k + q)]!;
            const y = b[p * c.k * c.n + (c.transposeB ? j * c.k + q : q * c.n + j)]!;
            ref += x * y;
            magnitude += Math.abs(x * y);
          }
          const got = out[p * c.m * c.n + i * c.n + j]!;
          const ratio = Math.abs(got - ref) / (2 * c.k * 2 ** -24 * magnitude + 1e-30);
          const r = Number.isNaN(ratio) ? Infinity : ratio; // NaN: an element never written
          if (r > worstRatio) {
            worstRatio = r;
            worst = `case ${index} [${c.batch}x${c.m}x${c.k}]@[${c.k}x${c.n}]${c.transposeA ? ' tA' : ''}${c.transposeB ? ' tB' : ''} element (${p},${i},${j}): got ${got}, expected ${ref}`;
          }
        }
      }
    }
  });
  return { worstRatio, worst, cases: CASES.length };
}
