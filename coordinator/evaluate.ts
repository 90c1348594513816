/**
 * Evaluation: the held-out pretraining set (MLM accuracy, perplexity, NSP
 * accuracy) and a classification split (accuracy, per-class and macro
 * precision/recall/F1, confusion matrix). Chunks are fixed by index, so the
 * figures do not depend on who computed them.
 */
import { sourceOf, type ClassifyArrays, type DatasetName, type RunDatasets } from '../shared/training/batches.js';
import {
  classificationMetrics,
  confusionMatrix,
  pretrainMetrics,
  sumStats,
  type ClassificationMetrics,
  type PretrainMetrics,
} from '../shared/training/metrics.js';
import type { StepExecutor, TrainPhase } from './executor.js';

const EVAL_CHUNK = 32;

function chunksOf(size: number, limit = Infinity): number[][] {
  const n = Math.min(size, limit);
  const out: number[][] = [];
  for (let i = 0; i < n; i += EVAL_CHUNK) out.push(Array.from({ length: Math.min(EVAL_CHUNK, n - i) }, (_, k) => i + k));
  return out;
}

export async function evaluatePretraining(executor: StepExecutor, data: RunDatasets, limit?: number): Promise<PretrainMetrics> {
  const dataset: DatasetName = 'pretrain-heldout';
  const out = await executor.evaluate({ phase: 'pretrain', dataset, chunks: chunksOf(sourceOf(data, dataset).size, limit) });
  return pretrainMetrics(sumStats(out.stats));
}

export async function evaluateClassification(
  executor: StepExecutor,
  data: RunDatasets,
  dataset: DatasetName,
  phase: TrainPhase = 'finetune',
): Promise<ClassificationMetrics> {
  const source = sourceOf(data, dataset);
  const chunks = chunksOf(source.size);
  const out = await executor.evaluate({ phase, dataset, chunks });
  const labels: number[] = [];
  const predictions: number[] = [];
  chunks.forEach((chunk, i) => {
    const b = source.batch(chunk) as ClassifyArrays;
    labels.push(...b.labels);
    predictions.push(...out.predictions[i]!);
  });
  const s = sumStats(out.stats);
  return classificationMetrics(confusionMatrix(labels, predictions, data.labels.length), data.labels, s.lossSum);
}
