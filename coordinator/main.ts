/**
 * A coordinator's whole life: lock the output folder, connect to NATS, take
 * the run's lease (coordinator/ownership.ts, shared/control/lease.ts; losing
 * it, or a run-state write failing past its deadline, fails the run), create
 * the output folder's run config and open the run state, serve
 * the Coordinator gRPC service, run the pipeline (pretrain → finetune →
 * evaluate) through the distributed executor, mirror phases, checkpoints and
 * step metrics into the control plane, then tell every worker to stop and
 * release the port and the connection — on success, on error and on abort.
 * With `whenDone: 'stay'` a finished run (or one found finished on resume)
 * keeps the health port (ready) and the gRPC port up, the latter refusing
 * every call with RunFinishedError, until the signal aborts: a StatefulSet
 * restarts any process that exits, so a coordinator that exited after its
 * run would be started again and again. The coordinator loads no tensor
 * backend: workers must match the run's compute fingerprint, pinned by the
 * first admitted or by the resumed trainer state (compute-fingerprint.ts),
 * which is why a resume reads its state before serving.
 * With TLS material the gRPC service speaks mTLS (workers' certificates bind
 * their ids) and the coordinator reaches the reducers with its own
 * certificate; NATS credentials and TLS are passed through to connectControl.
 * `bertfleet coordinator` and `bertfleet cluster` both run this; what they
 * add (flags, data loading, worker processes, progress) stays in cli/.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import type { RunInputFingerprints } from '../shared/cluster/fingerprints.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { connectControl, type ControlConnectOptions, type ControlConnection } from '../shared/control/connect.js';
import { RunLease } from '../shared/control/lease.js';
import type { Logger } from '../shared/log.js';
import type { OwnerIdentity } from '../shared/owner-identity.js';
import type { TlsMaterial } from '../shared/security/tls-material.js';
import type { BertConfig } from '../shared/model/config.js';
import type { RunDatasets } from '../shared/training/batches.js';
import { createServer, type CoordinatorServer } from '../shared/wire/grpc.js';
import { pinFromState } from './compute-fingerprint.js';
import { CoordinatorService } from './coordinator-service.js';
import { FinishableService } from './finished-service.js';
import { connectReducers } from './remote-reducers.js';
import { DistributedExecutor } from './distributed-executor.js';
import { startCoordinatorHealth, type CoordinatorHealth } from './health-port.js';
import type { RunListener } from './run-listener.js';
import type { RunOutputs } from './outputs.js';
import { coordinatorIdentity, OutputLock } from './ownership.js';
import { RunControl } from './run-control.js';
import type { RunEvents } from './run-events.js';
import { loadRunResumePoint, runKey, runPipeline, type RunInputs, type RunResult } from './run-loop.js';
import { WorkerTally } from './worker-tally.js';

export interface CoordinatorOptions {
  config: RunConfig;
  bert: BertConfig;
  data: RunDatasets;
  /** What a worker's inputs must match; its backend must match the run's compute fingerprint instead. */
  fingerprints: RunInputFingerprints;
  outputs: RunOutputs;
  resume: boolean;
  /**
   * The resume changed `backend` or `blasThreads` (the resume policy allows
   * it, with a warning): the trainer state's compute fingerprint is not
   * kept, the first worker admitted pins a new one.
   */
  computeSettingsChanged?: boolean;
  /**
   * After a finished run: 'exit' (default) closes everything and returns;
   * 'stay' calls `onFinished`, then keeps serving (health port ready, gRPC
   * refusing every call with RunFinishedError, "run finished") until
   * `signal` aborts, then closes and returns. A failed run throws either way.
   */
  whenDone?: 'exit' | 'stay';
  /** With whenDone 'stay': told the result once the run is finished, before staying up (the CLI's summary and report). */
  onFinished?: (result: RunResult) => Promise<void>;
  log: Logger;
  listen: { host: string; port: number };
  /** The plain-HTTP health port (/healthz, /readyz, /metrics; coordinator/health-port.ts); absent: none. */
  health?: { host: string; port: number };
  natsServers: string | string[];
  /** Workers to wait for before the first step. */
  expectedWorkers: number;
  onStep?: RunInputs['onStep'];
  /** Evaluation progress (chunks of a split done), for the CLI's bar. */
  onEval?: RunInputs['onEval'];
  /** The run's event hub (the dashboard reads it): steps, phases, membership, worker timings, evaluations, checkpoints. */
  events?: RunEvents;
  /** Aborting stops the run: pending waits reject with the signal's reason. */
  signal?: AbortSignal;
  natsMaxWaitMs?: number;
  /** `--reducers K`: the addresses of reducers 1 .. K-1 (`bertfleet reducer` processes). */
  reducerAddresses?: readonly string[];
  /**
   * The coordinator's certificate (role coordinator), its key and the CA:
   * the gRPC service requires client certificates from that CA, and the
   * reducers are reached with it. null: plaintext (`--insecure` only).
   */
  tls: TlsMaterial | null;
  /** NATS credentials file of the coordinator role (shared/control/nats-auth.ts); absent: none. */
  natsCredentialsFile?: string;
  /** TLS to nats-server: CA, certificate and key, as PEM (a TlsMaterial fits). */
  natsTls?: ControlConnectOptions['tls'];
}

/** One id per run and output folder: a resumed run keeps it, another folder gets another. */
export function runIdFor(config: RunConfig, bert: BertConfig, data: RunDatasets, outputDir: string): string {
  const dir = createHash('sha256').update(resolve(outputDir)).digest('hex').slice(0, 8);
  return `run-${runKey(config, bert, data.fingerprint)}-${dir}`;
}

/**
 * One owner per folder and per run: the output folder is locked before
 * anything is written to it, then the run's lease is taken in NATS; a
 * coordinator refused by either throws OutputLockedError / RunOwnedError
 * naming the owner, having written nothing. Both are released on every exit.
 */
export async function runCoordinator(o: CoordinatorOptions): Promise<RunResult> {
  if (o.whenDone === 'stay' && o.signal === undefined) throw new TypeError("whenDone 'stay' needs a signal to end the stay");
  const runId = runIdFor(o.config, o.bert, o.data, o.outputs.dir);
  const owner = coordinatorIdentity();
  const lock = OutputLock.acquire(o.outputs.dir, { owner, runId, log: o.log });
  let health: CoordinatorHealth | null = null;
  // The gRPC server runLocked leaves up for --when-done stay: stopped here, whatever happens after.
  const kept: { server: CoordinatorServer | null } = { server: null };
  try {
    health = await startCoordinatorHealth(o.health, runId, o.log);
    const result = await runLocked(o, runId, owner, health, kept);
    if (kept.server !== null) await stayUp(o, result, health);
    return result;
  } finally {
    await kept.server?.stop({ graceMs: 2_000 });
    await health?.close();
    lock.release();
  }
}

/**
 * --when-done stay: the run is finished, its lease released and its NATS
 * connection closed; the output folder stays locked, the health port says
 * ready and the gRPC port refuses every call as "run finished", until the
 * signal (SIGTERM) aborts.
 */
async function stayUp(o: CoordinatorOptions, result: RunResult, health: CoordinatorHealth): Promise<void> {
  await o.onFinished?.(result);
  health.readiness.set(true, 'run finished; serving its results (--when-done stay)');
  o.log.child({ component: 'coordinator' }).info({ output: o.outputs.dir, listen: `${o.listen.host}:${o.listen.port}` }, 'run finished; staying up (--when-done stay)');
  const signal = o.signal!;
  if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** The run itself; with --when-done stay a finished run's gRPC server is left up in `kept` (the caller stops it). */
async function runLocked(o: CoordinatorOptions, runId: string, owner: OwnerIdentity, health: CoordinatorHealth, kept: { server: CoordinatorServer | null }): Promise<RunResult> {
  const log = o.log.child({ component: 'coordinator' });
  const conn: ControlConnection = await connectControl({
    servers: o.natsServers, name: 'coordinator', log: o.log, ...(o.natsMaxWaitMs !== undefined && { maxWaitMs: o.natsMaxWaitMs }),
    ...(o.natsCredentialsFile !== undefined && { credentialsFile: o.natsCredentialsFile }),
    ...(o.natsTls !== undefined && { tls: o.natsTls }),
  });
  const settings = o.config.cluster;
  let lease: RunLease | null = null;
  const closers: (() => void)[] = [];
  try {
    lease = await RunLease.acquire(conn, { runId, ownerId: owner.owner_id, hostname: owner.hostname, pid: owner.pid, ttlMs: settings.leaseTtlMs, log: o.log });
    if (!o.resume) o.outputs.create(o.config);
    // Read before any worker is served: the trainer state names the compute fingerprint workers must have.
    const resumePoint = o.resume ? loadRunResumePoint({ bert: o.bert, data: o.data, outputs: o.outputs, log: o.log }) : null;
    const pinnedCompute = pinFromState(resumePoint, { settingsChanged: o.computeSettingsChanged === true }, o.log);
    const control = await RunControl.open(conn, {
      runId, coordinatorId: owner.owner_id, log: o.log, writeTimeoutMs: settings.runStateWriteTimeoutMs, onFatal: (err) => executor.fail(err),
    });
    const remote = await connectReducers(o.reducerAddresses ?? [], { log: o.log, tls: o.tls });
    closers.push(remote.close);
    const executor = new DistributedExecutor({
      runId, config: o.config, fingerprints: o.fingerprints, pinnedCompute, expectedWorkers: o.expectedWorkers, resumed: o.resume, log: o.log, events: control, reducers: remote.reducers,
    });
    health.metrics.watch({ members: () => executor.membership.active(), audits: executor.audits, fatal: () => executor.fatal });
    // Who watches the run: the Prometheus metrics, and the dashboard's event hub when there is one.
    const listeners: RunListener[] = [health.metrics, ...(o.events ? [o.events] : [])];
    executor.membership.onChange((c) => {
      const members = executor.membership.active().length;
      for (const l of listeners) l.membership(c, members);
    });
    lease.onLost((err) => {
      health.readiness.set(false, 'run lease lost');
      control.seal(err);
      executor.fail(err);
    });
    const onAbort = (): void => executor.fail(o.signal!.reason instanceof Error ? o.signal!.reason : new Error(String(o.signal!.reason)));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    // Per-worker totals for run-summary.json; it passes every observation on to the metrics.
    const tally = new WorkerTally(o.events?.observer(health.metrics) ?? health.metrics);
    const service = new FinishableService(new CoordinatorService(executor, { log: o.log, observer: tally }), o.log);
    const server = createServer(service, { log: o.log, tls: o.tls });
    const port = await server.startServer(o.listen.host, o.listen.port);
    const address = `${o.listen.host}:${port}`;
    log.info({ address, runId, expectedWorkers: o.expectedWorkers, tls: o.tls !== null }, 'coordinator listening');
    if (lease.lost === null) health.readiness.set(true, 'serving gRPC under the run lease');
    let result: RunResult;
    let staying = false;
    try {
      if (o.signal?.aborted) onAbort();
      result = await runPipeline({
        config: o.config, bert: o.bert, data: o.data, executor, outputs: o.outputs, log: o.log, resume: o.resume, resumePoint,
        computeFingerprint: () => executor.compute.value,
        ...(o.signal && { signal: o.signal }),
        ...controlHooks(control, o.onStep, listeners),
        ...(o.onEval && { onEval: o.onEval }),
        ...(o.events && { onEvaluated: (split: string, m: object) => o.events!.evaluated(split, m) }),
        workerStats: () => tally.report(),
      });
      staying = o.whenDone === 'stay';
    } catch (err) {
      executor.fail(err instanceof Error ? err : new Error(String(err)));
      health.readiness.set(false, o.signal?.aborted === true ? 'stopping' : 'run failed');
      if (o.signal?.aborted !== true) health.metrics.phase('failed');
      // Stopped on purpose (SIGTERM, Ctrl-C): the run is resumable, not failed.
      if (o.signal?.aborted !== true) {
        const { step } = executor.currentPhase();
        await control.phase('failed', step, err instanceof Error ? err.message : String(err));
      }
      throw err;
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      if (health.readiness.get().ready && !staying) health.readiness.set(false, 'stopping');
      // On a signal, workers are told 'stopping': they wait for a coordinator to come back (or are stopped themselves).
      await (o.signal?.aborted === true ? executor.close(500, 'stopping') : executor.close());
      // Staying: the port stays, and a worker that calls now hears "run finished" (its stop order was 'done').
      if (staying) {
        service.finish(runId);
        kept.server = server;
      } else {
        await server.stop({ graceMs: 2_000 });
      }
      await control.flush();
      log.info({ address, staying }, staying ? 'run over; gRPC now refuses every call as "run finished"' : 'coordinator stopped');
    }
    return result;
  } finally {
    for (const close of closers) close();
    await lease?.release();
    await closeQuietly(conn, log);
  }
}

/** The run loop's hooks: told to the listeners, and phases, checkpoints and step metrics mirrored into NATS. */
function controlHooks(control: RunControl, onStep: RunInputs['onStep'], listeners: readonly RunListener[]): Pick<RunInputs, 'onPhase' | 'onCheckpoint' | 'onStep'> {
  return {
    onPhase: (phase, step) => {
      for (const l of listeners) l.phase(phase, step);
      return control.phase(phase, step);
    },
    onCheckpoint: (phase, step, dir) => {
      for (const l of listeners) l.checkpoint(phase, step, dir);
      void control.checkpoint(phase, step, dir);
    },
    onStep: (phase, step, total, loss, info) => {
      onStep?.(phase, step, total, loss, info);
      for (const l of listeners) l.step(phase, step, total, loss, info);
      control.stepMetrics({
        phase: phase as 'pretrain' | 'finetune', step, loss, lr: info.lr,
        seq_per_sec: info.durationMs > 0 ? (1000 * info.sequences) / info.durationMs : 0, duration_ms: info.durationMs,
      });
    },
  };
}

/** Drains the NATS connection, but never hangs shutdown on a server already gone. */
async function closeQuietly(conn: ControlConnection, log: Logger): Promise<void> {
  if ((await conn.closeWithin(3_000)) !== 'drained') log.warn({ timeoutMs: 3_000 }, 'nats connection closed without draining');
}
