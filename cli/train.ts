/**
 * `bertfleet train`: the whole pipeline in one process — pretraining (MLM + NSP),
 * finetuning a classification head, evaluation — through the same run loop and
 * worker computation as the cluster, so its weights are the cluster's, byte
 * for byte. With no arguments it runs the embedded default.
 */
import { RunOutputs } from '../coordinator/outputs.js';
import { runPipeline } from '../coordinator/run-loop.js';
import {
  compareForResume, describeDifference, RESUME_CHANGES_BITS, RESUME_MAY_CHANGE, resumedConfigInput, type ResumeDifference,
} from '../shared/config/resume-policy.js';
import { parseRunConfig, type RunConfig } from '../shared/config/run-config.js';
import { backendFingerprint } from '../shared/backend/select.js';
import { InputError } from '../shared/errors.js';
import { createRootLogger, type Logger } from '../shared/log.js';
import { WorkerCompute } from '../worker/compute.js';
import { parseFlags } from './args.js';
import { startBackend } from './backend-flags.js';
import { dashboardChoice, dashboardHelp, dashboardOptions, RunView } from './dashboard.js';
import { LocalExecutor } from './local-executor.js';
import { createRunProgress } from './progress.js';
import { RUN_HELP, defaultOutputDir, givenSettings, runOptions } from './run-flags.js';
import { prepareRun } from './run-setup.js';
import { reportRun } from './run-summary.js';

const HELP = `usage: bertfleet train [options]

Pretrains BERT (masked LM + next-sentence prediction), finetunes a classifier,
evaluates it. With no options: the embedded default (tiny model, State of the
Union + Moby-Dick + Brown corpus, UCI sentiment sentences).

${RUN_HELP}
${dashboardHelp(true)}`;

export interface ResolvedRun {
  config: RunConfig;
  /** On resume: the given settings that replace saved ones (shared/config/resume-policy.ts allows them). */
  changed: ResumeDifference[];
}

/**
 * The run config: from the flags for a new run; on --resume the run's own saved
 * config, compared key by key with what the user gave (flags and --config, only
 * what was given). A setting that decides the bits and differs refuses the
 * resume, listing every such key, before anything is written; the settings
 * that may change on resume take the given value.
 */
export function resolveRun(values: Record<string, unknown>, outputs: RunOutputs): ResolvedRun {
  const resume = values['resume'] === true;
  outputs.check(resume);
  const { given, source } = givenSettings(values);
  const fromFlags = parseRunConfig(given, source);
  if (!resume) return { config: fromFlags, changed: [] };
  const saved = parseRunConfig(outputs.savedRunConfig(), outputs.configFile);
  const { refused, changed } = compareForResume(saved, given, fromFlags);
  if (refused.length > 0) {
    throw new InputError(
      `--resume: the run in ${outputs.dir} was started with other settings, and these decide its bits:\n` +
        refused.map((d) => `  - ${describeDifference(d)}\n`).join('') +
        `resume without these settings (the run's own, in ${outputs.configFile}, are used), or start a new run in another --output. ` +
        `Settings that may change on resume: ${RESUME_MAY_CHANGE.join(', ')} (nothing was changed)`,
    );
  }
  return { config: parseRunConfig(resumedConfigInput(saved, changed), `${outputs.configFile} with the settings given on resume`), changed };
}

export function resolveRunConfig(values: Record<string, unknown>, outputs: RunOutputs): RunConfig {
  return resolveRun(values, outputs).config;
}

/** Logs each setting a resume changed; a warning for those that can change the bits from here on. */
export function logResumeChanges(log: Logger, changed: readonly ResumeDifference[]): void {
  for (const d of changed) {
    if (RESUME_CHANGES_BITS.includes(d.key)) {
      log.warn({ key: d.key, saved: d.saved, given: d.given }, 'resuming with another backend setting: the steps from here on may differ in their last bits from an uninterrupted run');
    } else {
      log.info({ key: d.key, saved: d.saved, given: d.given }, 'resuming with a changed setting');
    }
  }
}

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, { ...runOptions, ...dashboardOptions }, HELP);
  if (!values) return 0;
  const dashboard = dashboardChoice(values, true);
  const outputs = new RunOutputs((values['output'] as string | undefined) ?? defaultOutputDir());
  const { config, changed } = resolveRun(values, outputs);
  const log = createRootLogger({ service: 'train', level: (values['log-level'] as string) ?? 'info', fd: 2 });
  logResumeChanges(log, changed);
  const progress = values['no-progress'] !== true;
  const backend = await startBackend({ name: config.backend, blasThreads: config.blasThreads }, log);
  const dataStart = performance.now();
  const { bert, data } = await prepareRun(config, log, progress);
  const dataPreparationSeconds = (performance.now() - dataStart) / 1000;
  const resume = values['resume'] === true;
  if (!resume) outputs.create(config);
  log.info({ output: outputs.dir, backend: backend.name, model: config.model, seed: config.seed }, 'run started');
  const bar = createRunProgress(progress);
  const executor = new LocalExecutor(new WorkerCompute(bert, data.datasets, { classWeights: config.finetune.classWeights }));
  // The dashboard (unless --no-dashboard) and, at the end, OUTPUT/report.html.
  const view = await RunView.open({ outputDir: outputs.dir, log, choice: dashboard, announce: true });
  view.started({ mode: 'train', output: outputs.dir, workers: null, steps: { pretrain: config.pretrain.steps, finetune: config.finetune.steps }, model: config.model, seed: config.seed, resumed: resume });
  let failure: unknown = null;
  try {
    const result = await runPipeline({
      config, bert, data: data.datasets, executor, outputs, log, resume,
      // Saved in the trainer state: a cluster resuming this run admits only workers that compute as this process did.
      computeFingerprint: () => backendFingerprint(backend),
      ...view.runHooks((phase, step, total, loss, info) => bar.step(phase, step, total, loss, info)),
      onEval: (split, done, total) => bar.count(`evaluate ${split}`, done, total, 'chunks'),
    });
    bar.stop();
    reportRun(outputs, result, { dataPreparationSeconds, expectedWorkers: null });
  } catch (err) {
    failure = err;
    throw err;
  } finally {
    bar.stop();
    await executor.close();
    await view.finish(failure === null ? 'finished' : 'failed', failure ?? undefined);
  }
  return 0;
}
