/**
 * The human-readable end of a run: the figures of metrics.json, on stdout,
 * with the majority-class baseline beside the accuracy and a warning (with
 * what to try) when a split's predictions collapsed to one class. Tolerates a
 * metrics.json from before those fields (a finished run resumed).
 */
import { COLLAPSE_ADVICE } from '../coordinator/evaluate.js';
import type { ClassWeightsReport } from '../shared/training/class-weights.js';
import type { PretrainMetrics, SplitMetrics } from '../shared/training/metrics.js';

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

type Finetuning = { classWeights?: ClassWeightsReport; validation?: Partial<SplitMetrics>; test: SplitMetrics };

function testLines(ft: Finetuning): string[] {
  const test = ft.test;
  const base = test.majorityBaseline ? ` (majority baseline ${pct(test.majorityBaseline.accuracy)}: always "${test.majorityBaseline.label}")` : '';
  const lines = [`finetuning (test split, ${test.examples} examples): accuracy ${pct(test.accuracy)}${base}, macro F1 ${test.macro.f1.toFixed(3)}`];
  const w = ft.classWeights?.weights;
  if (w) lines.push(`  class weights (balanced): ${Object.entries(w).map(([l, x]) => `${l} ${x.toFixed(3)}`).join(', ')}`);
  for (const c of test.perClass) {
    lines.push(`  ${c.label.padEnd(12)} precision ${c.precision.toFixed(3)}  recall ${c.recall.toFixed(3)}  F1 ${c.f1.toFixed(3)}  (n=${c.support})`);
  }
  lines.push(`  confusion matrix (rows true, columns predicted): ${JSON.stringify(test.confusionMatrix)}`);
  return lines;
}

function collapseLines(ft: Finetuning): string[] {
  const out: string[] = [];
  for (const [split, m] of [['validation', ft.validation], ['test', ft.test]] as const) {
    if (!m?.collapsedTo) continue;
    out.push(`warning: every ${split} prediction is "${m.collapsedTo}" although the split has several classes (the model learned only the class prior); ${COLLAPSE_ADVICE}`);
  }
  return out;
}

export function formatSummary(metrics: Record<string, unknown>, outputDir: string): string {
  const lines: string[] = [];
  const pre = metrics['pretraining'] as Partial<PretrainMetrics> & { skipped?: string };
  if (pre.skipped) lines.push(`pretraining: skipped (${pre.skipped})`);
  else {
    lines.push(
      `pretraining (held-out, ${pre.examples} sequences): MLM accuracy ${pct(pre.mlmAccuracy!)}, perplexity ${pre.perplexity!.toFixed(1)}, NSP accuracy ${pct(pre.nspAccuracy!)}`,
    );
  }
  const ft = metrics['finetuning'] as Finetuning;
  lines.push(...testLines(ft), ...collapseLines(ft));
  lines.push(`outputs in ${outputDir}: pretrained/ finetuned/ metrics.json run-summary.json report.html steps.jsonl state/`);
  return lines.join('\n');
}
