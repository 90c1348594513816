/**
 * The StepExecutor of a distributed run. For each step it cuts the
 * micro-batches into contiguous shares over the live workers (weighted by
 * their measured speed), publishes the task for their long-polls, and waits
 * for the StepRound to collect every subtree partial sum and finish the
 * fixed-order tree sum; the reduced gradient is then kept for every worker to
 * pull, and the run loop applies it to the coordinator's replica as each
 * worker does to its own. Evaluations are spread the same way.
 *
 * Membership changes never end the run: a worker that leaves (drained,
 * silent, restarted) has what it still owed handed to the live workers in a
 * recovery task, so the step completes with the same bits; with no live
 * worker the executor waits for one (cluster.workerWaitTimeoutMs). The gRPC
 * service (coordinator-service.ts) is the workers' door into this state.
 *
 * Knows nothing of gRPC or NATS: joins and leaves go to `events`.
 */
import { checksumDue } from '../shared/cluster/checksum-due.js';
import type { RunFingerprints } from '../shared/cluster/fingerprints.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { BertfleetError, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { Range } from '../shared/training/tree-sum.js';
import { Waiters } from '../shared/async/waiters.js';
import { ChecksumBook } from './checksum-book.js';
import { EvalCollection } from './eval-collection.js';
import type { EvalOutcome, EvalWork, PhaseSetup, StepExecutor, StepOutcome, StepWork } from './executor.js';
import { Membership, type Member } from './membership.js';
import { partition, type Block } from './partition.js';
import { ReducedStore, stepOrder } from './reduced-store.js';
import { StateSnapshots, type PackedState, type PhaseStateView } from './state-snapshot.js';
import { StepRound } from './step-round.js';
import { TaskLog, type EvalTask, type TrainTask } from './task-log.js';
import { WorkerSpeeds } from './worker-speeds.js';

/** How long a resumed run waits for all `expectedWorkers` before it goes on with fewer. */
const RESUMED_FULL_WAIT_MS = 15_000;

/** How long a step waits for its reduced gradient to be downloaded before the coordinator's own update. */
const PULL_GRACE_MS = 10_000;

/** Told of joins and leaves (the NATS control plane publishes them). */
export interface MembershipEvents {
  joined(member: Member, rejoined: boolean): void;
  left(member: Member, detail: string): void;
}

/** No worker was live for cluster.workerWaitTimeoutMs while the run needed one. */
export class NoWorkersError extends BertfleetError {
  override readonly name = 'NoWorkersError';
}

export interface DistributedOptions {
  runId: string;
  config: RunConfig;
  fingerprints: RunFingerprints;
  /** Workers to wait for before the first step; afterwards any number >= 1 will do. */
  expectedWorkers: number;
  /**
   * A resumed run (a restarted coordinator): workers that left before the
   * restart may not come back, so it waits for `expectedWorkers` at most
   * RESUMED_FULL_WAIT_MS, then starts with whoever is there (at least one).
   */
  resumed?: boolean;
  log: Logger;
  events?: MembershipEvents;
  nowMs?: () => number;
}

type StopReason = 'done' | 'failed' | 'stopping';

export class DistributedExecutor implements StepExecutor {
  readonly membership = new Membership();
  readonly tasks = new TaskLog();
  readonly reduced = new ReducedStore();
  readonly checksums: ChecksumBook;
  readonly speeds: WorkerSpeeds;
  readonly runConfigJson: string;
  private readonly snapshots: StateSnapshots;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly changed = new Waiters();
  private readonly polled = new Map<string, number>();
  private view: PhaseStateView | null = null;
  /** The current step's tasks (first, then recoveries) and its round. */
  private stepTasks: TrainTask[] = [];
  private round: StepRound | null = null;
  private lastReduced = -1;
  private evalTasks: EvalTask[] = [];
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
    this.speeds = new WorkerSpeeds({ log: opts.log });
    this.membership.onChange((c) => {
      if (c.kind === 'joined') {
        this.log.info({ workerId: c.member.id, hostname: c.member.hostname, pid: c.member.pid, rejoined: c.rejoined, members: this.membership.active().length }, 'worker joined');
        opts.events?.joined(c.member, c.rejoined);
      } else {
        const fields = { workerId: c.member.id, reason: c.member.leftReason, detail: c.detail, members: this.membership.active().length };
        if (c.member.leftReason === 'drained') this.log.info(fields, 'worker left');
        else this.log.warn(fields, 'worker left');
        this.onLeft(c.member);
        opts.events?.left(c.member, c.detail);
      }
      this.changed.wake();
    });
    const { heartbeatIntervalMs, heartbeatTimeoutMs } = opts.config.cluster;
    this.sweepTimer = setInterval(() => this.membership.sweep(this.now(), heartbeatTimeoutMs, heartbeatIntervalMs), heartbeatIntervalMs);
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
    this.round?.fail(err);
    this.evalRun?.fail(err);
    this.changed.wake();
  }

  async startPhase(setup: PhaseSetup): Promise<void> {
    this.throwIfFailed();
    if (!this.started) {
      const want = this.opts.expectedWorkers;
      const progress = (): Record<string, unknown> => ({ have: this.membership.active().length, want });
      if (this.opts.resumed === true) {
        const until = this.now() + RESUMED_FULL_WAIT_MS;
        await this.waitFor(() => this.membership.active().length >= want || this.now() >= until, 'workers', Infinity, progress);
        if (this.membership.active().length < want) this.log.info({ ...progress(), waitedMs: RESUMED_FULL_WAIT_MS }, 'resumed run: going on with the workers that came back');
        await this.liveIds();
      } else {
        await this.waitFor(() => this.membership.active().length >= want, 'workers', Infinity, progress);
      }
      this.started = true;
    }
    this.reduced.clear();
    this.view = { phase: setup.phase, replica: setup.replica, step: setup.startStep, seq: this.tasks.reserve() };
    this.changed.wake();
  }

  async runStep(work: StepWork): Promise<StepOutcome> {
    const ids = await this.liveIds();
    this.speeds.judge(ids);
    const M = work.microBatches.length;
    const blocks = partition(M, ids, { weights: this.speeds.weights(ids) });
    const task = this.tasks.push<TrainTask>({
      kind: 'train', phase: work.phase, step: work.step, dataset: work.dataset, microBatchSize: work.microBatches[0]?.examples.length ?? 0,
      microBatches: work.microBatches, counts: work.counts, blocks, membershipVersion: this.membership.version, recovery: false,
    });
    this.stepTasks = [task];
    const round = new StepRound(work.phase, work.step, M, blocks);
    this.round = round;
    // A worker may have left between liveIds() and now: hand its share over at once.
    for (const b of blocks) if (this.membership.get(b.workerId)?.status === 'left') void this.recover(b.workerId);
    const out = await round.done;
    this.lastReduced = stepOrder(work.phase, work.step);
    // The run loop clips its gradient in place: workers get an untouched copy.
    this.reduced.put(work.phase, work.step, M, out.grad.slice(), this.membership.active().map((m) => m.id));
    // The run loop's update takes the thread for a while: let the downloads go first.
    if (!(await this.reduced.pulledByAll(work.phase, work.step, PULL_GRACE_MS))) {
      this.log.debug({ phase: work.phase, step: work.step, graceMs: PULL_GRACE_MS }, 'not every worker pulled the reduced gradient yet; updating anyway');
    }
    this.throwIfFailed();
    return out;
  }

  async afterUpdate(phase: TrainPhase, step: number, checksum: () => string): Promise<void> {
    if (this.view !== null && this.stepTasks.length > 0) {
      this.view.step = step + 1;
      this.view.seq = this.stepTasks[this.stepTasks.length - 1]!.seq;
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
    const blocks = partition(work.chunks.length, ids, { weights: this.speeds.weights(ids) });
    const task = this.tasks.push<EvalTask>({
      kind: 'eval', phase: work.phase, step: this.view.step, dataset: work.dataset, chunks: work.chunks, blocks, membershipVersion: this.membership.version, recovery: false,
    });
    this.evalTasks = [task];
    const run = new EvalCollection(task);
    this.evalRun = run;
    for (const b of blocks) if (this.membership.get(b.workerId)?.status === 'left') void this.recover(b.workerId);
    const out = await run.done;
    this.evalRun = null;
    this.throwIfFailed();
    return out;
  }

  /** Tells every worker to stop and waits (up to `graceMs`) until each has heard it. */
  async close(graceMs = 5_000, reason?: StopReason): Promise<void> {
    this.closing = true;
    const why: StopReason = reason ?? (this.fatalError === null ? 'done' : 'failed');
    const stop = this.tasks.push({ kind: 'stop', reason: why, detail: why === 'failed' ? (this.fatalError?.message ?? '') : '', membershipVersion: this.membership.version });
    const deadline = this.now() + graceMs;
    const heard = (): boolean => this.membership.active().every((m) => (this.polled.get(m.id) ?? 0) >= stop.seq);
    while (!heard() && this.now() < deadline) await this.changed.next(Math.max(1, deadline - this.now()));
    if (!heard()) {
      const missing = this.membership.active().filter((m) => (this.polled.get(m.id) ?? 0) < stop.seq).map((m) => m.id);
      // Stopping on a signal, workers are usually stopping too (a Ctrl-C reaches them all).
      if (why === 'stopping') this.log.info({ missing }, 'workers did not collect the stop order');
      else this.log.warn({ missing }, 'workers did not collect the stop order');
    }
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  // ------------------------------------------------------------ for the service

  notePolled(workerId: string, seq: number): void {
    this.polled.set(workerId, Math.max(seq, this.polled.get(workerId) ?? 0));
    this.changed.wake();
  }

  /** The round an upload for (phase, step) belongs to; AlreadyReceivedError/ProtocolError saying why not. */
  roundFor(workerId: string, phase: string, step: number): StepRound {
    const r = this.round;
    const what = `upload of ${phase} step ${step} from ${workerId}`;
    if (phase !== 'pretrain' && phase !== 'finetune') throw new ProtocolError(`${what}: expected phase pretrain or finetune, got ${JSON.stringify(phase)}`);
    if (r !== null && r.phase === phase && r.step === step) return r;
    if (stepOrder(phase, step) <= this.lastReduced) throw new ProtocolError(`${what}: step ${step} is already reduced`);
    throw new ProtocolError(`${what}: no such step is assigned (current: ${r === null ? 'none' : `${r.phase} step ${r.step}`})`);
  }

  evalFor(workerId: string, seq: number): EvalCollection {
    const r = this.evalRun;
    if (r === null || !r.has(seq)) throw new ProtocolError(`eval results of task ${seq} from ${workerId}: expected task ${this.evalTasks.map((t) => t.seq).join(' or ') || '(none running)'}`);
    return r;
  }

  /** A worker leaves on purpose; returns the micro-batches (or chunks) it still owed, now handed over. */
  leave(workerId: string, reason: 'drained' | 'error', detail: string): number {
    const m = this.membership.get(workerId);
    if (m === undefined || m.status === 'left') return 0;
    const owed = (this.round?.complete === false ? this.round.owedBy(workerId) : []).concat(this.evalRun?.owedBy(workerId) ?? []);
    this.membership.markLeft(workerId, reason, detail);
    return owed.reduce((n, r) => n + r.hi - r.lo, 0);
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

  private onLeft(member: Member): void {
    this.reduced.forget(member.id);
    this.speeds.forget(member.id);
    void this.recover(member.id);
  }

  /**
   * Hands what `workerId` still owes in the current step or evaluation to the
   * live workers, in a recovery task; waits for a live worker if there is none.
   */
  private async recover(workerId: string): Promise<void> {
    const round = this.round;
    const evalRun = this.evalRun;
    try {
      if (round !== null && !round.complete && round.owedBy(workerId).length > 0) {
        const ids = await this.liveIds();
        const owed = round.owedBy(workerId);
        if (round.complete || owed.length === 0 || this.round !== round) return;
        const blocks = partition(round.microBatches, ids, { items: owed, weights: this.speeds.weights(ids) });
        const moved = round.reassign(workerId, blocks);
        this.withdraw(this.stepTasks, workerId);
        const first = this.stepTasks[0]!;
        const task = this.tasks.push<TrainTask>({ ...first, blocks, membershipVersion: this.membership.version, recovery: true });
        this.stepTasks.push(task);
        this.log.warn({ from: workerId, phase: round.phase, step: round.step, microBatches: moved, to: describe(blocks), seq: task.seq }, 'micro-batches reassigned');
      }
      if (evalRun !== null && evalRun.owedBy(workerId).length > 0) {
        const ids = await this.liveIds();
        const owed = evalRun.owedBy(workerId);
        if (owed.length === 0 || this.evalRun !== evalRun) return;
        const first = this.evalTasks[0]!;
        const blocks = partition(first.chunks.length, ids, { items: owed, weights: this.speeds.weights(ids) });
        this.withdraw(this.evalTasks, workerId);
        const task = this.tasks.push<EvalTask>({ ...first, blocks, membershipVersion: this.membership.version, recovery: true });
        evalRun.reassign(task.seq, blocks);
        this.evalTasks.push(task);
        this.log.warn({ from: workerId, dataset: first.dataset, chunks: owed.reduce((n, r) => n + r.hi - r.lo, 0), to: describe(blocks), seq: task.seq }, 'eval chunks reassigned');
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new BertfleetError(String(err)));
    }
  }

  /** Takes `workerId`'s blocks out of tasks already sent, so a restarted worker with that id does not redo them. */
  private withdraw(tasks: readonly (TrainTask | EvalTask)[], workerId: string): void {
    for (const t of tasks) t.blocks = t.blocks.filter((b) => b.workerId !== workerId);
  }

  private async liveIds(): Promise<string[]> {
    const limitMs = this.opts.config.cluster.workerWaitTimeoutMs;
    await this.waitFor(() => this.membership.active().length > 0, 'a worker', limitMs, () => ({ have: 0, want: 1, waitLimitMs: limitMs }));
    return this.membership.active().map((m) => m.id);
  }

  private async waitFor(ready: () => boolean, what: string, limitMs: number, progress: () => Record<string, unknown>): Promise<void> {
    const start = this.now();
    let lastLog = start;
    while (!ready()) {
      this.throwIfFailed();
      if (this.now() - start >= limitMs) {
        const err = new NoWorkersError(`no worker joined the run for ${this.now() - start} ms (cluster.workerWaitTimeoutMs ${limitMs}); start one with \`bertfleet worker --join OUTPUT\``);
        this.fail(err);
        throw err;
      }
      await this.changed.next(Math.min(1_000, Math.max(1, start + limitMs - this.now())));
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

function describe(blocks: readonly Block[]): Record<string, string> {
  const fmt = (rs: readonly Range[]): string => rs.map((r) => `[${r.lo}, ${r.hi})`).join(' ');
  return Object.fromEntries(blocks.map((b) => [b.workerId, fmt(b.ranges)]));
}
