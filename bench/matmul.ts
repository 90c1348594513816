/**
 * Micro-benchmark: GFLOP/s of BERT-base matmuls (a dense layer forward and its
 * two backward products, and batched attention products) on stock 'wasm' vs
 * 'wasm-blas' (OpenBLAS), checking that both give the same numbers.
 * Run: npx tsx bench/matmul.ts [--threads=N]   (OpenBLAS threads, default 1)
 * Knows only the backend API; prints a table to stdout.
 */
import * as tf from '@tensorflow/tfjs-core';

import { WASM_BLAS, registerWasmBlasBackend } from '../shared/backend/wasm-blas.js';

interface Case {
  name: string;
  a: number[];
  b: number[];
  transposeA: boolean;
  transposeB: boolean;
}

// BERT-base: 512 tokens x hidden 768 x intermediate 3072; attention: batch 32 x 2 heads... as [64, seq 128, head 64].
const CASES: Case[] = [
  { name: 'dense fwd   [512,768]@[768,3072]', a: [512, 768], b: [768, 3072], transposeA: false, transposeB: false },
  { name: 'dW (tA)     [512,768]^T@[512,3072]', a: [512, 768], b: [512, 3072], transposeA: true, transposeB: false },
  { name: 'dX (tB)     [512,3072]@[768,3072]^T', a: [512, 3072], b: [768, 3072], transposeA: false, transposeB: true },
  { name: 'scores (tB) [64,128,64]@[64,128,64]^T', a: [64, 128, 64], b: [64, 128, 64], transposeA: false, transposeB: true },
  { name: 'context     [64,128,128]@[64,128,64]', a: [64, 128, 128], b: [64, 128, 64], transposeA: false, transposeB: false },
  { name: 'dV (tA)     [64,128,128]^T@[64,128,64]', a: [64, 128, 128], b: [64, 128, 64], transposeA: true, transposeB: false },
];

function flops(c: Case): number {
  const r = c.a.length;
  const m = c.transposeA ? c.a[r - 1]! : c.a[r - 2]!;
  const k = c.transposeA ? c.a[r - 2]! : c.a[r - 1]!;
  const n = c.transposeB ? c.b[r - 2]! : c.b[r - 1]!;
  const batch = c.a.slice(0, -2).reduce((p, d) => p * d, 1);
  return 2 * batch * m * n * k;
}

/** Seconds per matmul: median of runs, at least 3 and at least ~2 s of work after one warm-up. */
function time(c: Case, a: tf.Tensor, b: tf.Tensor): { seconds: number; sample: Float32Array } {
  const run = () => {
    const out = tf.matMul(a, b, c.transposeA, c.transposeB);
    const sample = (out.dataSync() as Float32Array).slice(0, 4096);
    out.dispose();
    return sample;
  };
  const sample = run(); // warm-up
  const times: number[] = [];
  let total = 0;
  while (times.length < 3 || (total < 2 && times.length < 50)) {
    const t0 = process.hrtime.bigint();
    run();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    times.push(s);
    total += s;
  }
  times.sort((x, y) => x - y);
  return { seconds: times[Math.floor(times.length / 2)]!, sample };
}

function maxRelDiff(x: Float32Array, y: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / Math.max(1, Math.abs(y[i]!)));
  return worst;
}

async function main(): Promise<void> {
  const arg = process.argv.find((s) => s.startsWith('--threads='));
  const threads = arg ? Number(arg.slice('--threads='.length)) : 1;
  const native = registerWasmBlasBackend();
  native.setNumThreads(threads);
  console.log(`OpenBLAS: ${native.getConfig()} (core ${native.getCorename()}), threads ${native.getNumThreads()}; wasm: single-threaded`);
  console.log(`${'case'.padEnd(42)} ${'GFLOP'.padStart(6)} ${'wasm GF/s'.padStart(10)} ${'wasm-blas GF/s'.padStart(15)} ${'speedup'.padStart(8)}  max rel diff`);
  for (const c of CASES) {
    const aVals = Float32Array.from({ length: tf.util.sizeFromShape(c.a) }, (_, i) => Math.sin(i * 0.37));
    const bVals = Float32Array.from({ length: tf.util.sizeFromShape(c.b) }, (_, i) => Math.cos(i * 0.11));
    const result: Record<string, { seconds: number; sample: Float32Array }> = {};
    for (const backend of ['wasm', WASM_BLAS]) {
      await tf.setBackend(backend);
      const a = tf.tensor(aVals, c.a);
      const b = tf.tensor(bVals, c.b);
      result[backend] = time(c, a, b);
      tf.dispose([a, b]);
    }
    const gf = flops(c) / 1e9;
    const w = gf / result.wasm!.seconds;
    const wb = gf / result[WASM_BLAS]!.seconds;
    const diff = maxRelDiff(result[WASM_BLAS]!.sample, result.wasm!.sample);
    console.log(
      `${c.name.padEnd(42)} ${gf.toFixed(2).padStart(6)} ${w.toFixed(2).padStart(10)} ${wb.toFixed(2).padStart(15)} ${(wb / w).toFixed(1).padStart(7)}x  ${diff.toExponential(1)}`,
    );
  }
}

await main();
