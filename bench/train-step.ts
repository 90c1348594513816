/**
 * One backend, one preset: times training steps (MLM + NSP, AdamW, global-norm
 * clipping) through the same code the trainer runs, and prints one JSON line.
 * Run by bench/compute.ts in a fresh process per backend.
 *   tsx bench/train-step.ts --backend wasm-blas --preset tiny [--batch 32 --seq 128 --masked 20 --steps 5 --warmup 2]
 */
import { parseArgs } from 'node:util';
import { initBackend, type BackendName } from '../shared/backend/select.js';
import { presetConfig, type PresetName } from '../shared/model/config.js';
import { paramSpecs } from '../shared/model/params.js';
import type { PretrainArrays } from '../shared/training/batches.js';
import { microBatchGradient } from '../shared/training/gradients.js';
import { initParams } from '../shared/training/init.js';
import { Replica } from '../shared/training/replica.js';
import * as tf from '@tensorflow/tfjs-core';
import { randomPretrainBatch } from '../shared/training/synthetic-batches.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm-blas' },
    preset: { type: 'string', default: 'tiny' },
    batch: { type: 'string', default: '32' },
    seq: { type: 'string', default: '128' },
    masked: { type: 'string', default: '20' },
    steps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string', default: '1' },
  },
});

const batchSize = Number(values.batch);
const seq = Number(values.seq);
const info = await initBackend({ name: values.backend as BackendName, blasThreads: Number(values.threads) });
const bert = presetConfig(values.preset as PresetName);
const specs = paramSpecs(bert, { heads: 'pretraining' });
const replica = Replica.fromValues(specs, initParams(bert, specs, 1));
const batches: PretrainArrays[] = [0, 1, 2, 3].map((i) => {
  const b = randomPretrainBatch(bert.vocab_size, batchSize, seq, Number(values.masked), 100 + i);
  b.inputMask.fill(1); // full-length sequences, as the PyTorch reference uses
  b.maskedLmWeights.fill(1);
  for (let r = 0; r < batchSize; r++) for (let k = 0; k < b.maxPredictions; k++) b.maskedLmPositions[r * b.maxPredictions + k] = 1 + k * 5;
  return b;
});
const update = { adamW: { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0.01 }, clipNorm: 1, schedule: { peakLr: 1e-4, warmupSteps: 0, totalSteps: 1000 } };
const times: number[] = [];
const total = Number(values.warmup) + Number(values.steps);
for (let i = 0; i < total; i++) {
  const t0 = performance.now();
  const b = batches[i % 4]!;
  const { grad } = microBatchGradient(bert, replica.layout, replica.paramTensors(), b, { sequences: batchSize, maskedTokens: batchSize * b.maxPredictions }, i);
  replica.applyGradient(grad, i, update);
  if (i >= Number(values.warmup)) times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const med = times[Math.floor(times.length / 2)]!;
console.log(JSON.stringify({
  bench: 'train', impl: 'bertfleet', backend: info.name, config: values.preset, threads: info.blasThreads, batch: batchSize, seq,
  params: replica.params.length, step_ms_median: Math.round(med * 10) / 10, seq_per_s: Math.round((batchSize / med) * 1000 * 100) / 100,
  tensors_live: tf.memory().numTensors, rss_mb: Math.round(process.memoryUsage().rss / 1e6),
}));
