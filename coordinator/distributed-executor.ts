/**
 * The StepExecutor of a distributed run: the run loop hands it a step, it
 * cuts the step's micro-batches into contiguous blocks over the live workers
 * (sorted by id), publishes the task for their long-polls, collects the
 * subtree partial sums, finishes the fixed-order tree sum and keeps the
 * reduced gradient for every worker to pull. Once they have it (or after a
 * grace period) the run loop applies it to the coordinator's replica, as each
 * worker does to its own; every `checksumEverySteps` they compare checksums.
 * Evaluations are spread the same way. The gRPC service (coordinator-service.ts) is the workers' door into
 * this state; a worker that falls silent is marked left by a heartbeat sweep.
 *
 * Knows nothing of gRPC or NATS: joins and leaves go to `events`.
 */
import { checksumDue } from '../shared/cluster/checksum-due.js';
import type { RunFingerprints } from '../shared/cluster/fingerprints.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { BertfleetError, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import { ChecksumBook } from './checksum-book.js';
import { EvalCollection } from './eval-collection.js';
import type { EvalOutcome, EvalWork, PhaseSetup, StepExecutor, StepOutcome, StepWork } from './executor.js';
import { Membership, WorkerLostError, type Member } from './membership.js';
import { partition } from './partition.js';
import { ReducedStore, stepOrder } from './reduced-store.js';
import { StateSnapshots, type PackedState, type PhaseStateView } from './state-snapshot.js';
import { StepReduction } from './step-reduction.js';
import { TaskLog, type EvalTask, type TrainTask } from './task-log.js';
import { Waiters } from './waiters.js';

/** How long a step waits for its reduced gradient to be downloaded before the coordinator's own update. */
const PULL_GRACE_MS = 10_000;

/** Told of joins and leaves (the NATS control plane publishes them). */
export interface MembershipEvents {
  joined(member: Member, rejoined: boolean): void;
  left(member: Member, detail: string): void;
}

export interface DistributedOptions {
  runId: string;
  config: RunConfig;
  fingerprints: RunFingerprints;
  /** Workers to wait for before the first step. */
  expectedWorkers: number;
  log: Logger;
  events?: MembershipEvents;
  nowMs?: () => number;
}

export class DistributedExecutor implements StepExecutor {
  readonly membership = new Membership();
  readonly tasks = new TaskLog();
  readonly reduced = new ReducedStore();
  readonly checksums: ChecksumBook;
  readonly runConfigJson: string;
  private readonly snapshots: StateSnapshots;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly changed = new Waiters();
  private readonly polled = new Map<string, number>();
  private view: PhaseStateView | null = null;
  private trainTask: TrainTask | null = null;
  private reduction: StepReduction | null = null;
  private lastReduced = -1;
  private evalRun: EvalCollection | null = null;
  private fatalError: Error | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private started = false;
  private closing = false;

  constructor(readonly opts: DistributedOptions) {
    this.log = opts.log.child({ component: 'executor' });
    this.now = opts.nowMs ?? Date.now;
    this.runConfigJson = JSON.stringify(opts.config);
    this.snapshots = new StateSnapshots(opts.runId);
    this.checksums = new ChecksumBook((err) => this.fail(err));
    this.membership.onChange((c) => {
      if (c.kind === 'joined') {
        this.log.info({ workerId: c.member.id, hostname: c.member.hostname, pid: c.member.pid, rejoined: c.rejoined, members: this.membership.active().length }, 'worker joined');
        opts.events?.joined(c.member, c.rejoined);
      } else {
        this.log.warn({ workerId: c.member.id, reason: c.member.leftReason, detail: c.detail }, 'worker left');
        this.onLeft(c.member, c.detail);
        opts.events?.left(c.member, c.detail);
      }
      this.changed.wake();
    });
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = opts.config.cluster;
    this.sweepTimer = setInterval(() => this.membership.sweep(this.now(), heartbeatTimeoutMs), heartbeatIntervalMs);
    this.sweepTimer.unref();
  }

  get fatal(): Error | null {
    return this.fatalError;
  }

  /** Stops the run: pending and future waits reject with `err` (the first error wins). */
  fail(err: Error): void {
    if (this.fatalError !== null) return;
    if (this.closing) {
      this.log.debug({ err }, 'failure after the run ended; ignored');
      return;
    }
    this.fatalError = err;
    this.log.error({ err }, 'run failed');
    this.reduction?.fail(err);
    this.evalRun?.fail(err);
    this.changed.wake();
  }

  async startPhase(setup: PhaseSetup): Promise<void> {
    this.throwIfFailed();
    if (!this.started) {
      await this.waitFor(() => this.membership.active().length >= this.opts.expectedWorkers, 'workers', () => ({
        have: this.membership.active().length, want: this.opts.expectedWorkers,
      }));
      this.started = true;
    }
    this.reduced.clear();
    this.view = { phase: setup.phase, replica: setup.replica, step: setup.startStep, seq: this.tasks.reserve() };
    this.changed.wake();
  }

  async runStep(work: StepWork): Promise<StepOutcome> {
    const ids = await this.liveIds();
    const blocks = partition(work.microBatches.length, ids);
    const p = work.microBatches[0]?.examples.length ?? 0;
    const task = this.tasks.push<TrainTask>({
      kind: 'train', phase: work.phase, step: work.step, dataset: work.dataset, microBatchSize: p,
      microBatches: work.microBatches, counts: work.counts, blocks, membershipVersion: this.membership.version,
    });
    this.trainTask = task;
    const reduction = new StepReduction(work.phase, work.step, work.microBatches.length, blocks);
    this.reduction = reduction;
    const out = await reduction.done;
    this.lastReduced = stepOrder(work.phase, work.step);
    // The run loop clips its gradient in place: workers get an untouched copy.
    this.reduced.put(work.phase, work.step, work.microBatches.length, out.grad.slice(), ids);
    // The run loop's update takes the thread for a while: let the downloads go first.
    if (!(await this.reduced.pulledByAll(work.phase, work.step, PULL_GRACE_MS))) {
      this.log.debug({ phase: work.phase, step: work.step, graceMs: PULL_GRACE_MS }, 'not every worker pulled the reduced gradient yet; updating anyway');
    }
    this.throwIfFailed();
    return out;
  }

  async afterUpdate(phase: TrainPhase, step: number, checksum: () => string): Promise<void> {
    if (this.view !== null && this.trainTask !== null) {
      this.view.step = step + 1;
      this.view.seq = this.trainTask.seq;
    }
    if (checksumDue(this.opts.config, phase, step + 1)) this.checksums.recordOwn(phase, step + 1, checksum());
    this.throwIfFailed();
  }

  async evaluate(work: EvalWork): Promise<EvalOutcome> {
    this.throwIfFailed();
    if (this.view === null || this.view.phase !== work.phase) {
      throw new BertfleetError(`evaluation of ${work.dataset} on the ${work.phase} replica, but the current phase is ${this.view?.phase ?? 'none'}`);
    }
    if (work.chunks.length === 0) return { stats: [], predictions: [] };
    const ids = await this.liveIds();
    const blocks = partition(work.chunks.length, ids);
    const task = this.tasks.push<EvalTask>({ kind: 'eval', phase: work.phase, step: this.view.step, dataset: work.dataset, chunks: work.chunks, blocks, membershipVersion: this.membership.version });
    const run = new EvalCollection(task);
    this.evalRun = run;
    const out = await run.done;
    this.throwIfFailed();
    return out;
  }

  /** Tells every worker to stop and waits (up to `graceMs`) until each has heard it. */
  async close(graceMs = 5_000): Promise<void> {
    this.closing = true;
    const stop = this.tasks.push({
      kind: 'stop', reason: this.fatalError === null ? 'done' : 'failed', detail: this.fatalError?.message ?? '', membershipVersion: this.membership.version,
    });
    const deadline = this.now() + graceMs;
    const heard = (): boolean => this.membership.active().every((m) => (this.polled.get(m.id) ?? 0) >= stop.seq);
    while (!heard() && this.now() < deadline) await this.changed.next(Math.max(1, deadline - this.now()));
    if (!heard()) this.log.warn({ missing: this.membership.active().filter((m) => (this.polled.get(m.id) ?? 0) < stop.seq).map((m) => m.id) }, 'workers did not collect the stop order');
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  // ------------------------------------------------------------ for the service

  notePolled(workerId: string, seq: number): void {
    this.polled.set(workerId, Math.max(seq, this.polled.get(workerId) ?? 0));
    this.changed.wake();
  }

  /** The reduction an upload for (phase, step) belongs to; ProtocolError saying why not. */
  reductionFor(workerId: string, phase: string, step: number): StepReduction {
    const r = this.reduction;
    const what = `upload of ${phase} step ${step} from ${workerId}`;
    if (phase !== 'pretrain' && phase !== 'finetune') throw new ProtocolError(`${what}: expected phase pretrain or finetune, got ${JSON.stringify(phase)}`);
    if (r !== null && r.phase === phase && r.step === step && !r.complete) return r;
    if (stepOrder(phase, step) <= this.lastReduced) throw new ProtocolError(`${what}: step ${step} is already reduced`);
    throw new ProtocolError(`${what}: no such step is assigned (current: ${r === null ? 'none' : `${r.phase} step ${r.step}`})`);
  }

  evalFor(workerId: string, seq: number): EvalCollection {
    const r = this.evalRun;
    if (r === null || r.task.seq !== seq) throw new ProtocolError(`eval results of task ${seq} from ${workerId}: expected task ${r?.task.seq ?? '(none running)'}`);
    return r;
  }

  /** The current phase's state once `phase` (or any, for '') has started. */
  async stateFor(phase: string, signal: AbortSignal): Promise<PackedState> {
    const order = (p: string): number => (p === 'pretrain' ? 0 : p === 'finetune' ? 1 : -1);
    if (phase !== '' && order(phase) < 0) throw new ProtocolError(`FetchState: expected phase '', pretrain or finetune, got ${JSON.stringify(phase)}`);
    while (this.view === null || order(this.view.phase) < order(phase)) {
      this.throwIfFailed();
      await this.changed.next(30_000, signal);
    }
    return this.snapshots.pack(this.view);
  }

  currentPhase(): { phase: string; step: number } {
    return { phase: this.view?.phase ?? '', step: this.view?.step ?? 0 };
  }

  /** P, the length of every gradient of the current phase. */
  paramCount(): number {
    if (this.view === null) throw new ProtocolError('no phase has started: no gradient is expected yet');
    return this.view.replica.params.length;
  }

  // ------------------------------------------------------------ internals

  private onLeft(member: Member, detail: string): void {
    this.reduced.forget(member.id);
    const lost = (): WorkerLostError => new WorkerLostError(member.id, member.leftReason ?? 'error', detail);
    if (this.reduction !== null && !this.reduction.complete && this.reduction.pendingWorkers().has(member.id)) this.reduction.fail(lost());
    if (this.evalRun !== null && this.evalRun.pendingWorkers().has(member.id)) this.evalRun.fail(lost());
  }

  private async liveIds(): Promise<string[]> {
    await this.waitFor(() => this.membership.active().length > 0, 'a worker', () => ({ have: 0, want: 1 }));
    return this.membership.active().map((m) => m.id);
  }

  private async waitFor(ready: () => boolean, what: string, progress: () => Record<string, unknown>): Promise<void> {
    let lastLog = this.now();
    while (!ready()) {
      this.throwIfFailed();
      await this.changed.next(1_000);
      if (this.now() - lastLog >= 10_000) {
        this.log.warn(progress(), `waiting for ${what}`);
        lastLog = this.now();
      }
    }
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.fatalError !== null) throw this.fatalError;
  }
}
