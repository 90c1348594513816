/**
 * What the run loop asks of whoever computes gradients: set up a phase, compute
 * one step's reduced gradient from its micro-batches, evaluate chunks of a
 * dataset. The in-process executor (`bertfleet train`) and the distributed one
 * (workers over gRPC) implement it; the run loop cannot tell them apart, which
 * is what makes their results identical.
 */
import type { GlobalCounts } from '../shared/model/losses.js';
import type { ParamSpec } from '../shared/model/params.js';
import type { DatasetName } from '../shared/training/batches.js';
import type { MicroStats } from '../shared/training/gradients.js';
import type { PartialFault } from '../shared/training/non-finite.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { Replica, UpdateSettings } from '../shared/training/replica.js';

export type { TrainPhase };

export interface PhaseSetup {
  phase: TrainPhase;
  specs: readonly ParamSpec[];
  dataset: DatasetName;
  /** The coordinator's replica at the phase's start (or at the resumed step). */
  replica: Replica;
  startStep: number;
  update: UpdateSettings;
}

export interface MicroBatchWork {
  index: number;
  examples: number[];
  dropoutSeed: number;
}

export interface StepWork {
  phase: TrainPhase;
  step: number;
  dataset: DatasetName;
  microBatches: MicroBatchWork[];
  counts: GlobalCounts;
}

export interface StepOutcome {
  /** The fixed-order tree sum of the micro-batch gradients. */
  grad: Float32Array;
  /** By micro-batch index. */
  stats: MicroStats[];
  /** Uploaded partial sums seen holding NaN or ±Infinity (first value of each): who sent what, for the non-finite guard. */
  faults?: PartialFault[];
}

export interface EvalWork {
  phase: TrainPhase;
  dataset: DatasetName;
  chunks: number[][];
  /** Told how many chunks are done so far, as results come in (for a progress bar; never the figures). */
  onChunksDone?: (done: number) => void;
}

export interface EvalOutcome {
  stats: MicroStats[];
  /** Class predictions by chunk (classification only). */
  predictions: Int32Array[];
}

export interface StepExecutor {
  startPhase(setup: PhaseSetup): Promise<void>;
  runStep(work: StepWork): Promise<StepOutcome>;
  /**
   * Optional: told the next step's work while the current step's update is
   * applied, so its computation can start meanwhile (the distributed executor
   * publishes its task). runStep(work) follows with the same work.
   */
  prepareStep?(work: StepWork): void;
  /** Called after the coordinator applied step `step`'s update; replicas may be compared here. */
  afterUpdate(phase: TrainPhase, step: number, checksum: () => string): Promise<void>;
  evaluate(work: EvalWork): Promise<EvalOutcome>;
  close(): Promise<void>;
}
