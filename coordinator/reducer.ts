/**
 * A reducer process of `--reducers K`: it sums its slice of every step's
 * gradient, chunk by chunk, in the same fixed tree order as the coordinator
 * (StepRound), and serves the reduced slice to the workers and the
 * coordinator. It learns each step from the coordinator (OpenStep) before the
 * workers get the task, and each reassignment (Reassign) before the recovery
 * task goes out, so an upload never arrives for a step it does not know.
 *
 * Knows nothing of gRPC (reducer-service.ts is its door) or of training.
 */
import { ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { isTrainPhase, type TrainPhase } from '../shared/training/phase-settings.js';
import type { StepPlan } from '../shared/wire/messages.js';
import { ChunkPool, MAX_CHUNK_BYTES } from './chunk-pool.js';
import type { Block } from './partition.js';
import { ReducedStore, stepOrder } from './reduced-store.js';
import { StepRound } from './step-round.js';

/** Rounds kept after they complete, for late pulls (as ReducedStore keeps 4). */
const KEEP_ROUNDS = 4;

export class Reducer {
  readonly reduced = new ReducedStore();
  private rounds: StepRound[] = [];
  private pool: ChunkPool | null = null;
  private lastPhase: TrainPhase | null = null;
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log.child({ component: 'reducer' });
  }

  /** Prepares the round of `plan`'s step over its slice. Idempotent for the same step (a retried call). */
  open(plan: StepPlan): void {
    const phase = this.phaseOf(plan, 'OpenStep');
    if (this.find(phase, plan.step) !== undefined) return;
    const floats = plan.slice_hi - plan.slice_lo;
    if (!(Number.isInteger(floats) && floats > 0)) throw new ProtocolError(`OpenStep: expected a slice [lo, hi) with hi > lo, got [${plan.slice_lo}, ${plan.slice_hi})`);
    if (!(plan.chunk_bytes > 0 && plan.chunk_bytes % 4 === 0 && plan.chunk_bytes <= MAX_CHUNK_BYTES)) throw new ProtocolError(`OpenStep: expected chunk_bytes a positive multiple of 4 up to ${MAX_CHUNK_BYTES}, got ${plan.chunk_bytes}`);
    if (this.pool?.chunkFloats !== plan.chunk_bytes / 4) this.pool = new ChunkPool(plan.chunk_bytes / 4);
    if (phase !== this.lastPhase) {
      this.reduced.clear();
      this.rounds = [];
      this.lastPhase = phase;
    }
    const round = new StepRound(phase, plan.step, plan.num_micro_batches, blocksOf(plan), floats, this.pool, plan.slice_lo);
    this.rounds = [...this.rounds, round].slice(-KEEP_ROUNDS);
    this.reduced.put(phase, plan.step, plan.num_micro_batches, round, plan.pullers);
    this.log.debug({ phase, step: plan.step, slice: [plan.slice_lo, plan.slice_hi] }, 'step opened');
  }

  /** Hands what `plan.reassigned_from` owes in `plan`'s step to `plan.blocks`. */
  reassign(plan: StepPlan): void {
    const phase = this.phaseOf(plan, 'Reassign');
    const round = this.find(phase, plan.step);
    if (round === undefined) throw new ProtocolError(`Reassign: ${phase} step ${plan.step} was never opened here`);
    if (round.complete || round.owedBy(plan.reassigned_from).length === 0) return; // already done (a retried call)
    const moved = round.reassign(plan.reassigned_from, blocksOf(plan));
    this.log.info({ phase, step: plan.step, from: plan.reassigned_from, microBatches: moved }, 'micro-batches reassigned');
  }

  /** The round an upload belongs to; ProtocolError naming the steps known when there is none. */
  roundFor(workerId: string, phase: string, step: number): StepRound {
    const what = `upload of ${phase} step ${step} from ${workerId}`;
    if (!isTrainPhase(phase)) throw new ProtocolError(`${what}: expected phase pretrain or finetune, got ${JSON.stringify(phase)}`);
    const round = this.find(phase, step);
    if (round !== undefined) return round;
    const known = this.rounds.map((r) => `${r.phase} step ${r.step}`).join(', ');
    throw new ProtocolError(`${what}: this reducer was not told of that step (known: ${known === '' ? 'none' : known})`);
  }

  /** The newest step opened, for heartbeats. */
  current(): { phase: string; step: number } {
    const r = this.rounds[this.rounds.length - 1];
    return { phase: r?.phase ?? '', step: r?.step ?? 0 };
  }

  private find(phase: TrainPhase, step: number): StepRound | undefined {
    const order = stepOrder(phase, step);
    return this.rounds.find((r) => stepOrder(r.phase, r.step) === order);
  }

  private phaseOf(plan: StepPlan, call: string): TrainPhase {
    if (!isTrainPhase(plan.phase)) throw new ProtocolError(`${call}: expected phase pretrain or finetune, got ${JSON.stringify(plan.phase)}`);
    return plan.phase;
  }
}

function blocksOf(plan: StepPlan): Block[] {
  return plan.blocks.map((b) => ({ workerId: b.worker_id, ranges: b.subtrees, subtrees: b.subtrees }));
}
