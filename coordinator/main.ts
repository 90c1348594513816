/**
 * A coordinator's whole life: connect to NATS and open the run state, serve
 * the Coordinator gRPC service, run the pipeline (pretrain → finetune →
 * evaluate) through the distributed executor, mirror phases, checkpoints and
 * step metrics into the control plane, then tell every worker to stop and
 * release the port and the connection — on success, on error and on abort.
 * `bertfleet coordinator` and `bertfleet cluster` both run this; what they
 * add (flags, data loading, worker processes, progress) stays in cli/.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { RunFingerprints } from '../shared/cluster/fingerprints.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { connectControl, type ControlConnection } from '../shared/control/connect.js';
import type { Logger } from '../shared/log.js';
import type { BertConfig } from '../shared/model/config.js';
import type { RunDatasets } from '../shared/training/batches.js';
import { createServer } from '../shared/wire/grpc.js';
import { CoordinatorService } from './coordinator-service.js';
import { DistributedExecutor } from './distributed-executor.js';
import type { RunOutputs } from './outputs.js';
import { RunControl } from './run-control.js';
import { runKey, runPipeline, type RunInputs, type RunResult } from './run-loop.js';

export interface CoordinatorOptions {
  config: RunConfig;
  bert: BertConfig;
  data: RunDatasets;
  fingerprints: RunFingerprints;
  outputs: RunOutputs;
  resume: boolean;
  log: Logger;
  listen: { host: string; port: number };
  natsServers: string | string[];
  /** Workers to wait for before the first step. */
  expectedWorkers: number;
  /** Called once the gRPC port is bound (the local cluster starts its workers here). */
  onListening?: (address: string, runId: string) => Promise<void> | void;
  onStep?: RunInputs['onStep'];
  /** Aborting stops the run: pending waits reject with the signal's reason. */
  signal?: AbortSignal;
  /** Starts the executor's failure from outside (a worker process died). */
  onExecutor?: (executor: DistributedExecutor) => void;
  natsMaxWaitMs?: number;
}

/** One id per run and output folder: a resumed run keeps it, another folder gets another. */
export function runIdFor(config: RunConfig, bert: BertConfig, data: RunDatasets, outputDir: string): string {
  const dir = createHash('sha256').update(resolve(outputDir)).digest('hex').slice(0, 8);
  return `run-${runKey(config, bert, data.fingerprint)}-${dir}`;
}

export async function runCoordinator(o: CoordinatorOptions): Promise<RunResult> {
  const log = o.log.child({ component: 'coordinator' });
  const runId = runIdFor(o.config, o.bert, o.data, o.outputs.dir);
  const conn: ControlConnection = await connectControl({
    servers: o.natsServers, name: 'coordinator', log: o.log, ...(o.natsMaxWaitMs !== undefined && { maxWaitMs: o.natsMaxWaitMs }),
  });
  try {
    const control = await RunControl.open(conn, { runId, coordinatorId: `${hostname()}-${process.pid}`, log: o.log });
    const executor = new DistributedExecutor({ runId, config: o.config, fingerprints: o.fingerprints, expectedWorkers: o.expectedWorkers, log: o.log, events: control });
    o.onExecutor?.(executor);
    const onAbort = (): void => executor.fail(o.signal!.reason instanceof Error ? o.signal!.reason : new Error(String(o.signal!.reason)));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const server = createServer(new CoordinatorService(executor, { log: o.log }), { log: o.log });
    const port = await server.startServer(o.listen.host, o.listen.port);
    const address = `${o.listen.host}:${port}`;
    log.info({ address, runId, expectedWorkers: o.expectedWorkers }, 'coordinator listening');
    try {
      if (o.signal?.aborted) onAbort();
      await o.onListening?.(address, runId);
      return await runPipeline({
        config: o.config, bert: o.bert, data: o.data, executor, outputs: o.outputs, log: o.log, resume: o.resume,
        ...controlHooks(control, o.onStep),
      });
    } catch (err) {
      executor.fail(err instanceof Error ? err : new Error(String(err)));
      const { step } = executor.currentPhase();
      await control.phase('failed', step, err instanceof Error ? err.message : String(err));
      throw err;
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      await executor.close();
      await server.stop({ graceMs: 2_000 });
      await control.flush();
      log.info({ address }, 'coordinator stopped');
    }
  } finally {
    await closeQuietly(conn, log);
  }
}

/** The run loop's hooks that mirror phases, checkpoints and step metrics into NATS. */
function controlHooks(control: RunControl, onStep: RunInputs['onStep']): Pick<RunInputs, 'onPhase' | 'onCheckpoint' | 'onStep'> {
  return {
    onPhase: (phase, step) => control.phase(phase, step),
    onCheckpoint: (phase, step, dir) => void control.checkpoint(phase, step, dir),
    onStep: (phase, step, total, loss, info) => {
      onStep?.(phase, step, total, loss, info);
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
