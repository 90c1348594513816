/**
 * The training step the compute benchmarks time (bench/train-step.ts) and
 * profile (bench/profile-step.ts): a pretraining batch of full-length
 * sequences with every masked position weighted, and the update settings.
 * The PyTorch reference (bench/torch_reference.py) uses the same shapes.
 */
import { randomPretrainBatch } from '../shared/training/synthetic-batches.js';
import type { PretrainArrays } from '../shared/training/batches.js';
import type { UpdateSettings } from '../shared/training/replica.js';

export const BENCH_UPDATE: UpdateSettings = {
  adamW: { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, weightDecay: 0.01 },
  clipNorm: 1,
  schedule: { peakLr: 1e-4, warmupSteps: 0, totalSteps: 1000 },
};

/** `size` sequences of `seq` real tokens, `masked` masked positions each (at 1, 6, 11, ...), from `seed`. */
export function benchBatch(vocab: number, size: number, seq: number, masked: number, seed: number): PretrainArrays {
  const b = randomPretrainBatch(vocab, size, seq, masked, seed);
  b.inputMask.fill(1); // full-length sequences, as the PyTorch reference uses
  b.maskedLmWeights.fill(1);
  for (let r = 0; r < size; r++) for (let k = 0; k < b.maxPredictions; k++) b.maskedLmPositions[r * b.maxPredictions + k] = 1 + k * 5;
  return b;
}
