/**
 * The whole run: pretraining (MLM + NSP) → finetuning (classification) →
 * evaluation, resumable from the latest trainer state. Owns the coordinator's
 * replica, the outputs and `metrics.json`; gradients come from the executor.
 */
import { createHash } from 'node:crypto';
import { loadHfCheckpoint, saveHfCheckpoint, selectParams } from '../shared/checkpoint/hf-checkpoint.js';
import { loadResumeState, type ResumePoint, type TrainerStateData } from '../shared/checkpoint/trainer-state.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { CheckpointError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { architectureOf, type BertConfig } from '../shared/model/config.js';
import type { ParamSpec } from '../shared/model/params.js';
import type { RunDatasets } from '../shared/training/batches.js';
import { classWeightsReport } from '../shared/training/class-weights.js';
import { initParams } from '../shared/training/init.js';
import { assertFinite } from '../shared/training/non-finite.js';
import type { PretrainMetrics } from '../shared/training/metrics.js';
import { phaseSpecs, updateSettings } from '../shared/training/phase-settings.js';
import { Replica } from '../shared/training/replica.js';
import { evaluateClassification, evaluatePretraining, type ChunkProgress } from './evaluate.js';
import type { StepExecutor, TrainPhase } from './executor.js';
import type { RunOutputs } from './outputs.js';
import { RunClock, type RunTimings } from './run-timings.js';
import type { WorkerStats } from './worker-tally.js';
import { countSkippedSteps } from './skipped-steps.js';
import { trainPhase, type PhaseContext } from './train-phase.js';

export interface RunInputs {
  config: RunConfig;
  bert: BertConfig;
  data: RunDatasets;
  executor: StepExecutor;
  outputs: RunOutputs;
  log: Logger;
  resume: boolean;
  onStep?: PhaseContext['onStep'];
  onCheckpoint?: PhaseContext['onCheckpoint'];
  /** Aborted to stop early: the completed steps of the phase in progress are checkpointed first. */
  signal?: AbortSignal;
  /** Reports phase changes (the distributed run mirrors them into NATS). */
  onPhase?: (phase: TrainPhase | 'evaluate' | 'done', step: number) => Promise<void>;
  /** Evaluation progress: chunks of `split` done of `total` (the CLI draws it). */
  onEval?: (split: string, done: number, total: number) => void;
  /** An evaluation's metrics, as metrics.json will hold them (the dashboard shows them at once). */
  onEvaluated?: (split: string, metrics: object) => void;
  /** Per-worker totals for the run's result (the distributed run's WorkerTally). */
  workerStats?: () => RunResult['workers'];
  /** The run's compute fingerprint, saved in every trainer state (train-phase.ts). */
  computeFingerprint?: PhaseContext['computeFingerprint'];
  /**
   * The state to resume from when `resume`, already read by `loadRunResumePoint`
   * (the distributed run reads it before it serves workers); absent: read here.
   */
  resumePoint?: ResumePoint | null;
}

export interface RunResult {
  metrics: Record<string, unknown>;
  /** What this process ran, stage by stage (absent for a run found already finished); never in metrics.json. */
  timings?: RunTimings;
  workers?: Record<string, WorkerStats>;
}

/** What must match for a resume: everything that changes the numbers. */
export function runKey(config: RunConfig, bert: BertConfig, dataFingerprint: string): string {
  const { seed, initFrom, data, pretrain, finetune, optimizer } = config;
  // classWeights "none" is left out, so runs from before the setting existed keep their key.
  const ft = finetune.classWeights === 'none' ? { ...finetune, classWeights: undefined } : finetune;
  const key = JSON.stringify({ seed, initFrom, data: { ...data, cacheDir: undefined }, pretrain, finetune: ft, optimizer, bert: architectureOf(bert), dataFingerprint });
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

function finetuneSpecs(bert: BertConfig, data: RunDatasets): ParamSpec[] {
  return phaseSpecs(bert, 'finetune', data.labels.length);
}

function resumedReplica(specs: readonly ParamSpec[], s: TrainerStateData): Replica {
  return new Replica(specs, s.params, { m: s.m, v: s.v });
}

/** Encoder weights for finetuning: from the pretrained replica, or from --init-from. */
function finetuneStart(inp: RunInputs, specs: ParamSpec[], pretrained: Replica | null): Replica {
  const encoder = pretrained
    ? pretrained.values()
    : selectParams(loadHfCheckpoint(inp.config.initFrom!), specs, {
        optionalPrefixes: ['classifier.'],
        dropPrefixes: ['cls.'],
        source: inp.config.initFrom!,
      });
  const fresh = initParams(inp.bert, specs, inp.config.seed, (n) => n.startsWith('classifier.'));
  const values = new Map<string, Float32Array>();
  for (const s of specs) values.set(s.name, (s.name.startsWith('classifier.') ? fresh.get(s.name) : encoder.get(s.name))!);
  return Replica.fromValues(specs, values);
}

/**
 * The trainer state a resume starts from, verified against its checksums; a
 * damaged latest state falls back to the previous one (trainer-state.ts).
 * null: no state yet (every step is computed again).
 */
export function loadRunResumePoint(inp: Pick<RunInputs, 'bert' | 'data' | 'outputs' | 'log'>): ResumePoint | null {
  const preSpecs = phaseSpecs(inp.bert, 'pretrain', inp.data.labels.length);
  const ftSpecs = finetuneSpecs(inp.bert, inp.data);
  return loadResumeState(inp.outputs.state, (m) => (m.phase === 'pretrain' ? preSpecs : ftSpecs), inp.log);
}

export async function runPipeline(inp: RunInputs): Promise<RunResult> {
  const { config, bert, data, outputs, log } = inp;
  const key = runKey(config, bert, data.fingerprint);
  // Before any training, so a class with no training example stops a "balanced" run at once.
  const classWeights = classWeightsReport(config.finetune.classWeights, data);
  if (classWeights.weights !== null) log.info({ ...classWeights }, 'finetuning loss weighted by class');
  const preSpecs = phaseSpecs(bert, 'pretrain', data.labels.length);
  const ftSpecs = finetuneSpecs(bert, data);
  const resumePoint = inp.resume ? (inp.resumePoint !== undefined ? inp.resumePoint : loadRunResumePoint(inp)) : null;
  const resumed = resumePoint?.state ?? null;
  if (resumed && resumed.meta.runKey !== key) {
    throw new CheckpointError(`--resume: the trainer state in ${outputs.state} belongs to run ${resumed.meta.runKey}, but these settings make run ${key}; resume with the same config`);
  }
  if (resumed && resumed.meta.phase === 'finetune' && resumed.meta.step >= config.finetune.steps && outputs.hasMetrics()) {
    // Finished before a restart (say, killed between writing metrics.json and exiting): nothing to redo.
    log.info({ phase: resumed.meta.phase, step: resumed.meta.step, metrics: outputs.metricsFile }, 'run already finished');
    await inp.onPhase?.('done', config.finetune.steps);
    return { metrics: outputs.readMetrics() };
  }
  if (inp.resume) {
    // With no state yet (stopped before the first checkpoint) every step is recomputed, so no step line stays.
    const from = resumed?.meta ?? { phase: 'pretrain', step: 0 };
    log.info({ dir: resumePoint?.dir ?? null, phase: from.phase, step: from.step }, resumed ? 'resuming' : 'resuming: no trainer state yet, starting at step 0');
    const { tornLine } = outputs.trimStepsFrom(from.phase, from.step);
    if (tornLine !== null) log.warn({ file: outputs.stepsFile, line: tornLine.slice(0, 200) }, 'dropped the torn last line of the step log (the process died writing it)');
  }
  // Stage timings for run-summary.json (cli/): this process's own, never metrics.json's.
  const clock = new RunClock();
  const evalProgress = (split: string): ChunkProgress | undefined => (inp.onEval ? (done, total) => inp.onEval!(split, done, total) : undefined);
  const ctx = (extra: Record<string, unknown>): PhaseContext => ({
    config, data, executor: inp.executor, outputs, log, runKey: key, extra,
    onStep: (phase, step, total, loss, info) => {
      clock.step(phase, info.sequences, info.durationMs);
      inp.onStep?.(phase, step, total, loss, info);
    },
    ...(inp.onCheckpoint ? { onCheckpoint: inp.onCheckpoint } : {}),
    ...(inp.signal ? { stopSignal: inp.signal } : {}),
    ...(inp.computeFingerprint ? { computeFingerprint: inp.computeFingerprint } : {}),
  });
  let pretrainMetricsResult = (resumed?.meta.extra['pretrain'] as PretrainMetrics | undefined) ?? null;
  let pretrained: Replica | null = null;
  const skipPretrain = config.initFrom !== null;

  if (!skipPretrain && (!resumed || resumed.meta.phase === 'pretrain')) {
    const replica = resumed ? resumedReplica(preSpecs, resumed) : Replica.fromValues(preSpecs, initParams(bert, preSpecs, config.seed));
    const startStep = resumed?.meta.step ?? 0;
    await inp.onPhase?.('pretrain', startStep);
    await clock.time('pretraining', () => trainPhase(ctx({}), { phase: 'pretrain', specs: preSpecs, dataset: 'pretrain', replica, startStep, update: updateSettings(config, 'pretrain') }));
    pretrainMetricsResult = await clock.time('evaluation', () => evaluatePretraining(inp.executor, data, undefined, evalProgress('held-out')));
    log.info({ ...pretrainMetricsResult }, 'pretraining evaluated');
    inp.onEvaluated?.('pretrain held-out', pretrainMetricsResult);
    assertFinite(outputs.pretrained, replica.params, replica.layout);
    saveHfCheckpoint(outputs.pretrained, { config: bert, specs: preSpecs, values: replica.values() });
    pretrained = replica;
  }

  const ftResumed = resumed?.meta.phase === 'finetune' ? resumed : null;
  const replica = ftResumed ? resumedReplica(ftSpecs, ftResumed) : finetuneStart(inp, ftSpecs, pretrained);
  pretrained?.releaseTensors();
  const startStep = ftResumed?.meta.step ?? 0;
  await inp.onPhase?.('finetune', startStep);
  const extra = pretrainMetricsResult ? { pretrain: pretrainMetricsResult } : {};
  await clock.time('finetuning', () => trainPhase(ctx(extra), { phase: 'finetune', specs: ftSpecs, dataset: 'classify-train', replica, startStep, update: updateSettings(config, 'finetune') }));
  assertFinite(outputs.finetuned, replica.params, replica.layout);
  saveHfCheckpoint(outputs.finetuned, { config: bert, specs: ftSpecs, values: replica.values(), labels: data.labels });

  await inp.onPhase?.('evaluate', config.finetune.steps);
  const validation = await clock.time('evaluation', () => evaluateClassification(inp.executor, data, 'classify-validation', { log, onChunks: evalProgress('validation') }));
  inp.onEvaluated?.('validation', validation);
  const test = await clock.time('evaluation', () => evaluateClassification(inp.executor, data, 'classify-test', { log, onChunks: evalProgress('test') }));
  inp.onEvaluated?.('test', test);
  const metrics: Record<string, unknown> = {
    pretraining: pretrainMetricsResult ?? { skipped: `initialised from ${config.initFrom}` },
    finetuning: { classWeights, validation, test },
    labels: data.labels,
    seed: config.seed,
    skippedSteps: countSkippedSteps(outputs.stepsFile),
  };
  outputs.writeMetrics(metrics);
  replica.releaseTensors();
  await inp.onPhase?.('done', config.finetune.steps);
  log.info({ testAccuracy: test.accuracy, macroF1: test.macro.f1 }, 'run finished');
  return { metrics, timings: clock.timings(), ...(inp.workerStats && { workers: inp.workerStats() }) };
}
