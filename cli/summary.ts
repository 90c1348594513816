/**
 * The human-readable end of a run: the figures of metrics.json, on stdout.
 */
import type { ClassificationMetrics, PretrainMetrics } from '../shared/training/metrics.js';

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

export function formatSummary(metrics: Record<string, unknown>, outputDir: string): string {
  const lines: string[] = [];
  const pre = metrics['pretraining'] as Partial<PretrainMetrics> & { skipped?: string };
  if (pre.skipped) lines.push(`pretraining: skipped (${pre.skipped})`);
  else {
    lines.push(
      `pretraining (held-out, ${pre.examples} sequences): MLM accuracy ${pct(pre.mlmAccuracy!)}, perplexity ${pre.perplexity!.toFixed(1)}, NSP accuracy ${pct(pre.nspAccuracy!)}`,
    );
  }
  const test = (metrics['finetuning'] as { test: ClassificationMetrics }).test;
  lines.push(`finetuning (test split, ${test.examples} examples): accuracy ${pct(test.accuracy)}, macro F1 ${test.macro.f1.toFixed(3)}`);
  for (const c of test.perClass) {
    lines.push(`  ${c.label.padEnd(12)} precision ${c.precision.toFixed(3)}  recall ${c.recall.toFixed(3)}  F1 ${c.f1.toFixed(3)}  (n=${c.support})`);
  }
  lines.push(`  confusion matrix (rows true, columns predicted): ${JSON.stringify(test.confusionMatrix)}`);
  lines.push(`outputs in ${outputDir}: pretrained/ finetuned/ metrics.json steps.jsonl state/`);
  return lines.join('\n');
}
