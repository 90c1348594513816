/**
 * A worker's replica state for a phase, from the coordinator (FetchState):
 * the flat parameters and AdamW moments, byte for byte, with the steps they
 * include and the task seq to continue after. Used at each phase start, by a
 * worker joining late, and to resynchronise. The size the coordinator
 * announces is checked against the phase's parameter layout (3 x P float32)
 * before the payload buffer is allocated (ProtocolError, expected vs got), so
 * a peer cannot make the worker allocate more than the run needs; the
 * lengths are checked again when the replica is built (ShapeError).
 *
 * Knows nothing of gRPC beyond the typed client.
 */
import { ProtocolError } from '../shared/errors.js';
import { isTrainPhase, type TrainPhase } from '../shared/training/phase-settings.js';
import type { CoordinatorClient } from '../shared/wire/client.js';
import type { StateHeader } from '../shared/wire/messages.js';
import type { ReplicaState } from './compute-port.js';

export interface FetchedState {
  state: ReplicaState;
  /** The last task seq the state includes. */
  seq: number;
  bytes: number;
}

/** The typed client's call, or the same wrapped in the link's retries. */
export type StateSource = Pick<CoordinatorClient, 'fetchState'>;

/** The bytes a state of `phase` must have: params, adamw.m, adamw.v, P float32 each. */
export function stateBytes(paramCount: number): number {
  return 3 * paramCount * 4;
}

export async function fetchState(
  client: StateSource,
  req: { workerId: string; phase: TrainPhase | '' },
  paramCount: (phase: TrainPhase) => number,
): Promise<FetchedState> {
  const expectedBytes = (h: StateHeader): number => {
    if (!isTrainPhase(h.phase)) throw new ProtocolError(`FetchState: expected phase pretrain or finetune, got ${JSON.stringify(h.phase.slice(0, 40))}`);
    return stateBytes(paramCount(h.phase));
  };
  const { header, tensors } = await client.fetchState({ worker_id: req.workerId, phase: req.phase }, { expectedBytes });
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
