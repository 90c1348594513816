/**
 * The closing table of a run, printed on stdout after the summary: time per
 * stage with steps and seq/s per training phase, the workers (in a cluster,
 * each worker's steps, micro-batches, step time, time per micro-batch and
 * straggler flag), and the final classification metrics with the
 * majority-class baseline beside the accuracy. Plain text, columns aligned
 * with spaces, no trailing blanks: it reads the same in a terminal, a log
 * file or CI output. A pure function of run-summary.json and metrics.json.
 */
import { STAGES, type StageName } from '../coordinator/run-timings.js';
import type { SplitMetrics } from '../shared/training/metrics.js';
import type { RunSummary } from './run-summary.js';

const STAGE_LABEL: Record<StageName, string> = {
  dataPreparation: 'data preparation', pretraining: 'pretraining', finetuning: 'finetuning', evaluation: 'evaluation',
};

type Align = 'left' | 'right';

/** Rows as aligned columns (two spaces apart), indented by two, trailing blanks trimmed. */
export function alignColumns(rows: readonly (readonly string[])[], align: readonly Align[]): string[] {
  const widths = align.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => `  ${align.map((a, c) => (a === 'left' ? (r[c] ?? '').padEnd(widths[c]!) : (r[c] ?? '').padStart(widths[c]!))).join('  ')}`.trimEnd());
}

/** 9.4 s, 3m 05s, 1h 02m. */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

function stageLines(s: RunSummary): string[] {
  const rows: string[][] = [['stage', 'time', 'steps', 'seq/s']];
  let total = 0;
  for (const stage of STAGES) {
    const t = s.timings[stage];
    if (t === undefined) continue;
    total += t.seconds;
    rows.push([STAGE_LABEL[stage], formatDuration(t.seconds), t.steps === undefined ? '' : String(t.steps), t.seqPerSec === undefined ? '' : t.seqPerSec.toFixed(1)]);
  }
  rows.push(['total', formatDuration(total), '', '']);
  return alignColumns(rows, ['left', 'right', 'right', 'right']);
}

function workerLines(s: RunSummary): string[] {
  const workers = Object.entries(s.workers ?? {});
  if (s.inProcess) return ['  workers: 1 (in-process)'];
  const lines = [`  workers: ${s.workerCount}`];
  if (workers.length === 0) return lines;
  const rows: string[][] = [['worker', 'steps', 'micro-batches', 'mean step ms', 'ms/micro-batch', 'straggler']];
  for (const [id, w] of workers) {
    rows.push([id, String(w.steps), String(w.microBatches), w.meanStepMs.toFixed(1), w.msPerMicroBatch.toFixed(1), w.straggler ? 'yes' : '']);
  }
  lines.push('', ...alignColumns(rows, ['left', 'right', 'right', 'right', 'right', 'left']));
  if (s.stragglerRule !== undefined) lines.push(`  straggler: ${s.stragglerRule}`);
  return lines;
}

function metricLines(metrics: Record<string, unknown>): string[] {
  const ft = metrics['finetuning'] as { validation?: Partial<SplitMetrics>; test?: Partial<SplitMetrics> } | undefined;
  const rows: string[][] = [['split', 'examples', 'accuracy', 'majority baseline', 'macro F1']];
  for (const [name, m] of [['validation', ft?.validation], ['test', ft?.test]] as const) {
    if (m?.accuracy === undefined) continue;
    const base = m.majorityBaseline ? `${pct(m.majorityBaseline.accuracy)} (${m.majorityBaseline.label})` : 'n/a';
    rows.push([name, String(m.examples ?? ''), pct(m.accuracy), base, m.macro ? m.macro.f1.toFixed(3) : '']);
  }
  return rows.length === 1 ? [] : ['', ...alignColumns(rows, ['left', 'right', 'right', 'left', 'right'])];
}

/** The table; `file` is where run-summary.json was written. */
export function formatClosingTable(s: RunSummary, metrics: Record<string, unknown>, file: string): string {
  return ['run summary', ...stageLines(s), ...workerLines(s), ...metricLines(metrics), `  timings and workers: ${file}`].join('\n');
}
