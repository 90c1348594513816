/**
 * `bertfleet train`: the whole pipeline in one process — pretraining (MLM + NSP),
 * finetuning a classification head, evaluation — through the same run loop and
 * worker computation as the cluster, so its weights are the cluster's, byte
 * for byte. With no arguments it runs the embedded default.
 */
import { RunOutputs } from '../coordinator/outputs.js';
import { runPipeline } from '../coordinator/run-loop.js';
import { parseRunConfig, type RunConfig } from '../shared/config/run-config.js';
import { createRootLogger } from '../shared/log.js';
import { WorkerCompute } from '../worker/compute.js';
import { parseFlags } from './args.js';
import { startBackend } from './backend-flags.js';
import { LocalExecutor } from './local-executor.js';
import { createStepProgress } from './progress.js';
import { RUN_HELP, defaultOutputDir, runConfigFromFlags, runOptions } from './run-flags.js';
import { prepareRun } from './run-setup.js';
import { formatSummary } from './summary.js';

const HELP = `usage: bertfleet train [options]

Pretrains BERT (masked LM + next-sentence prediction), finetunes a classifier,
evaluates it. With no options: the embedded default (tiny model, State of the
Union + Moby-Dick + Brown corpus, UCI sentiment sentences).

${RUN_HELP}`;

/** Flags, or on --resume the run's own saved config (flags may not change it). */
export function resolveRunConfig(values: Record<string, unknown>, outputs: RunOutputs): RunConfig {
  const resume = values['resume'] === true;
  outputs.check(resume);
  if (!resume) return runConfigFromFlags(values);
  const saved = parseRunConfig(outputs.savedRunConfig(), outputs.configFile);
  const fromFlags = runConfigFromFlags(values);
  // Backend and thread settings may change on resume; the rest is checked by the run key.
  return parseRunConfig({ ...saved, backend: values['backend'] ? fromFlags.backend : saved.backend, blasThreads: values['blas-threads'] ? fromFlags.blasThreads : saved.blasThreads });
}

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, runOptions, HELP);
  if (!values) return 0;
  const outputs = new RunOutputs((values['output'] as string | undefined) ?? defaultOutputDir());
  const config = resolveRunConfig(values, outputs);
  const log = createRootLogger({ service: 'train', level: (values['log-level'] as string) ?? 'info', fd: 2 });
  const progress = values['no-progress'] !== true;
  const backend = await startBackend({ name: config.backend, blasThreads: config.blasThreads }, log);
  const { bert, data } = await prepareRun(config, log, progress);
  const resume = values['resume'] === true;
  if (!resume) outputs.create(config);
  log.info({ output: outputs.dir, backend: backend.name, model: config.model, seed: config.seed }, 'run started');
  const bar = createStepProgress(progress);
  const executor = new LocalExecutor(new WorkerCompute(bert, data.datasets));
  try {
    const { metrics } = await runPipeline({
      config, bert, data: data.datasets, executor, outputs, log, resume,
      onStep: (phase, step, total, loss) => bar.update(phase, step, total, loss),
    });
    bar.stop();
    process.stdout.write(`${formatSummary(metrics, outputs.dir)}\n`);
  } finally {
    bar.stop();
    await executor.close();
  }
  return 0;
}
