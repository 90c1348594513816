/**
 * Where a training step's time goes: runs a few steps of the bench's training
 * step (bench/train-step.ts's shapes) under tf.profile and prints each kernel's
 * total time, call count and share of the step, grouped by kernel and input
 * shapes, plus the time outside kernels (JS glue, the optimizer). Ops that only
 * wrap kernels are left out, so no time is counted twice.
 *   tsx bench/profile-step.ts [--preset mini] [--backend wasm-blas] [--steps 3] [--top 30]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../shared/backend/select.js';
import { presetConfig, type PresetName } from '../shared/model/config.js';
import { paramSpecs } from '../shared/model/params.js';
import { microBatchGradient } from '../shared/training/gradients.js';
import { initParams } from '../shared/training/init.js';
import { Replica } from '../shared/training/replica.js';
import { BENCH_UPDATE, benchBatch } from './step-setup.js';

const { values } = parseArgs({ options: {
  preset: { type: 'string', default: 'mini' }, backend: { type: 'string', default: 'wasm-blas' },
  steps: { type: 'string', default: '3' }, top: { type: 'string', default: '30' },
} });
tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false); // else the profiler reads every output back, inflating large kernels
await initBackend({ name: values.backend as BackendName, blasThreads: 1 });
const bert = presetConfig(values.preset as PresetName);
const specs = paramSpecs(bert, { heads: 'pretraining' });
const replica = Replica.fromValues(specs, initParams(bert, specs, 1));
const b = benchBatch(bert.vocab_size, 32, 128, 20, 100);
const counts = { sequences: 32, maskedTokens: 32 * b.maxPredictions };
const step = (i: number): void => void replica.applyGradient(microBatchGradient(bert, replica.layout, replica.paramTensors(), b, counts, i).grad, i, BENCH_UPDATE);
step(0);
const steps = Number(values.steps);
const byKey = new Map<string, { ms: number; calls: number }>();
const byKernel = new Map<string, number>();
let wall = 0;
for (let i = 1; i <= steps; i++) {
  const t0 = performance.now();
  const info = await tf.profile(() => { step(i); });
  wall += performance.now() - t0;
  for (const k of info.kernels) {
    // tf.profile also lists the ops that wrap kernels (fusedMatMul__op, a custom gradient's
    // forward): their time includes their kernels', so only registered kernels are counted.
    if (tf.getKernel(k.name, tf.getBackend()) == null) continue;
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const key = `${k.name} ${k.inputShapes.map((s) => (s === null ? "-" : `[${s.join(",")}]`)).join(' ')}`;
    const e = byKey.get(key) ?? { ms: 0, calls: 0 };
    e.ms += ms; e.calls += 1; byKey.set(key, e);
    byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + ms);
  }
}
const per = (ms: number): string => (ms / steps).toFixed(1).padStart(8);
const kernelTotal = [...byKernel.values()].reduce((a, x) => a + x, 0);
console.log(`step ${per(wall)} ms (profiled; profiling adds overhead), kernels ${per(kernelTotal)} ms, outside kernels ${per(wall - kernelTotal)} ms`);
console.log('\nby kernel:');
for (const [k, ms] of [...byKernel].sort((a, c) => c[1] - a[1])) console.log(`${per(ms)} ms ${(100 * ms / wall).toFixed(1).padStart(5)}%  ${k}`);
console.log('\nby kernel and shapes:');
for (const [k, e] of [...byKey].sort((a, c) => c[1].ms - a[1].ms).slice(0, Number(values.top))) console.log(`${per(e.ms)} ms ${String(e.calls / steps).padStart(4)}x  ${k}`);
