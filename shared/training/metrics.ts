/**
 * Evaluation metrics from counts: classification accuracy, per-class and macro
 * precision, recall and F1, and the confusion matrix (rows = true class,
 * columns = predicted); pretraining MLM accuracy, perplexity and NSP accuracy.
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
