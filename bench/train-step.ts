/**
 * One backend, one preset: times training steps (MLM + NSP, AdamW, global-norm
 * clipping) through the same code the trainer runs, and prints one JSON line.
 * Run by bench/compute.ts in a fresh process per backend.
 *   tsx bench/train-step.ts --backend wasm-blas --preset tiny [--batch 32 --seq 128 --masked 20 --steps 5 --warmup 2]
 *     [--micro 8] [--threads 2] [--rss-every 50]
 * --micro M splits each step's batch into batch/M micro-batches whose gradients
 * are summed in the trainer's tree order (as `bertfleet train` with
 * microBatchSize M). --rss-every K samples RSS every K steps and adds its
 * start, end, max and slope (least squares over the second half of the
 * steps, after allocators have settled; MB per 100 steps) to the line.
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
import { BENCH_UPDATE, benchBatch } from './step-setup.js';
import { treeSum } from '../shared/training/tree-sum.js';

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
    micro: { type: 'string' },
    'rss-every': { type: 'string', default: '0' },
  },
});

const batchSize = Number(values.batch);
const seq = Number(values.seq);
const micro = Number(values.micro ?? values.batch);
if (!Number.isInteger(micro) || micro < 1 || batchSize % micro !== 0) throw new RangeError(`--micro: expected a divisor of --batch ${batchSize}, got ${values.micro}`);
const microCount = batchSize / micro;
const rssEvery = Number(values['rss-every']);
const info = await initBackend({ name: values.backend as BackendName, blasThreads: Number(values.threads) });
const bert = presetConfig(values.preset as PresetName);
const specs = paramSpecs(bert, { heads: 'pretraining' });
const replica = Replica.fromValues(specs, initParams(bert, specs, 1));
const batches: PretrainArrays[] = Array.from({ length: Math.max(4, microCount) }, (_, i) => benchBatch(bert.vocab_size, micro, seq, Number(values.masked), 100 + i));
const counts = { sequences: batchSize, maskedTokens: batchSize * batches[0]!.maxPredictions };
const rss: { step: number; mb: number }[] = [];
const rssMb = (): number => Math.round(process.memoryUsage().rss / 1e6);
// One gradient buffer per micro-batch index, reused every step, as a worker's compute does (worker/compute.ts).
const leafBuffers = Array.from({ length: microCount }, () => new Float32Array(replica.layout.total));
const times: number[] = [];
const total = Number(values.warmup) + Number(values.steps);
for (let i = 0; i < total; i++) {
  const t0 = performance.now();
  const leaf = (m: number): Float32Array => {
    const b = batches[(i * microCount + m) % batches.length]!;
    return microBatchGradient(bert, replica.layout, replica.paramTensors(), b, counts, i * microCount + m, { into: leafBuffers[m] }).grad;
  };
  replica.applyGradient(treeSum({ lo: 0, hi: microCount }, leaf), i, BENCH_UPDATE);
  if (i >= Number(values.warmup)) times.push(performance.now() - t0);
  if (rssEvery > 0 && (i % rssEvery === 0 || i === total - 1)) rss.push({ step: i, mb: rssMb() });
}
/** Least-squares slope of RSS over steps, MB per 100 steps. */
function slopePer100(points: { step: number; mb: number }[]): number {
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.step, 0) / n;
  const my = points.reduce((a, p) => a + p.mb, 0) / n;
  const sxy = points.reduce((a, p) => a + (p.step - mx) * (p.mb - my), 0);
  const sxx = points.reduce((a, p) => a + (p.step - mx) ** 2, 0);
  return sxx === 0 ? 0 : Math.round((sxy / sxx) * 100 * 100) / 100;
}
const wasmHeap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.byteLength;
times.sort((a, b) => a - b);
const med = times[Math.floor(times.length / 2)]!;
console.log(JSON.stringify({
  bench: 'train', impl: 'bertfleet', backend: info.name, openblas_core: info.openblasCore?.coretype ?? null, config: values.preset, threads: info.blasThreads, batch: batchSize, micro, seq,
  params: replica.params.length, step_ms_median: Math.round(med * 10) / 10, seq_per_s: Math.round((batchSize / med) * 1000 * 100) / 100,
  tensors_live: tf.memory().numTensors, rss_mb: rssMb(), rss_max_mb: Math.round(process.resourceUsage().maxRSS / 1e3),
  // The wasm heap only grows, so its size is the step's peak (its limit is 4 GiB).
  ...(wasmHeap !== undefined ? { wasm_heap_mb: Math.round(wasmHeap / 1e6) } : {}),
  ...(rss.length > 0 ? {
    rss_steps: total, rss_every: rssEvery, rss_start_mb: rss[0]!.mb, rss_end_mb: rss[rss.length - 1]!.mb,
    rss_series_max_mb: Math.max(...rss.map((p) => p.mb)), rss_series_mb: rss.map((p) => p.mb), rss_slope_mb_per_100_steps: slopePer100(rss.filter((p) => p.step >= total / 2)),
  } : {}),
}));
