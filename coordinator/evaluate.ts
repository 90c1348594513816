/**
 * Evaluation: the held-out pretraining set (MLM accuracy, perplexity, NSP
 * accuracy) and a classification split (accuracy beside the majority-class
 * baseline, per-class and macro precision/recall/F1, confusion matrix, and a
 * warning when every prediction is one class). Chunks are fixed by index, so
 * the figures do not depend on who computed them.
 */
import { ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { sourceOf, type ClassifyArrays, type DatasetName, type RunDatasets } from '../shared/training/batches.js';
import { labelCounts } from '../shared/training/class-weights.js';
import {
  classificationMetrics,
  collapsedPrediction,
  confusionMatrix,
  pretrainMetrics,
  splitMetrics,
  sumStats,
  type PretrainMetrics,
  type SplitMetrics,
} from '../shared/training/metrics.js';
import type { StepExecutor, TrainPhase } from './executor.js';

const EVAL_CHUNK = 32;

function chunksOf(size: number, limit = Infinity): number[][] {
  const n = Math.min(size, limit);
  const out: number[][] = [];
  for (let i = 0; i < n; i += EVAL_CHUNK) out.push(Array.from({ length: Math.min(EVAL_CHUNK, n - i) }, (_, k) => i + k));
  return out;
}

/** Told the chunks done of the total as an evaluation goes (a progress bar). */
export type ChunkProgress = (done: number, total: number) => void;

export async function evaluatePretraining(executor: StepExecutor, data: RunDatasets, limit?: number, onChunks?: ChunkProgress): Promise<PretrainMetrics> {
  const dataset: DatasetName = 'pretrain-heldout';
  const chunks = chunksOf(sourceOf(data, dataset).size, limit);
  onChunks?.(0, chunks.length);
  const out = await executor.evaluate({ phase: 'pretrain', dataset, chunks, ...(onChunks && { onChunksDone: (done: number) => onChunks(done, chunks.length) }) });
  return pretrainMetrics(sumStats(out.stats));
}

/** What to tell a user whose model predicts one class only. */
export const COLLAPSE_ADVICE =
  'set finetune.classWeights to "balanced" (--class-weights balanced), finetune for more steps, or lower finetune.peakLr';

/**
 * The metrics of a classification split. The majority baseline is the
 * training split's most frequent label, scored on this split. With `log`, a
 * split whose predictions are all one class (while it has several) is warned about.
 */
export async function evaluateClassification(
  executor: StepExecutor,
  data: RunDatasets,
  dataset: DatasetName,
  opts: { phase?: TrainPhase; log?: Logger; onChunks?: ChunkProgress } = {},
): Promise<SplitMetrics> {
  const phase = opts.phase ?? 'finetune';
  const source = sourceOf(data, dataset);
  const chunks = chunksOf(source.size);
  const onChunks = opts.onChunks;
  onChunks?.(0, chunks.length);
  const out = await executor.evaluate({ phase, dataset, chunks, ...(onChunks && { onChunksDone: (done: number) => onChunks(done, chunks.length) }) });
  const labels: number[] = [];
  const predictions: number[] = [];
  chunks.forEach((chunk, i) => {
    const b = source.batch(chunk) as ClassifyArrays;
    const got = out.predictions[i]!;
    if (got.length !== chunk.length) {
      throw new ProtocolError(`${dataset} evaluation chunk ${i}: expected ${chunk.length} predictions, got ${got.length}`);
    }
    labels.push(...b.labels);
    predictions.push(...got);
  });
  const s = sumStats(out.stats);
  const base = classificationMetrics(confusionMatrix(labels, predictions, data.labels.length), data.labels, s.lossSum);
  const trainCounts = labelCounts(sourceOf(data, 'classify-train'), data.labels.length);
  const collapsed = collapsedPrediction(base.confusionMatrix);
  if (collapsed !== null) {
    const fields = { split: dataset.replace(/^classify-/, ''), label: data.labels[collapsed.label], share: collapsed.share, advice: COLLAPSE_ADVICE };
    opts.log?.warn(fields, 'predictions collapsed to one class');
  }
  return splitMetrics(base, data.labels, trainCounts);
}
