/**
 * The coordinator side shared by `bertfleet coordinator` and `bertfleet
 * cluster`: the same flags, config and data as `bertfleet train` (so the
 * same run key, outputs and summary), then the distributed run
 * (coordinator/main.ts) with the progress bar, and the final summary on
 * stdout. No tensor backend is loaded here: the coordinator's own arithmetic
 * (AdamW, clipping, the tree sum, checksums, metrics) runs on flat vectors and
 * gives the same bytes whatever the backend; the run config's `backend` and
 * `blasThreads` are the workers', and the run's compute fingerprint is theirs
 * (coordinator/compute-fingerprint.ts). So a coordinator without a GPU
 * coordinates GPU workers.
 */
import { existsSync } from 'node:fs';
import { RunOutputs } from '../coordinator/outputs.js';
import { runCoordinator, type CoordinatorOptions } from '../coordinator/main.js';
import { refuseIfOutputLocked } from '../coordinator/ownership.js';
import type { RunResult } from '../coordinator/run-loop.js';
import { inputFingerprints, type RunInputFingerprints } from '../shared/cluster/fingerprints.js';
import { RESUME_CHANGES_BITS } from '../shared/config/resume-policy.js';
import type { RunConfig } from '../shared/config/run-config.js';
import type { RunData } from '../shared/data/run-data.js';
import { createRootLogger, type Logger } from '../shared/log.js';
import type { BertConfig } from '../shared/model/config.js';
import { startVectorKernels } from './backend-flags.js';
import { createRunProgress } from './progress.js';
import { defaultOutputDir } from './run-flags.js';
import { prepareRun } from './run-setup.js';
import type { SecurityParts } from './security-flags.js';
import { reportRun } from './run-summary.js';
import { logResumeChanges, resolveRun } from './train.js';

export interface PreparedRun {
  config: RunConfig;
  outputs: RunOutputs;
  resume: boolean;
  progress: boolean;
  log: Logger;
  logLevel: string;
  bert: BertConfig;
  data: RunData;
  /** The inputs' fingerprints; a worker's backend is held to the run's compute fingerprint instead. */
  fingerprints: RunInputFingerprints;
  /** The resume changed `backend` or `blasThreads`: the saved compute fingerprint is not kept. */
  computeSettingsChanged: boolean;
  /** Wall seconds of prepareRun (the data), for run-summary.json. */
  dataPreparationSeconds: number;
}

/** Everything checked and loaded before anything is started or written; `values.resume` is true, false or 'auto'. */
export async function prepareCoordinator(values: Record<string, unknown>, service: string): Promise<PreparedRun> {
  const outputs = new RunOutputs((values['output'] as string | undefined) ?? defaultOutputDir());
  // A folder another coordinator is using is refused naming it, before "not empty" or a long data load.
  refuseIfOutputLocked(outputs.dir);
  // --resume auto: resume the run the folder holds, or start one in a folder that holds none.
  const auto = values['resume'] === 'auto';
  const resume = auto ? existsSync(outputs.configFile) : values['resume'] === true;
  const { config, changed } = resolveRun({ ...values, resume }, outputs);
  const logLevel = (values['log-level'] as string | undefined) ?? 'info';
  const log = createRootLogger({ service, level: logLevel, fd: 2 });
  logResumeChanges(log, changed);
  if (auto) log.info({ output: outputs.dir, resume }, resume ? 'resume auto: the folder holds a run; resuming it' : 'resume auto: no run in the folder; starting one');
  const progress = values['no-progress'] !== true;
  // The workers load the tensor backend (config.backend, config.blasThreads); this process computes on flat vectors only.
  startVectorKernels(log);
  const dataStart = performance.now();
  const { bert, data } = await prepareRun(config, log, progress);
  return {
    config, outputs, resume, progress, log, logLevel, bert, data, dataPreparationSeconds: (performance.now() - dataStart) / 1000,
    fingerprints: inputFingerprints(bert, data),
    computeSettingsChanged: changed.some((d) => RESUME_CHANGES_BITS.includes(d.key)),
  };
}

export type DistributedParts = Pick<CoordinatorOptions, 'listen' | 'natsServers' | 'expectedWorkers' | 'signal' | 'reducerAddresses' | 'health' | 'events' | 'whenDone'> &
  SecurityParts & {
    /** With whenDone 'stay': called once the run is finished and its summary printed, before staying up. */
    onStaying?: () => Promise<void>;
  };

/** Runs the pipeline through the workers and prints the same summary as `train` (with --when-done stay: before staying up). */
export async function runAndReport(p: PreparedRun, parts: DistributedParts): Promise<number> {
  // runCoordinator creates the folder's run config once it holds the folder's lock and the run's lease.
  p.log.info({ output: p.outputs.dir, backend: p.config.backend, model: p.config.model, seed: p.config.seed, workers: parts.expectedWorkers }, 'run started');
  const bar = createRunProgress(p.progress);
  const report = (result: RunResult): void => {
    bar.stop();
    reportRun(p.outputs, result, { dataPreparationSeconds: p.dataPreparationSeconds, expectedWorkers: parts.expectedWorkers });
  };
  const { onStaying, ...coordinatorParts } = parts;
  try {
    const result = await runCoordinator({
      config: p.config, bert: p.bert, data: p.data.datasets, fingerprints: p.fingerprints, outputs: p.outputs, resume: p.resume, log: p.log,
      computeSettingsChanged: p.computeSettingsChanged,
      ...coordinatorParts,
      onStep: (phase, step, total, loss, info) => bar.step(phase, step, total, loss, info),
      onEval: (split, done, total) => bar.count(`evaluate ${split}`, done, total, 'chunks'),
      onFinished: async (r) => {
        report(r);
        await onStaying?.();
      },
    });
    if (parts.whenDone !== 'stay') report(result);
    return 0;
  } finally {
    bar.stop();
  }
}
