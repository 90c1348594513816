/**
 * Per-class loss weights for finetuning on imbalanced data. "balanced" follows
 * scikit-learn's `compute_class_weight('balanced')`: w_c = n / (k · n_c), from
 * the label counts of the finetuning TRAINING split (n examples, k classes,
 * n_c of class c), so a class's examples weigh in inversely to its frequency
 * and the weights average 1 over the training examples. The coordinator and
 * every worker compute them from the data they already load, with the same
 * float64 arithmetic rounded once to float32, so they agree to the bit.
 * Pure: knows nothing of files, processes or tensors.
 */
import { ConfigError } from '../errors.js';
import { sourceOf, type BatchSource, type ClassifyArrays, type RunDatasets } from './batches.js';

export type ClassWeighting = 'none' | 'balanced';

/** Rows read per batch when counting labels, so a large file is never copied whole. */
const COUNT_CHUNK = 1024;

/** How many examples of `source` (a classification set) have each label 0..numLabels-1. */
export function labelCounts(source: BatchSource, numLabels: number): number[] {
  const counts = new Array<number>(numLabels).fill(0);
  for (let lo = 0; lo < source.size; lo += COUNT_CHUNK) {
    const rows = Array.from({ length: Math.min(COUNT_CHUNK, source.size - lo) }, (_, k) => lo + k);
    const b = source.batch(rows);
    if (b.kind !== 'classify') throw new TypeError(`label counts need a classification set, got a ${b.kind} batch`);
    for (const y of (b as ClassifyArrays).labels) {
      if (!(y >= 0 && y < numLabels)) throw new RangeError(`label id ${y} outside [0, ${numLabels})`);
      counts[y]! += 1;
    }
  }
  return counts;
}

/**
 * w_c = n / (k · n_c). A class with no training example is an error rather than
 * a weight of 0 or ∞: its weight would never multiply a training example, but
 * it would still count in k and so change every other class's weight, and a
 * class the model never sees in training is a data problem to report, as
 * scikit-learn does ("classes should have valid labels that are in y").
 */
export function balancedClassWeights(counts: readonly number[], labelNames: readonly string[] = []): Float32Array {
  const k = counts.length;
  const n = counts.reduce((a, b) => a + b, 0);
  const empty = counts.flatMap((c, i) => (c === 0 ? [labelNames[i] ?? String(i)] : []));
  if (empty.length > 0) {
    throw new ConfigError([
      `finetune.classWeights "balanced": expected every label in the training split, got none of ${empty.map((l) => JSON.stringify(l)).join(', ')} (of ${n} training examples); use classWeights "none" or add examples`,
    ]);
  }
  return Float32Array.from(counts, (c) => n / (k * c));
}

/** The finetuning loss's class weights for a run, or null for the plain (unweighted) loss. */
export function finetuneClassWeights(mode: ClassWeighting, data: RunDatasets): Float32Array | null {
  if (mode === 'none') return null;
  return balancedClassWeights(labelCounts(sourceOf(data, 'classify-train'), data.labels.length), data.labels);
}

/** What metrics.json says of the weighting: the mode, the training split's label counts and, when balanced, each label's weight. */
export interface ClassWeightsReport {
  mode: ClassWeighting;
  trainCounts: Record<string, number>;
  weights: Record<string, number> | null;
}

export function classWeightsReport(mode: ClassWeighting, data: RunDatasets): ClassWeightsReport {
  const counts = labelCounts(sourceOf(data, 'classify-train'), data.labels.length);
  const weights = finetuneClassWeights(mode, data);
  const byLabel = (v: ArrayLike<number>): Record<string, number> => Object.fromEntries(data.labels.map((l, i) => [l, v[i]!]));
  return { mode, trainCounts: byLabel(counts), weights: weights === null ? null : byLabel(weights) };
}
