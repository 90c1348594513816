/**
 * OUTPUT/run-summary.json: how the run went, for people and tools — wall
 * seconds per stage (data preparation, pretraining, finetuning, evaluation),
 * steps and seq/s per training phase, the number of workers, and in a
 * cluster each worker's totals with its straggler flag
 * (coordinator/worker-tally.ts). Kept apart from metrics.json on purpose:
 * these figures differ from run to run, while metrics.json must be
 * byte-identical between `train` and `cluster`. A resumed run's file covers
 * what that process ran itself.
 *
 * `reportRun` writes it, then prints the summary (summary.ts) and the closing
 * table (closing-table.ts) on stdout.
 */
import { join } from 'node:path';
import type { RunOutputs } from '../coordinator/outputs.js';
import type { RunResult } from '../coordinator/run-loop.js';
import type { RunTimings, StageTiming } from '../coordinator/run-timings.js';
import { STRAGGLER_RATIO, type WorkerStats } from '../coordinator/worker-tally.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { formatClosingTable } from './closing-table.js';
import { formatSummary } from './summary.js';

export const RUN_SUMMARY_FILE = 'run-summary.json';
export const RUN_SUMMARY_FORMAT = 1;

export interface RunSummary {
  format: number;
  /** Worker processes of a cluster; 1 for `bertfleet train` (in-process). */
  workerCount: number;
  inProcess: boolean;
  timings: RunTimings;
  /** Cluster only: by worker id. */
  workers?: Record<string, WorkerStats>;
  /** Cluster only: how `straggler` is decided. */
  stragglerRule?: string;
}

export const STRAGGLER_RULE = `mean compute time per micro-batch above ${STRAGGLER_RATIO}x the median of the other workers'`;

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

function roundStage(t: StageTiming): StageTiming {
  return {
    seconds: round(t.seconds, 3),
    ...(t.steps !== undefined && { steps: t.steps }),
    ...(t.sequences !== undefined && { sequences: t.sequences }),
    ...(t.seqPerSec !== undefined && { seqPerSec: round(t.seqPerSec, 1) }),
  };
}

export interface SummaryFacts {
  dataPreparationSeconds: number;
  /** null: in-process (`train`); else the workers the cluster was started with. */
  expectedWorkers: number | null;
}

export function runSummary(result: RunResult, facts: SummaryFacts): RunSummary {
  const timings: RunTimings = {};
  for (const [stage, t] of Object.entries({ dataPreparation: { seconds: facts.dataPreparationSeconds }, ...result.timings })) {
    timings[stage as keyof RunTimings] = roundStage(t);
  }
  if (facts.expectedWorkers === null) return { format: RUN_SUMMARY_FORMAT, workerCount: 1, inProcess: true, timings };
  const workers: Record<string, WorkerStats> = {};
  for (const [id, w] of Object.entries(result.workers ?? {})) {
    workers[id] = { ...w, meanStepMs: round(w.meanStepMs, 1), msPerMicroBatch: round(w.msPerMicroBatch, 2) };
  }
  // Workers that joined late or replaced others count too.
  const workerCount = Math.max(facts.expectedWorkers, Object.keys(workers).length);
  return { format: RUN_SUMMARY_FORMAT, workerCount, inProcess: false, timings, workers, stragglerRule: STRAGGLER_RULE };
}

/** Writes OUTPUT/run-summary.json (atomically); its path. */
export function writeRunSummary(dir: string, summary: RunSummary): string {
  const file = join(dir, RUN_SUMMARY_FILE);
  writeFileAtomic(file, `${JSON.stringify(summary, null, 2)}\n`);
  return file;
}

/** The end of a run: run-summary.json, then the summary and the closing table on `out`. */
export function reportRun(outputs: RunOutputs, result: RunResult, facts: SummaryFacts, out: NodeJS.WritableStream = process.stdout): void {
  const summary = runSummary(result, facts);
  const file = writeRunSummary(outputs.dir, summary);
  out.write(`${formatSummary(result.metrics, outputs.dir)}\n${formatClosingTable(summary, result.metrics, file)}\n`);
}
