/**
 * What the worker loop asks of the replica it computes on: load a phase's
 * state, the gradients of some micro-batches (pre-summed per subtree), apply
 * a reduced gradient, evaluate chunks. All async: the worker process runs it
 * in a thread of its own (compute-host.ts), so heartbeats and gRPC keepalive
 * answers keep flowing while it computes. The thread runs the same
 * WorkerCompute and Replica as `bertfleet train`, so the bits are the same.
 */
import type { GradientDigest } from '../shared/cluster/gradient-digest.js';
import type { GlobalCounts } from '../shared/model/losses.js';
import type { DatasetName } from '../shared/training/batches.js';
import type { MicroStats } from '../shared/training/gradients.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { Range } from '../shared/training/tree-sum.js';
import type { MicroInput, PartialSum, ReadyPartial } from './compute.js';

export interface ReplicaState {
  phase: TrainPhase;
  /** Steps of the phase the state includes. */
  step: number;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export interface GradientsResult {
  partials: PartialSum[];
  stats: Map<number, MicroStats>;
  computeMs: number;
}

export interface ApplyResult {
  /** The gradient buffer, handed back for reuse. */
  grad: Float32Array;
  checksum: string | null;
  gradNorm: number;
  lr: number;
}

export interface ChunkEval {
  index: number;
  stats: MicroStats;
  predictions: Int32Array;
}

/** The gradient audit's digest of one micro-batch computed alone, and what computed it. */
export interface AuditDigest extends GradientDigest {
  index: number;
  /** The backend fingerprint of the compute (backend, OpenBLAS, libc, CPU features). */
  fingerprint: string;
}

export interface ReplicaCompute {
  /**
   * P, the float count of the phase's flat parameter vector (its layout, from
   * the model config and the label count): what a fetched state (3 x P
   * floats) and a reduced gradient (P floats) must measure, checked before
   * anything the coordinator announces is allocated.
   */
  paramCount(phase: TrainPhase): number;
  /** Replaces the replica (the arrays may be transferred: do not reuse them). */
  load(s: ReplicaState): Promise<void>;
  /** Subtree sums go to `onPartial` as each completes (then `partials` is empty), or are returned. */
  gradients(r: { dataset: DatasetName; micro: MicroInput[]; subtrees: Range[]; counts: GlobalCounts }, onPartial?: (p: ReadyPartial) => void): Promise<GradientsResult>;
  apply(grad: Float32Array, step: number, opts: { checksum: boolean }): Promise<ApplyResult>;
  evaluate(r: { dataset: DatasetName; chunks: { index: number; examples: number[] }[] }): Promise<ChunkEval[]>;
  /**
   * Optional (without it the worker reports no audits): the gradient of one
   * micro-batch alone, on the replica as it is (before the step's update),
   * as a digest. Changes nothing the step computes.
   */
  audit?(r: { dataset: DatasetName; micro: MicroInput; counts: GlobalCounts }): Promise<AuditDigest>;
  /** Optional: takes back a gradient buffer from `gradients` for reuse (the caller must not use it afterwards). */
  recycle?(grad: Float32Array): void;
  /** Releases the replica. */
  drop(): Promise<void>;
}
