/**
 * Evaluation metrics from counts: classification accuracy, per-class and macro
 * precision, recall and F1, and the confusion matrix (rows = true class,
 * columns = predicted), the majority-class baseline and whether predictions
 * collapsed to one class; pretraining MLM accuracy, perplexity and NSP accuracy.
 * Pure arithmetic on integers and sums, so every process computes the same.
 */
import type { MicroStats } from './gradients.js';

export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface ClassificationMetrics {
  examples: number;
  accuracy: number;
  macro: { precision: number; recall: number; f1: number };
  perClass: ClassMetrics[];
  confusionMatrix: number[][];
  loss: number;
}

const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);

export function confusionMatrix(labels: ArrayLike<number>, predictions: ArrayLike<number>, numClasses: number): number[][] {
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < labels.length; i++) m[labels[i]!]![predictions[i]!]! += 1;
  return m;
}

export function classificationMetrics(matrix: number[][], labelNames: readonly string[], lossSum: number): ClassificationMetrics {
  const k = matrix.length;
  const total = matrix.flat().reduce((a, b) => a + b, 0);
  let correct = 0;
  const perClass: ClassMetrics[] = [];
  for (let c = 0; c < k; c++) {
    const tp = matrix[c]![c]!;
    correct += tp;
    const support = matrix[c]!.reduce((a, b) => a + b, 0);
    const predicted = matrix.reduce((a, row) => a + row[c]!, 0);
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    perClass.push({ label: labelNames[c] ?? String(c), precision, recall, f1: ratio(2 * precision * recall, precision + recall), support });
  }
  const mean = (f: (m: ClassMetrics) => number): number => perClass.reduce((a, m) => a + f(m), 0) / k;
  return {
    examples: total,
    accuracy: ratio(correct, total),
    macro: { precision: mean((m) => m.precision), recall: mean((m) => m.recall), f1: mean((m) => m.f1) },
    perClass,
    confusionMatrix: matrix,
    loss: ratio(lossSum, total),
  };
}

/** Always predicting one label: the classic "predict the training split's most frequent class" baseline. */
export interface MajorityBaseline {
  label: string;
  /** Its accuracy on the evaluated split: the share of the split whose true label it is. */
  accuracy: number;
}

/** A split's classification metrics with the checks that matter on imbalanced data. */
export type SplitMetrics = Pick<ClassificationMetrics, 'examples' | 'accuracy'> & {
  majorityBaseline: MajorityBaseline;
  /** The one label every prediction went to, when the split has more than one true label; else null. */
  collapsedTo: string | null;
} & Omit<ClassificationMetrics, 'examples' | 'accuracy'>;

/** The most frequent label of `trainCounts` (ties: the lowest label id) and its accuracy on the split of `matrix`. */
export function majorityBaseline(matrix: number[][], labelNames: readonly string[], trainCounts: readonly number[]): MajorityBaseline {
  if (trainCounts.length !== matrix.length) throw new RangeError(`training label counts for ${trainCounts.length} classes, expected ${matrix.length}`);
  let best = 0;
  for (let c = 1; c < trainCounts.length; c++) if (trainCounts[c]! > trainCounts[best]!) best = c;
  const total = matrix.flat().reduce((a, b) => a + b, 0);
  const support = matrix[best]!.reduce((a, b) => a + b, 0);
  return { label: labelNames[best] ?? String(best), accuracy: ratio(support, total) };
}

/**
 * The class every prediction went to, when there is one and the split has
 * more than one true class (a model that learned only the prior); else null.
 * `share` is the share of the split that truly has that class, which is then
 * the accuracy.
 */
export function collapsedPrediction(matrix: number[][]): { label: number; share: number } | null {
  const k = matrix.length;
  const predicted = Array.from({ length: k }, (_, c) => matrix.reduce((a, row) => a + row[c]!, 0));
  const support = matrix.map((row) => row.reduce((a, b) => a + b, 0));
  const usedColumns = predicted.filter((n) => n > 0).length;
  const trueClasses = support.filter((n) => n > 0).length;
  if (usedColumns !== 1 || trueClasses < 2) return null;
  const label = predicted.findIndex((n) => n > 0);
  const total = support.reduce((a, b) => a + b, 0);
  return { label, share: ratio(support[label]!, total) };
}

/** `m` with the majority baseline (beside the accuracy) and the collapse check. */
export function splitMetrics(m: ClassificationMetrics, labelNames: readonly string[], trainCounts: readonly number[]): SplitMetrics {
  const { examples, accuracy, ...rest } = m;
  const collapsed = collapsedPrediction(m.confusionMatrix);
  return {
    examples,
    accuracy,
    majorityBaseline: majorityBaseline(m.confusionMatrix, labelNames, trainCounts),
    collapsedTo: collapsed === null ? null : (labelNames[collapsed.label] ?? String(collapsed.label)),
    ...rest,
  };
}

export interface PretrainMetrics {
  examples: number;
  maskedTokens: number;
  mlmAccuracy: number;
  mlmLoss: number;
  perplexity: number;
  nspAccuracy: number;
  nspLoss: number;
}

/** Sums micro-batch stats in index order (float64), so the result does not depend on who computed them. */
export function sumStats(parts: readonly MicroStats[]): MicroStats {
  const out: MicroStats = { sequences: 0, lossSum: 0, nspLossSum: 0, correct: 0, nspCorrect: 0, maskedTokens: 0 };
  for (const p of parts) {
    out.sequences += p.sequences;
    out.lossSum += p.lossSum;
    out.nspLossSum += p.nspLossSum;
    out.correct += p.correct;
    out.nspCorrect += p.nspCorrect;
    out.maskedTokens += p.maskedTokens;
  }
  return out;
}

export function pretrainMetrics(s: MicroStats): PretrainMetrics {
  const mlmLoss = ratio(s.lossSum, s.maskedTokens);
  return {
    examples: s.sequences,
    maskedTokens: s.maskedTokens,
    mlmAccuracy: ratio(s.correct, s.maskedTokens),
    mlmLoss,
    perplexity: Math.exp(mlmLoss),
    nspAccuracy: ratio(s.nspCorrect, s.sequences),
    nspLoss: ratio(s.nspLossSum, s.sequences),
  };
}
