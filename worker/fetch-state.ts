/**
 * A worker's replica state for a phase, from the coordinator (FetchState):
 * the flat parameters and AdamW moments, byte for byte, with the steps they
 * include and the task seq to continue after. Used at each phase start, by a
 * worker joining late, and to resynchronise. The lengths are checked against
 * the phase's parameter layout when the replica is built (ShapeError).
 *
 * Knows nothing of gRPC beyond the typed client.
 */
import { ProtocolError } from '../shared/errors.js';
import { isTrainPhase, type TrainPhase } from '../shared/training/phase-settings.js';
import type { CoordinatorClient } from '../shared/wire/client.js';
import type { ReplicaState } from './compute-port.js';

export interface FetchedState {
  state: ReplicaState;
  /** The last task seq the state includes. */
  seq: number;
  bytes: number;
}

export async function fetchState(client: Pick<CoordinatorClient, 'fetchState'>, req: { workerId: string; phase: TrainPhase | '' }): Promise<FetchedState> {
  const { header, tensors } = await client.fetchState({ worker_id: req.workerId, phase: req.phase });
  if (!isTrainPhase(header.phase)) throw new ProtocolError(`FetchState: expected phase pretrain or finetune, got ${JSON.stringify(header.phase)}`);
  const get = (name: string): Float32Array => {
    const t = tensors.get(name);
    if (t === undefined) throw new ProtocolError(`FetchState: expected tensor ${name}, got only ${[...tensors.keys()].join(', ')}`);
    // Views into one payload: give each its own buffer, so each can be transferred to the compute thread.
    const v = t.values;
    return v.byteOffset === 0 && v.byteLength === v.buffer.byteLength ? v : v.slice();
  };
  return {
    state: { phase: header.phase, step: header.step, params: get('params'), m: get('adamw.m'), v: get('adamw.v') },
    seq: header.seq,
    bytes: header.total_bytes,
  };
}
