/**
 * A worker's replica for a phase, built from the coordinator's state
 * (FetchState): the flat parameters and AdamW moments, byte for byte, in the
 * layout of the phase's parameter table, with the steps they include and the
 * task seq to continue after. Used at each phase start, by a worker joining
 * late, and to resynchronise.
 *
 * Knows nothing of gRPC beyond the typed client.
 */
import type { RunConfig } from '../shared/config/run-config.js';
import { ProtocolError } from '../shared/errors.js';
import type { BertConfig } from '../shared/model/config.js';
import { isTrainPhase, phaseSpecs, updateSettings, type TrainPhase } from '../shared/training/phase-settings.js';
import { Replica, type UpdateSettings } from '../shared/training/replica.js';
import type { CoordinatorClient } from '../shared/wire/client.js';

export interface HeldReplica {
  phase: TrainPhase;
  /** Steps of the phase applied to `replica`. */
  step: number;
  replica: Replica;
  update: UpdateSettings;
}

export interface FetchedState {
  held: HeldReplica;
  /** The last task seq the state includes. */
  seq: number;
  bytes: number;
}

export async function fetchReplica(
  client: CoordinatorClient,
  req: { workerId: string; phase: TrainPhase | '' },
  model: { config: RunConfig; bert: BertConfig; numLabels: number },
): Promise<FetchedState> {
  const { header, tensors } = await client.fetchState({ worker_id: req.workerId, phase: req.phase });
  if (!isTrainPhase(header.phase)) throw new ProtocolError(`FetchState: expected phase pretrain or finetune, got ${JSON.stringify(header.phase)}`);
  const get = (name: string): Float32Array => {
    const t = tensors.get(name);
    if (t === undefined) throw new ProtocolError(`FetchState: expected tensor ${name}, got only ${[...tensors.keys()].join(', ')}`);
    return t.values;
  };
  const specs = phaseSpecs(model.bert, header.phase, model.numLabels);
  // The Replica constructor checks every length against the phase's layout (ShapeError).
  const replica = new Replica(specs, get('params'), { m: get('adamw.m'), v: get('adamw.v') });
  return {
    held: { phase: header.phase, step: header.step, replica, update: updateSettings(model.config, header.phase) },
    seq: header.seq,
    bytes: header.total_bytes,
  };
}
