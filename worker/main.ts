/**
 * A worker's whole life: connect to the coordinator (retrying, then a clear
 * UnreachableError), ask for the run config, let the caller load the same
 * model, data and backend from it, register with the fingerprints of what was
 * loaded (a mismatch is refused by the coordinator, naming the field), follow
 * the run state in NATS, beat, and run the task loop until a stop order.
 * Everything it opened is closed on every exit path. `bertfleet worker` runs
 * this; flag parsing, backend start-up and data loading stay in cli/.
 */
import { hostname } from 'node:os';
import type { BackendInfo } from '../shared/backend/select.js';
import { runFingerprints } from '../shared/cluster/fingerprints.js';
import { parseRunConfig, type RunConfig } from '../shared/config/run-config.js';
import { connectControl, type ControlConnection } from '../shared/control/connect.js';
import type { RunData } from '../shared/data/run-data.js';
import { ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { BertConfig } from '../shared/model/config.js';
import type { CoordinatorClient } from '../shared/wire/client.js';
import { createCoordinatorClient, type ClientOptions } from '../shared/wire/grpc.js';
import { PROTOCOL_VERSION } from '../shared/wire/messages.js';
import { WorkerCompute } from './compute.js';
import { startHeartbeat } from './heartbeat.js';
import { PhaseFollower } from './phase-follower.js';
import { WorkerLoop } from './worker-loop.js';

export interface WorkerOptions {
  /** `host:port` of the coordinator. */
  coordinator: string;
  natsServers?: string | string[];
  workerId: string;
  log: Logger;
  signal: AbortSignal;
  /** Loads what the run needs from its config: model config, data, backend. */
  setup: (config: RunConfig) => Promise<{ bert: BertConfig; data: RunData; backend: BackendInfo }>;
  client?: Partial<Omit<ClientOptions, 'log'>>;
  natsMaxWaitMs?: number;
}

/** Resolves with the stop reason ('done' or 'failed: ...'). */
export async function runWorker(o: WorkerOptions): Promise<string> {
  const log = o.log.child({ component: 'worker' });
  const client = await createCoordinatorClient(o.coordinator, {
    ...o.client,
    log: o.log,
    timeouts: { longPollTimeoutMs: 600_000, ...o.client?.timeouts },
  });
  let conn: ControlConnection | null = null;
  // Nothing to save on a signal: drop the channel so pending calls end now.
  const onAbort = (): void => client.close();
  o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const { runId, config } = await fetchRunConfig(client, o.workerId);
    const { bert, data, backend } = await o.setup(config);
    const reply = await client.register({ worker_id: o.workerId, ...runFingerprints(bert, data, backend), pid: process.pid, hostname: hostname() });
    log.info({ runId, phase: reply.phase, step: reply.current_step, membershipVersion: reply.membership_version }, 'registered');
    let follower: PhaseFollower | null = null;
    if (o.natsServers !== undefined) {
      conn = await connectControl({ servers: o.natsServers, name: o.workerId, log: o.log, ...(o.natsMaxWaitMs !== undefined && { maxWaitMs: o.natsMaxWaitMs }) });
      follower = await PhaseFollower.start(conn, { runId, log: o.log });
    }
    const lost = new AbortController();
    const loop = new WorkerLoop({
      workerId: o.workerId, config, bert, numLabels: data.datasets.labels.length, client,
      compute: new WorkerCompute(bert, data.datasets), log: o.log, signal: AbortSignal.any([o.signal, lost.signal]),
      phase: () => follower?.phase ?? null,
    });
    const heartbeat = startHeartbeat(client, {
      workerId: o.workerId, intervalMs: reply.heartbeat_interval_ms, log: o.log,
      state: () => ({ step: loop.step, status: 'training' }),
      onLost: (err) => lost.abort(err),
    });
    try {
      const reason = await loop.run();
      log.info({ reason }, 'worker finished');
      return reason;
    } finally {
      heartbeat.stop();
      await follower?.stop();
    }
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    client.close();
    if (conn !== null && (await conn.closeWithin(2_000)) !== 'drained') log.warn('nats connection closed without draining');
  }
}

async function fetchRunConfig(client: CoordinatorClient, workerId: string): Promise<{ runId: string; config: RunConfig }> {
  const reply = await client.getRunConfig({ worker_id: workerId, protocol_version: PROTOCOL_VERSION });
  let raw: unknown;
  try {
    raw = JSON.parse(reply.run_config_json);
  } catch (err) {
    throw new ProtocolError(`run config from the coordinator is not JSON`, { cause: err });
  }
  return { runId: reply.run_id, config: parseRunConfig(raw, `run config of ${reply.run_id} from the coordinator`) };
}
