/**
 * The coordinator's clients of the reducer processes of `--reducers K`: one
 * gRPC connection pair per reducer address (createCoordinatorClient), seen by
 * the executor as RemoteReducer. A reducer that cannot be reached stops the
 * run with the error naming it (reducers are not replaced during a run; the
 * run resumes from its last checkpoint). With TLS the coordinator presents
 * its own certificate and accepts only reducer certificates.
 */
import type { Logger } from '../shared/log.js';
import type { TlsMaterial } from '../shared/security/tls-material.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { CoordinatorClient } from '../shared/wire/client.js';
import { createCoordinatorClient } from '../shared/wire/grpc.js';
import type { StepPlan } from '../shared/wire/messages.js';
import type { RemoteReducer } from './distributed-executor.js';

export async function connectReducers(
  addresses: readonly string[],
  o: { log: Logger; tls: TlsMaterial | null },
): Promise<{ reducers: RemoteReducer[]; close: () => void }> {
  const log = o.log;
  const clients: CoordinatorClient[] = [];
  try {
    for (const address of addresses) clients.push(await createCoordinatorClient(address, { log, tls: o.tls, serverRole: 'reducer' }));
  } catch (err) {
    for (const c of clients) c.close();
    throw err;
  }
  const reducers = clients.map((c): RemoteReducer => ({
    address: c.address,
    openStep: (plan: StepPlan) => c.openStep(plan),
    reassign: (plan: StepPlan) => c.reassign(plan),
    pull: async (phase: TrainPhase, step: number, into: Float32Array) => {
      await c.pullReduced({ worker_id: 'coordinator', step, phase }, { into });
    },
  }));
  log.info({ reducers: addresses }, 'reducers connected');
  return { reducers, close: () => clients.forEach((c) => c.close()) };
}
