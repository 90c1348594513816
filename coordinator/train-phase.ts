/**
 * One training phase, step by step: build each step's micro-batches from the
 * data plan, have the executor compute the reduced gradient, apply the update
 * to the coordinator's replica, log and record the step, write trainer state
 * every N steps. Knows nothing of how gradients are computed.
 *
 * The non-finite guard's run side: a step whose reduced gradient held NaN or
 * ±Infinity was applied by no replica (replica.ts); with the run config's
 * nonFinite 'stop' the run stops here with NonFiniteGradientError, with
 * 'skip' it goes on — the step counts as done (the data plan and schedule
 * move on) and its steps.jsonl line says `skipped: true` and why. No trainer
 * state is written with a non-finite weight (`assertFinite`).
 */
import type { Logger } from '../shared/log.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { saveTrainerState, STATE_FORMAT } from '../shared/checkpoint/trainer-state.js';
import { describeNonFiniteGradient, NonFiniteGradientError, type NonFiniteGradientDetails } from '../shared/errors.js';
import { maskedTokenCount, sourceOf, type PretrainArrays, type RunDatasets } from '../shared/training/batches.js';
import { DataPlan, dropoutSeed } from '../shared/training/data-plan.js';
import { sumStats } from '../shared/training/metrics.js';
import { assertFinite, locate, type PartialFault } from '../shared/training/non-finite.js';
import type { UpdateResult } from '../shared/training/replica.js';
import type { PhaseSetup, StepExecutor, StepWork } from './executor.js';
import type { RunOutputs } from './outputs.js';

export interface PhaseContext {
  config: RunConfig;
  data: RunDatasets;
  executor: StepExecutor;
  outputs: RunOutputs;
  log: Logger;
  runKey: string;
  /** Carried into every trainer state of this phase (e.g. pretraining metrics). */
  extra: Record<string, unknown>;
  /** Called after each step; the CLI draws progress with it. */
  onStep?: (phase: string, step: number, total: number, loss: number, info: StepInfo) => void;
  /** Called after each trainer state is written (the distributed run records it in NATS). */
  onCheckpoint?: (phase: PhaseSetup['phase'], step: number, dir: string) => void;
  /** Aborted to stop the run early (SIGTERM, Ctrl-C): the steps completed so far are checkpointed first. */
  stopSignal?: AbortSignal;
  /**
   * The backend fingerprint of what computed the steps (the run's compute
   * fingerprint), saved in every trainer state so a resume can hold the
   * workers to it; null: not known, nothing saved.
   */
  computeFingerprint?: () => string | null;
}

/** What a step's progress line needs beyond the loss. */
export interface StepInfo {
  lr: number;
  gradNorm: number;
  sequences: number;
  /** Wall time of the step, from building its work to its update applied. */
  durationMs: number;
  /** The non-finite guard skipped the step (nonFinite: skip). */
  skipped?: boolean;
  /** The step's steps.jsonl line (accuracy and partial losses; coordinator/run-events.ts reads them). */
  record?: Readonly<Record<string, unknown>>;
}

export function planFor(ctx: Pick<PhaseContext, 'config' | 'data'>, setup: Pick<PhaseSetup, 'phase' | 'dataset'>): DataPlan {
  const p = ctx.config[setup.phase];
  return new DataPlan({
    stream: setup.phase,
    seed: ctx.config.seed,
    numExamples: sourceOf(ctx.data, setup.dataset).size,
    globalBatch: p.globalBatch,
    microBatch: p.microBatch,
  });
}

function stepWork(ctx: PhaseContext, setup: PhaseSetup, plan: DataPlan, step: number): StepWork {
  const microBatches = Array.from({ length: plan.microPerStep }, (_, j) => ({
    index: j,
    examples: plan.examples(step, j),
    dropoutSeed: dropoutSeed(ctx.config.seed, setup.phase, step, j),
  }));
  const counts: StepWork['counts'] = { sequences: plan.spec.globalBatch };
  if (setup.phase === 'pretrain') {
    // The MLM loss is normalised by the global batch's real masked tokens, known before any gradient.
    const all = microBatches.flatMap((m) => m.examples);
    const b = sourceOf(ctx.data, setup.dataset).batch(all) as PretrainArrays;
    counts.maskedTokens = maskedTokenCount(b);
  }
  return { phase: setup.phase, step, dataset: setup.dataset, microBatches, counts };
}

function computeOf(ctx: PhaseContext): { computeFingerprint?: string } {
  const fingerprint = ctx.computeFingerprint?.() ?? null;
  return fingerprint === null ? {} : { computeFingerprint: fingerprint };
}

export async function trainPhase(ctx: PhaseContext, setup: PhaseSetup): Promise<void> {
  const total = ctx.config[setup.phase].steps;
  const plan = planFor(ctx, setup);
  const { replica } = setup;
  const log = ctx.log.child({ phase: setup.phase });
  await ctx.executor.startPhase(setup);
  log.info({ startStep: setup.startStep, steps: total, microBatchesPerStep: plan.microPerStep, examples: plan.spec.numExamples }, 'phase started');
  let windowStart = performance.now();
  let windowSeqs = 0;
  let saved = setup.startStep;
  const save = (completed: number): void => {
    assertFinite(`trainer state of ${setup.phase} step ${completed}`, replica.params, replica.layout);
    ctx.outputs.syncSteps();
    const dir = saveTrainerState(ctx.outputs.state, setup.specs, replica.layout.offsets, {
      meta: { format: STATE_FORMAT, runKey: ctx.runKey, phase: setup.phase, step: completed, extra: ctx.extra, ...computeOf(ctx) },
      params: replica.params, m: replica.opt.m, v: replica.opt.v,
    }, ctx.config.checkpoint.keep);
    saved = completed;
    log.info({ step: completed, dir }, 'checkpoint written');
    ctx.onCheckpoint?.(setup.phase, completed, dir);
  };
  let step = setup.startStep;
  let next: StepWork | null = null;
  try {
    for (; step < total; step++) {
      const stepStart = performance.now();
      const work = next?.step === step ? next : stepWork(ctx, setup, plan, step);
      const outcome = await ctx.executor.runStep(work);
      // The next step's work goes out before this update is applied (nothing in it depends on the update).
      next = step + 1 < total && ctx.stopSignal?.aborted !== true ? stepWork(ctx, setup, plan, step + 1) : null;
      if (next !== null) ctx.executor.prepareStep?.(next);
      const update = replica.applyGradient(outcome.grad, step, setup.update);
      const { gradNorm, lr } = update;
      const skipped = update.skipped ? nonFiniteStep(ctx, setup, step, update, outcome.faults ?? [], log) : null;
      await ctx.executor.afterUpdate(setup.phase, step, () => replica.checksum());
      const s = sumStats(outcome.stats);
      const loss = setup.phase === 'pretrain'
        ? s.lossSum / Math.max(1, s.maskedTokens) + s.nspLossSum / s.sequences
        : s.lossSum / s.sequences;
      const record: Record<string, unknown> = { phase: setup.phase, step, loss, lr, gradNorm };
      if (setup.phase === 'pretrain') {
        Object.assign(record, {
          mlmLoss: s.lossSum / Math.max(1, s.maskedTokens), nspLoss: s.nspLossSum / s.sequences,
          mlmAccuracy: s.correct / Math.max(1, s.maskedTokens), nspAccuracy: s.nspCorrect / s.sequences,
        });
      } else {
        record['accuracy'] = s.correct / s.sequences;
      }
      if (skipped !== null) Object.assign(record, { skipped: true, reason: skipped });
      ctx.outputs.appendStep(record);
      windowSeqs += s.sequences;
      ctx.onStep?.(setup.phase, step + 1, total, loss, {
        lr, gradNorm, sequences: s.sequences, durationMs: performance.now() - stepStart, ...(skipped !== null && { skipped: true }), record,
      });
      if ((step + 1) % ctx.config.logEverySteps === 0 || step + 1 === total) {
        const seconds = (performance.now() - windowStart) / 1000;
        log.info({ step: step + 1, of: total, loss, lr, gradNorm, seqPerSec: windowSeqs / seconds }, 'step done');
        windowStart = performance.now();
        windowSeqs = 0;
      }
      if ((step + 1) % ctx.config.checkpoint.everySteps === 0 || step + 1 === total) save(step + 1);
    }
  } catch (err) {
    // Stopped early on purpose: keep every completed step (the step in flight is recomputed on resume).
    if (ctx.stopSignal?.aborted === true && step > saved) {
      log.info({ step, reason: String((ctx.stopSignal.reason as Error | undefined)?.message ?? ctx.stopSignal.reason) }, 'stopping: checkpointing the completed steps');
      save(step);
    }
    throw err;
  }
}

/**
 * A step no replica applied (its reduced gradient held NaN or ±Infinity):
 * throws NonFiniteGradientError under nonFinite 'stop'; under 'skip' logs the
 * same details and returns the reason kept in steps.jsonl (from the reduced
 * gradient alone, so the line is the same for any worker count).
 */
function nonFiniteStep(ctx: PhaseContext, setup: PhaseSetup, step: number, update: UpdateResult, faults: readonly PartialFault[], log: Logger): string {
  const layout = setup.replica.layout;
  // The lowest micro-batch range, not the first to arrive: the same partial is named whatever the timing.
  const first = [...faults].sort((a, b) => a.range.lo - b.range.lo)[0];
  const details: NonFiniteGradientDetails = {
    phase: setup.phase, step, reduced: update.firstBad!,
    partial: first === undefined ? null : { workerId: first.workerId, range: first.range, value: first.value, ...locate(first.flatIndex, layout) },
  };
  if (ctx.config.nonFinite === 'stop') throw new NonFiniteGradientError(details);
  const { tensor, index, value } = details.reduced;
  const p = details.partial;
  log.warn({
    step, tensor, index, value: String(value),
    ...(p === null ? {} : { workerId: p.workerId, microBatches: `[${p.range.lo}, ${p.range.hi})`, partialTensor: p.tensor, partialIndex: p.index }),
    reason: describeNonFiniteGradient(details),
  }, 'step skipped: non-finite gradient');
  return `non-finite gradient: ${value} at ${tensor}[${index}]`;
}
