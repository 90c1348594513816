/**
 * What a registered worker does until told to stop: long-poll the next task;
 * for a training step compute its micro-batches' gradients, upload the
 * subtree partial sums (with per-micro-batch stats), download the reduced
 * gradient and apply the same update as every replica, reporting a checksum
 * when due; for an evaluation compute its chunks and send the results.
 * Whenever its replica is not the one a task needs (a phase start, a late
 * join, a phase change seen in NATS) it fetches the coordinator's state and
 * continues after the seq that state includes.
 *
 * Knows nothing of process signals or NATS connections: it is given a
 * `phase()` reader and an abort signal.
 */
import { checksumDue } from '../shared/cluster/checksum-due.js';
import { encodeIndexedStats, encodeStats } from '../shared/cluster/stats-json.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { ProtocolError, ReplicaMismatchError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { BertConfig } from '../shared/model/config.js';
import type { MicroStats } from '../shared/training/gradients.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { CoordinatorClient } from '../shared/wire/client.js';
import { decodeAssignment, type WorkerTask } from './assignment.js';
import type { PartialSum, WorkerCompute } from './compute.js';
import { fetchReplica, type HeldReplica } from './fetch-state.js';
import { TimingWindow } from './step-timings.js';

export interface LoopOptions {
  workerId: string;
  config: RunConfig;
  bert: BertConfig;
  numLabels: number;
  client: CoordinatorClient;
  compute: WorkerCompute;
  log: Logger;
  signal: AbortSignal;
  /** The run's phase as the control plane last said (null without NATS or before any). */
  phase?: () => string | null;
}

type Train = Extract<WorkerTask, { kind: 'train' }>;
type Eval = Extract<WorkerTask, { kind: 'eval' }>;

/** A NATS run phase -> the replica it uses ('evaluate' runs on the finetuned one). */
const REPLICA_OF: Record<string, TrainPhase | undefined> = { pretrain: 'pretrain', finetune: 'finetune', evaluate: 'finetune' };

export class WorkerLoop {
  private held: HeldReplica | null = null;
  private afterSeq = 0;
  private resyncs = 0;
  private reduced: Float32Array | null = null;
  private readonly timings = new TimingWindow();
  private readonly log: Logger;

  constructor(private readonly o: LoopOptions) {
    this.log = o.log.child({ component: 'worker-loop' });
  }

  /** Steps applied in the current phase (for heartbeats). */
  get step(): number {
    return this.held?.step ?? 0;
  }

  /** Runs until a stop order; returns its reason ('done', or 'failed: ...'). */
  async run(): Promise<string> {
    for (;;) {
      this.o.signal.throwIfAborted();
      await this.followPhase();
      const task = decodeAssignment(await this.o.client.nextAssignment({ worker_id: this.o.workerId, after_seq: this.afterSeq }));
      if (task.kind === 'idle') continue;
      if (task.kind === 'stop') {
        this.log.info({ seq: task.seq, reason: task.reason }, 'stop order received');
        this.held?.replica.releaseTensors();
        return task.reason;
      }
      if (task.kind === 'eval' && task.chunks.length === 0) {
        this.afterSeq = task.seq;
        continue;
      }
      if (this.held === null || this.held.phase !== task.phase || this.held.step !== task.step) {
        await this.resync(task);
        continue;
      }
      this.resyncs = 0;
      const done = task.kind === 'train' ? await this.train(task, this.held) : await this.evaluate(task, this.held);
      if (done) this.afterSeq = task.seq;
    }
  }

  /**
   * Drops a replica whose phase the control plane says is over, and fetches
   * the new one. Only a phase ahead of the replica's counts: a state left
   * behind by an earlier coordinator of a resumed run must not send the
   * worker waiting for a phase that has not started.
   */
  private async followPhase(): Promise<void> {
    const wanted = REPLICA_OF[this.o.phase?.() ?? ''];
    if (wanted === undefined || this.held === null || !(this.held.phase === 'pretrain' && wanted === 'finetune')) return;
    this.log.info({ from: this.held.phase, to: wanted }, 'phase over; dropping its replica');
    await this.fetch(wanted);
  }

  private async resync(task: Train | Eval): Promise<void> {
    if (++this.resyncs > 3) {
      throw new ProtocolError(`cannot resynchronise with the coordinator: task ${task.seq} needs the ${task.phase} replica at step ${task.step}, the state fetched is at ${this.held?.phase} step ${this.held?.step}`);
    }
    await this.fetch(task.phase);
  }

  private async fetch(phase: TrainPhase): Promise<void> {
    this.held?.replica.releaseTensors();
    this.held = null;
    const t0 = performance.now();
    const got = await fetchReplica(this.o.client, { workerId: this.o.workerId, phase }, this.o);
    this.held = got.held;
    this.afterSeq = Math.max(this.afterSeq, got.seq);
    this.log.info({ phase: got.held.phase, step: got.held.step, seq: got.seq, bytes: got.bytes, durationMs: Math.round(performance.now() - t0) }, 'state fetched');
  }

  /** False when the step could not be applied and the replica was dropped (resync next). */
  private async train(task: Train, held: HeldReplica): Promise<boolean> {
    const t0 = performance.now();
    const { partials, stats } = task.micro.length === 0
      ? { partials: [], stats: new Map<number, MicroStats>() }
      : this.o.compute.gradients(held.replica, task.dataset, task.micro, task.subtrees, task.counts);
    const t1 = performance.now();
    const got = await this.exchange(task, held, partials, stats);
    if (got === null) {
      held.replica.releaseTensors();
      this.held = null;
      return false;
    }
    const t3 = performance.now();
    held.replica.applyGradient(got.grad, task.step, held.update);
    held.step = task.step + 1;
    const t4 = performance.now();
    await this.checkReplica(held);
    const sequences = task.micro.reduce((n, m) => n + m.examples.length, 0);
    this.timings.add({
      computeMs: t1 - t0, uploadMs: got.uploadedAt - t1, exchangeMs: t3 - t1, waitMs: got.readyAt - got.uploadedAt,
      downloadMs: t3 - got.readyAt, applyMs: t4 - t3, stepMs: t4 - t0, sequences,
    });
    if (this.timings.size >= this.o.config.logEverySteps || held.step === this.o.config[held.phase].steps) await this.report(held);
    return true;
  }

  /**
   * Uploads this worker's partial sums and downloads the step's reduced
   * gradient. The download is asked for first: the coordinator answers it the
   * moment the step is reduced, with no round trip after the last upload.
   * Null when the gradient is no longer kept (the worker resyncs from the state).
   */
  private async exchange(task: Train, held: HeldReplica, partials: readonly PartialSum[], stats: ReadonlyMap<number, MicroStats>) {
    const { client, workerId } = this.o;
    const total = held.replica.params.length;
    if (this.reduced?.length !== total) this.reduced = new Float32Array(total);
    const into = this.reduced;
    let readyAt = 0;
    const pulling = client.pullReduced({ worker_id: workerId, step: task.step, phase: task.phase }, { into: () => ((readyAt = performance.now()), into) });
    pulling.catch(() => undefined); // awaited below; an upload failure must not leave it unhandled
    for (const p of partials) {
      const indexed = Array.from({ length: p.range.hi - p.range.lo }, (_, k) => ({ index: p.range.lo + k, stats: stats.get(p.range.lo + k)! }));
      await client.pushGradient({ worker_id: workerId, step: task.step, phase: task.phase, range: p.range, stats_json: encodeIndexedStats(indexed) }, p.grad);
    }
    const uploadedAt = performance.now();
    try {
      const grad = await pulling;
      return { grad, uploadedAt, readyAt: Math.max(readyAt, uploadedAt) };
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.log.warn({ err, step: task.step }, 'reduced gradient unavailable; resynchronising from the state');
      return null;
    }
  }

  private async checkReplica(held: HeldReplica): Promise<void> {
    if (!checksumDue(this.o.config, held.phase, held.step)) return;
    const checksum = held.replica.checksum();
    const r = await this.o.client.reportChecksum({ worker_id: this.o.workerId, phase: held.phase, step: held.step, checksum });
    if (!r.match) {
      throw new ReplicaMismatchError(`replica of worker ${this.o.workerId} differs from the coordinator's after ${held.phase} step ${held.step}: expected checksum ${r.reference_checksum}, got ${checksum}`);
    }
  }

  private async report(held: HeldReplica): Promise<void> {
    const window = { phase: held.phase, ...this.timings.take() };
    this.log.info(window, 'worker steps');
    await this.o.client.reportMetrics({ worker_id: this.o.workerId, step: held.step, json: JSON.stringify(window) });
  }

  private async evaluate(task: Eval, held: HeldReplica): Promise<boolean> {
    const results = task.chunks.map((c) => {
      const r = this.o.compute.evaluate(held.replica, task.dataset, c.examples);
      return { index: c.index, stats_json: encodeStats(r.stats), predictions: [...r.predictions] };
    });
    await this.o.client.pushEvalResults({ worker_id: this.o.workerId, seq: task.seq, results });
    this.log.debug({ seq: task.seq, chunks: results.length, dataset: task.dataset }, 'eval chunks sent');
    return true;
  }
}
