/**
 * A worker's whole life: connect to the coordinator (retrying, then a clear
 * UnreachableError), ask for the run config, let the caller start the
 * compute (backend, model, data: in a thread of its own) from it, register
 * with the fingerprints of what was loaded (a mismatch is refused by the
 * coordinator, naming the field), follow the run state in NATS, beat, and run
 * the task loop. When the coordinator forgets it (it was marked left, or the
 * coordinator restarted) it registers again and resynchronises; when the
 * coordinator stops without finishing (`stopping`) it waits for it to come
 * back (cluster.reconnectTimeoutMs). It ends on a stop order, on a drain
 * (SIGTERM: `drained`), on a coordinator that says the run is finished
 * (RunFinishedError, from one kept up by --when-done stay: `done`, never
 * retried), or on an error. Everything it opened is closed on every exit
 * path; with `whenDone: 'stay'` a run that ended `done` then leaves the
 * process idle (health port alive, not ready) until SIGTERM. With TLS material it speaks mTLS to the coordinator and
 * the reducers with its own worker certificate, and accepts only their
 * certificates. `bertfleet worker` runs this; flag parsing and the
 * compute's start-up stay in cli/.
 */
import { hostname } from 'node:os';
import type { RunFingerprints } from '../shared/cluster/fingerprints.js';
import { parseRunConfig, type RunConfig } from '../shared/config/run-config.js';
import { connectControl, type ControlConnectOptions, type ControlConnection } from '../shared/control/connect.js';
import { NotRegisteredError, ProtocolError, RunFinishedError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TlsMaterial } from '../shared/security/tls-material.js';
import type { CoordinatorClient } from '../shared/wire/client.js';
import { createCoordinatorClient, type ClientOptions } from '../shared/wire/grpc.js';
import { PROTOCOL_VERSION } from '../shared/wire/messages.js';
import type { ReplicaCompute } from './compute-port.js';
import { CoordinatorLink } from './coordinator-link.js';
import { WorkerHealth } from './health-port.js';
import { startHeartbeat } from './heartbeat.js';
import { PhaseFollower } from './phase-follower.js';
import { WorkerLoop } from './worker-loop.js';

export interface StartedCompute {
  compute: ReplicaCompute;
  fingerprints: RunFingerprints;
  close(): Promise<void>;
}

export interface WorkerOptions {
  /** `host:port` of the coordinator. */
  coordinator: string;
  natsServers?: string | string[];
  workerId: string;
  log: Logger;
  /** Aborted: stop now (SIGINT). */
  signal: AbortSignal;
  /** Aborted: finish the share in hand, leave the run (`drained`), return (SIGTERM). */
  drain?: AbortSignal;
  /** Starts what the run needs from its config: backend, model, data, replica. */
  setup: (config: RunConfig) => Promise<StartedCompute>;
  client?: Partial<Omit<ClientOptions, 'log' | 'tls' | 'serverRole'>>;
  natsMaxWaitMs?: number;
  /**
   * This worker's certificate (naming `workerId`), its key and the CA the
   * coordinator's and reducers' certificates must chain to. null: plaintext
   * (`--insecure` only).
   */
  tls: TlsMaterial | null;
  /** NATS credentials file of the worker role (shared/control/nats-auth.ts); absent: none. */
  natsCredentialsFile?: string;
  /** TLS to nats-server: CA, certificate and key, as PEM (a TlsMaterial fits). */
  natsTls?: ControlConnectOptions['tls'];
  /** The plain-HTTP health port (/healthz, /readyz, /metrics; worker/health-port.ts); absent: none. */
  health?: { host: string; port: number };
  /**
   * After a run that ended 'done': 'exit' (default) returns at once; 'stay'
   * stays idle (health port alive, /readyz 503) until `drain` or `signal`
   * aborts (SIGTERM, SIGINT), then returns 'done'.
   */
  whenDone?: 'exit' | 'stay';
}

/** Resolves with the end: 'done', 'drained', or 'failed: ...'; the health port (if any) serves throughout. */
export async function runWorker(o: WorkerOptions): Promise<string> {
  const health = await WorkerHealth.start(o.health, o.log);
  try {
    const end = await runObserved(o, health);
    if (end === 'done' && o.whenDone === 'stay') await stayIdle(o, health);
    return end;
  } finally {
    health.state('stopped');
    await health.close();
  }
}

/** --when-done stay: the compute, NATS and the coordinator's channel are closed; only the health port is left, until a signal. */
async function stayIdle(o: WorkerOptions, health: WorkerHealth): Promise<void> {
  health.state('finished');
  o.log.child({ component: 'worker' }).info({ coordinator: o.coordinator }, 'run finished; staying up (--when-done stay)');
  const until = o.drain === undefined ? o.signal : AbortSignal.any([o.signal, o.drain]);
  if (!until.aborted) await new Promise<void>((resolve) => until.addEventListener('abort', () => resolve(), { once: true }));
}

/** The coordinator says the run is finished: the worker's end is 'done', told once in the log. */
function runFinished(log: Logger, err: RunFinishedError, when: string): string {
  log.info({ when, reason: err.message }, 'the run is finished; nothing to do');
  return 'done';
}

/** Resolves with the end: 'done', 'drained', or 'failed: ...'. */
async function runObserved(o: WorkerOptions, health: WorkerHealth): Promise<string> {
  const log = o.log.child({ component: 'worker' });
  const client = await createCoordinatorClient(o.coordinator, {
    ...o.client,
    log: o.log,
    tls: o.tls,
    serverRole: 'coordinator',
    timeouts: { longPollTimeoutMs: 600_000, ...o.client?.timeouts },
  });
  let conn: ControlConnection | null = null;
  let follower: PhaseFollower | null = null;
  let compute: StartedCompute | null = null;
  // Nothing to save on a hard stop: drop the channel so pending calls end now.
  /** Clients of the reducer processes of `--reducers K`, by address (kept across sessions). */
  const reducerClients = new Map<string, CoordinatorClient>();
  const onAbort = (): void => {
    client.close();
    for (const c of reducerClients.values()) c.close();
  };
  o.signal.addEventListener('abort', onAbort, { once: true });
  const drain = o.drain ?? new AbortController().signal;
  if (drain.aborted) health.state('draining');
  else drain.addEventListener('abort', () => health.state('draining'), { once: true });
  try {
    // Before the run config arrives, the reconnect limit is the default one.
    const first = new CoordinatorLink(client, { reconnectTimeoutMs: parseRunConfig({}).cluster.reconnectTimeoutMs, log: o.log, signal: o.signal });
    let fetched: { runId: string; config: RunConfig };
    try {
      fetched = await fetchRunConfig(first, o.workerId);
    } catch (err) {
      if (err instanceof RunFinishedError) return runFinished(log, err, 'asking for the run config');
      throw err;
    }
    const { runId, config } = fetched;
    health.state('loading');
    // The run state in NATS says the run is over (done or failed): stop waiting for a coordinator.
    const over = new AbortController();
    const stop = AbortSignal.any([o.signal, over.signal]);
    const link = new CoordinatorLink(client, { reconnectTimeoutMs: config.cluster.reconnectTimeoutMs, log: o.log, signal: stop });
    compute = await o.setup(config);
    if (o.natsServers !== undefined) {
      conn = await connectControl({
        servers: o.natsServers, name: o.workerId, log: o.log, ...(o.natsMaxWaitMs !== undefined && { maxWaitMs: o.natsMaxWaitMs }),
        ...(o.natsCredentialsFile !== undefined && { credentialsFile: o.natsCredentialsFile }),
        ...(o.natsTls !== undefined && { tls: o.natsTls }),
      });
      follower = await PhaseFollower.start(conn, {
        runId, log: o.log,
        onChange: (phase) => {
          if (phase === 'done' || phase === 'failed') over.abort(new RunOverError(phase));
        },
      });
    }
    const ended = (): string | null => {
      const reason = over.signal.reason as RunOverError | undefined;
      return over.signal.aborted && !o.signal.aborted ? (reason?.phase === 'done' ? 'done' : 'failed: the run state in NATS says failed') : null;
    };
    for (let session = 0; ; session++) {
      if (session > 0) {
        let again: { runId: string; config: RunConfig };
        try {
          again = await fetchRunConfig(link, o.workerId);
        } catch (err) {
          if (err instanceof RunFinishedError) return runFinished(log, err, 'asking for the run config again');
          if (ended() === null) throw err;
          return ended()!;
        }
        if (again.runId !== runId) {
          throw new ProtocolError(`the coordinator at ${o.coordinator} now runs ${again.runId}, but this worker joined ${runId}: start a new worker for the new run`);
        }
      }
      if (drain.aborted) return 'drained';
      let reply;
      health.state('registering');
      try {
        reply = await link.register({ worker_id: o.workerId, ...compute.fingerprints, pid: process.pid, hostname: hostname() });
      } catch (err) {
        if (err instanceof RunFinishedError) return runFinished(log, err, 'registering');
        const why = ended();
        if (why === null) throw err;
        log.info({ reason: why }, 'the run is over; not registering');
        return why;
      }
      log.info({ runId, phase: reply.phase, step: reply.current_step, membershipVersion: reply.membership_version, session }, 'registered');
      health.state('training');
      const lost = new AbortController();
      const reducers: CoordinatorLink[] = [];
      for (const address of reply.reducer_addresses) {
        let c = reducerClients.get(address);
        if (c === undefined) {
          c = await createCoordinatorClient(address, {
            ...o.client, log: o.log, tls: o.tls, serverRole: 'reducer', timeouts: { longPollTimeoutMs: 600_000, ...o.client?.timeouts },
          });
          reducerClients.set(address, c);
        }
        reducers.push(new CoordinatorLink(c, { reconnectTimeoutMs: config.cluster.reconnectTimeoutMs, log: o.log, signal: stop }));
      }
      if (reducers.length > 0) log.info({ reducers: reply.reducer_addresses }, 'gradients go to the coordinator and the reducers, one slice each');
      const loop = new WorkerLoop({
        workerId: o.workerId, config, link, reducers, compute: compute.compute, log: o.log,
        // Not `stop`: a healthy session ends with the stop order; `over` only cuts retries of a coordinator gone for good.
        signal: AbortSignal.any([o.signal, lost.signal]), drain, phase: () => follower?.phase ?? null, observer: health.metrics,
      });
      const heartbeat = startHeartbeat(link, {
        workerId: o.workerId, intervalMs: reply.heartbeat_interval_ms, log: o.log,
        state: () => ({ step: loop.step, status: drain.aborted ? 'draining' : 'training' }),
        onLost: (err) => lost.abort(err),
      });
      let end;
      try {
        end = await loop.run();
      } catch (err) {
        if (o.signal.aborted) throw err;
        if (err instanceof RunFinishedError) return runFinished(log, err, 'training');
        const why = ended();
        if (why !== null) {
          log.info({ reason: why }, 'the run is over (run state in NATS)');
          return why;
        }
        const cause = lost.signal.aborted ? lost.signal.reason : err;
        if (!(cause instanceof NotRegisteredError)) throw err;
        log.warn({ err: cause }, 'registration lost; registering again');
        await compute.compute.drop();
        continue;
      } finally {
        heartbeat.stop();
      }
      if (end.kind === 'drained') return 'drained';
      if (end.reason !== 'stopping') {
        log.info({ reason: end.reason }, 'worker finished');
        return end.reason;
      }
      log.info({ reconnectTimeoutMs: config.cluster.reconnectTimeoutMs }, 'coordinator stopping; waiting for it to come back');
      health.state('waiting');
      await new Promise((r) => setTimeout(r, 1_000));
      const why = ended();
      if (why !== null) return why;
    }
  } finally {
    o.signal.removeEventListener('abort', onAbort);
    await follower?.stop();
    await compute?.close();
    client.close();
    for (const c of reducerClients.values()) c.close();
    if (conn !== null && (await conn.closeWithin(2_000)) !== 'drained') log.warn('nats connection closed without draining');
  }
}

/** The run state says the run is over. */
class RunOverError extends Error {
  override readonly name = 'RunOverError';
  constructor(readonly phase: 'done' | 'failed') {
    super(`the run is ${phase} (run state in NATS)`);
  }
}

async function fetchRunConfig(link: CoordinatorLink, workerId: string): Promise<{ runId: string; config: RunConfig }> {
  const reply = await link.getRunConfig({ worker_id: workerId, protocol_version: PROTOCOL_VERSION });
  let raw: unknown;
  try {
    raw = JSON.parse(reply.run_config_json);
  } catch (err) {
    throw new ProtocolError(`run config from the coordinator is not JSON`, { cause: err });
  }
  return { runId: reply.run_id, config: parseRunConfig(raw, `run config of ${reply.run_id} from the coordinator`) };
}
