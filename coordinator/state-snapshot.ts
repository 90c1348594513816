/**
 * The FetchState payload of a phase: the coordinator replica's flat parameters
 * and AdamW moments (three float32 tensors `params`, `adamw.m`, `adamw.v` of
 * P values each, in the flat layout of the phase's parameter table), with the
 * phase, the steps it has completed and the task seq it includes. A worker
 * that loads it holds a replica byte-identical to the coordinator's. Packing
 * copies once; the packed bytes are cached until the replica changes, so N
 * workers starting a phase cost one copy.
 *
 * Knows nothing of gRPC; the service streams the chunks.
 */
import type { Replica } from '../shared/training/replica.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { StateHeader } from '../shared/wire/messages.js';
import { packTensors } from '../shared/wire/state-payload.js';

export interface PhaseStateView {
  phase: TrainPhase;
  replica: Replica;
  /** Steps applied to `replica` in this phase. */
  step: number;
  /** The seq of the last task whose effect `replica` includes. */
  seq: number;
}

export type PackedState = { header: Omit<StateHeader, 'total_bytes' | 'crc32'>; payload: Uint8Array };

export class StateSnapshots {
  private cached: { phase: TrainPhase; seq: number; packed: PackedState } | null = null;

  constructor(private readonly runId: string) {}

  /** The packed state of `view`; the same object while the replica is unchanged. */
  pack(view: PhaseStateView): PackedState {
    if (this.cached !== null && this.cached.phase === view.phase && this.cached.seq === view.seq) return this.cached.packed;
    const P = view.replica.params.length;
    const { tensors, payload } = packTensors([
      { name: 'params', shape: [P], values: view.replica.params },
      { name: 'adamw.m', shape: [P], values: view.replica.opt.m },
      { name: 'adamw.v', shape: [P], values: view.replica.opt.v },
    ]);
    const header = {
      run_id: this.runId,
      step: view.step,
      phase: view.phase,
      tensors,
      optimizer_json: JSON.stringify({ completedSteps: view.step }),
      seq: view.seq,
    };
    this.cached = { phase: view.phase, seq: view.seq, packed: { header, payload } };
    return this.cached.packed;
  }

  clear(): void {
    this.cached = null;
  }
}
