/**
 * The StepExecutor of a distributed run. For each step it cuts the
 * micro-batches into contiguous shares over the live workers (weighted by
 * their measured speed), publishes the task for their long-polls, and opens
 * the step's StepRound, which sums the workers' subtree partials chunk by
 * chunk in the fixed tree order and serves each reduced chunk to the workers'
 * pulls as soon as it is final. The run loop then applies the reduced gradient
 * to the coordinator's replica as each worker does to its own. The next
 * step's task is published (`prepareStep`) before the coordinator applies its
 * own update, so the workers never wait for it. Evaluations are spread the
 * same way.
 *
 * Every `cluster.auditEverySteps` steps one micro-batch is also computed by a
 * second worker (audit-plan.ts) and the two gradients' digests are compared
 * as they arrive (audit-book.ts), off the step's path: a difference fails the
 * run with a GradientAuditError. Before an evaluation the executor waits (up
 * to cluster.heartbeatTimeoutMs) for the audits still out, so a phase's last
 * audits are compared before its results are reported.
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
import { sliceBounds, type Slice } from '../shared/cluster/slices.js';
import type { StepPlan } from '../shared/wire/messages.js';
import { ChunkPool } from './chunk-pool.js';
import type { RunInputFingerprints } from '../shared/cluster/fingerprints.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { BertfleetError, ProtocolError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import { Waiters } from '../shared/async/waiters.js';
import { AuditBook } from './audit-book.js';
import { auditDue, planAudit, type AuditPlan } from './audit-plan.js';
import { ChecksumBook } from './checksum-book.js';
import { ComputeFingerprint, type PinnedCompute } from './compute-fingerprint.js';
import type { EvalCollection } from './eval-collection.js';
import { describeBlocks, EvalDispatch, withdraw } from './eval-dispatch.js';
import type { EvalOutcome, EvalWork, PhaseSetup, StepExecutor, StepOutcome, StepWork } from './executor.js';
import { Membership, type Member } from './membership.js';
import { partition, type Block } from './partition.js';
import { ReducedStore, stepOrder } from './reduced-store.js';
import { StateSnapshots, type PackedState, type PhaseStateView } from './state-snapshot.js';
import { StepRound } from './step-round.js';
import { TaskLog, type TrainTask } from './task-log.js';
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

/**
 * A reducer process of `--reducers K` (reducer j >= 1; the coordinator is
 * reducer 0), as the executor sees it: told each step's plan before the task
 * goes out, told of reassignments, and pulled from for the coordinator's own
 * copy of the reduced gradient. coordinator/main.ts wires it to gRPC.
 */
export interface RemoteReducer {
  readonly address: string;
  openStep(plan: StepPlan): Promise<void>;
  reassign(plan: StepPlan): Promise<void>;
  /** The reduced slice of (phase, step), into `into` (the slice's length). */
  pull(phase: TrainPhase, step: number, into: Float32Array): Promise<void>;
}

/** No worker was live for cluster.workerWaitTimeoutMs while the run needed one. */
export class NoWorkersError extends BertfleetError {
  override readonly name = 'NoWorkersError';
}

export interface DistributedOptions {
  runId: string;
  config: RunConfig;
  /** What a worker's inputs must match (the backend is the run's compute fingerprint, below). */
  fingerprints: RunInputFingerprints;
  /**
   * The run's compute fingerprint as its trainer state saved it (a resumed
   * run); absent or null: the first worker admitted pins it (compute-fingerprint.ts).
   */
  pinnedCompute?: PinnedCompute | null;
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
  /** Reducers 1 .. K-1 of `--reducers K` (none: the coordinator reduces the whole gradient). */
  reducers?: readonly RemoteReducer[];
}

type StopReason = 'done' | 'failed' | 'stopping';

/** A step's tasks (first, then recoveries) and its reduction. */
interface StepSlot {
  round: StepRound;
  tasks: TrainTask[];
  /** The flat vector's slices: [0] is the coordinator's (its round), [j] reducer j's. */
  slices: Slice[];
}

/** The name the coordinator pulls reduced slices from reducers under. */
const COORDINATOR_PULLER = 'coordinator';

export class DistributedExecutor implements StepExecutor {
  readonly membership: Membership;
  readonly tasks = new TaskLog();
  readonly reduced = new ReducedStore();
  readonly checksums: ChecksumBook;
  readonly audits: AuditBook;
  readonly speeds: WorkerSpeeds;
  /** The backend fingerprint every worker must have: pinned by the first admitted, or by the resumed trainer state. */
  readonly compute: ComputeFingerprint;
  readonly runConfigJson: string;
  private readonly snapshots: StateSnapshots;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly changed = new Waiters();
  private readonly polled = new Map<string, number>();
  private view: PhaseStateView | null = null;
  /** The steps whose tasks are out, oldest first: at most the one being finished and the next. */
  private slots: StepSlot[] = [];
  /** Steps whose reducers are being told (prepareStep), by stepOrder. */
  private readonly opening = new Map<number, Promise<StepSlot>>();
  private readonly remotes: readonly RemoteReducer[];
  private readonly pool: ChunkPool;
  private lastReduced = -1;
  private readonly evals: EvalDispatch;
  private fatalError: Error | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private started = false;
  private closing = false;

  constructor(readonly opts: DistributedOptions) {
    this.log = opts.log.child({ component: 'executor' });
    this.membership = new Membership({ maxWorkers: opts.config.cluster.maxWorkers });
    this.now = opts.nowMs ?? Date.now;
    this.runConfigJson = JSON.stringify(opts.config);
    this.snapshots = new StateSnapshots(opts.runId);
    this.checksums = new ChecksumBook((err) => this.fail(err));
    this.audits = new AuditBook({ log: opts.log, onMismatch: (err) => this.fail(err) });
    this.speeds = new WorkerSpeeds({ log: opts.log });
    this.evals = new EvalDispatch({
      tasks: this.tasks, membership: this.membership, speeds: this.speeds, log: this.log,
      liveIds: () => this.liveIds(), recover: (id) => void this.recover(id),
    });
    this.compute = new ComputeFingerprint(opts.pinnedCompute ?? null, opts.log);
    this.pool = new ChunkPool(opts.config.cluster.chunkBytes / 4);
    this.remotes = opts.reducers ?? [];
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
    for (const s of this.slots) s.round.fail(err);
    this.evals.fail(err);
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
    this.slots = [];
    this.view = { phase: setup.phase, replica: setup.replica, step: setup.startStep, seq: this.tasks.reserve() };
    this.changed.wake();
  }

  /**
   * Publishes `work`'s task now, if a worker is live (called with the next
   * step before the coordinator applies the current one's update); runStep
   * then finds it open. A no-op when workers are missing: runStep waits for them.
   */
  prepareStep(work: StepWork): void {
    const order = stepOrder(work.phase, work.step);
    if (this.fatalError !== null || this.closing || this.slotFor(work.phase, work.step) !== undefined || this.opening.has(order)) return;
    const ids = this.membership.active().map((m) => m.id);
    if (ids.length === 0) return;
    const opening = this.open(work, ids);
    this.opening.set(order, opening);
    opening.then(() => this.opening.delete(order), (err: unknown) => {
      this.opening.delete(order);
      this.fail(err instanceof Error ? err : new BertfleetError(String(err)));
    });
  }

  async runStep(work: StepWork): Promise<StepOutcome> {
    const slot = this.slotFor(work.phase, work.step) ?? (await this.opening.get(stepOrder(work.phase, work.step))) ?? (await this.open(work, await this.liveIds()));
    const out = await slot.round.done;
    this.lastReduced = stepOrder(work.phase, work.step);
    // The run loop's update takes the thread for a while: let the downloads go first.
    if (!(await this.reduced.pulledByAll(work.phase, work.step, PULL_GRACE_MS))) {
      this.log.debug({ phase: work.phase, step: work.step, graceMs: PULL_GRACE_MS }, 'not every worker pulled the reduced gradient yet; updating anyway');
    }
    this.throwIfFailed();
    // The run loop clips its gradient in place; the round's stays as served (a late joiner may pull it).
    if (this.remotes.length === 0) return { grad: out.grad.slice(), stats: out.stats, faults: out.faults };
    const grad = new Float32Array(this.paramCount());
    grad.set(out.grad, slot.slices[0]!.lo);
    await Promise.all(this.remotes.map((r, j) => r.pull(work.phase, work.step, grad.subarray(slot.slices[j + 1]!.lo, slot.slices[j + 1]!.hi))));
    this.throwIfFailed();
    return { grad, stats: out.stats, faults: out.faults };
  }

  /**
   * Cuts the step over `ids`, tells the reducers, then publishes its task and
   * opens its round (its reduced gradient can be pulled from now on).
   */
  private async open(work: StepWork, ids: string[]): Promise<StepSlot> {
    this.speeds.judge(ids);
    const M = work.microBatches.length;
    const blocks = partition(M, ids, { weights: this.speeds.weights(ids) });
    const slices = sliceBounds(this.paramCount(), this.remotes.length + 1);
    const pullers = this.membership.active().map((m) => m.id);
    const round = new StepRound(work.phase, work.step, M, blocks, slices[0]!.hi - slices[0]!.lo, this.pool);
    // The reducers know the step before any worker can upload to them.
    await Promise.all(this.remotes.map((r, j) => r.openStep(this.plan(work.phase, work.step, M, blocks, slices[j + 1]!, '', [...pullers, COORDINATOR_PULLER]))));
    const audit = this.auditOf(work, M, blocks, ids);
    const task = this.tasks.push<TrainTask>({
      kind: 'train', phase: work.phase, step: work.step, dataset: work.dataset, microBatchSize: work.microBatches[0]?.examples.length ?? 0,
      microBatches: work.microBatches, counts: work.counts, blocks, membershipVersion: this.membership.version, recovery: false,
      ...(audit !== null && { audit }),
    });
    const slot: StepSlot = { round, tasks: [task], slices };
    this.slots = [...this.slots.filter((s) => !s.round.complete || stepOrder(s.round.phase, s.round.step) >= this.lastReduced), slot].slice(-3);
    this.reduced.put(work.phase, work.step, M, round, pullers);
    // A worker may have left since `ids` was read: hand its share over at once.
    for (const b of blocks) if (this.membership.get(b.workerId)?.status === 'left') void this.recover(b.workerId);
    return slot;
  }

  /**
   * The step's gradient audit when one is due and two workers are live (the
   * book expects it from now on). Auditors that hold a replica already are
   * preferred: one still joining may fetch a state past this step and never
   * compute it (its audit is then dropped).
   */
  private auditOf(work: StepWork, M: number, blocks: readonly Block[], ids: readonly string[]): AuditPlan | null {
    if (!auditDue(this.opts.config.cluster.auditEverySteps, work.step)) return null;
    const live = ids.filter((id) => this.membership.get(id)?.status !== 'left');
    const training = live.filter((id) => this.membership.get(id)?.status === 'training');
    const audit = planAudit(work.step, M, blocks, training) ?? planAudit(work.step, M, blocks, live);
    if (audit === null) this.audits.skipped(work.phase, work.step);
    else this.audits.expect(work.phase, work.step, audit);
    return audit;
  }

  private plan(phase: TrainPhase, step: number, M: number, blocks: readonly Block[], slice: Slice, from: string, pullers: string[]): StepPlan {
    return {
      phase, step, num_micro_batches: M, blocks: blocks.map((b) => ({ worker_id: b.workerId, subtrees: b.subtrees })),
      slice_lo: slice.lo, slice_hi: slice.hi, chunk_bytes: this.opts.config.cluster.chunkBytes, reassigned_from: from, pullers,
    };
  }

  private slotFor(phase: TrainPhase, step: number): StepSlot | undefined {
    return this.slots.find((s) => s.round.phase === phase && s.round.step === step);
  }

  async afterUpdate(phase: TrainPhase, step: number, checksum: () => string): Promise<void> {
    const slot = this.slotFor(phase, step);
    if (this.view !== null && slot !== undefined) {
      this.view.step = step + 1;
      this.view.seq = slot.tasks[slot.tasks.length - 1]!.seq;
    }
    if (checksumDue(this.opts.config, phase, step + 1)) this.checksums.recordOwn(phase, step + 1, checksum());
    this.throwIfFailed();
  }

  async evaluate(work: EvalWork): Promise<EvalOutcome> {
    this.throwIfFailed();
    if (this.view === null || this.view.phase !== work.phase) {
      throw new BertfleetError(`evaluation of ${work.dataset} on the ${work.phase} replica, but the current phase is ${this.view?.phase ?? 'none'}`);
    }
    // The phase's last audits are compared before its results count (a worker that left drops its own).
    await this.audits.settled(this.opts.config.cluster.heartbeatTimeoutMs);
    this.throwIfFailed();
    const out = await this.evals.evaluate(work, this.view.step);
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
    const what = `upload of ${phase} step ${step} from ${workerId}`;
    if (phase !== 'pretrain' && phase !== 'finetune') throw new ProtocolError(`${what}: expected phase pretrain or finetune, got ${JSON.stringify(phase)}`);
    const slot = this.slotFor(phase, step);
    if (slot !== undefined) return slot.round;
    if (stepOrder(phase, step) <= this.lastReduced) throw new ProtocolError(`${what}: step ${step} is already reduced`);
    const open = this.slots.map((s) => `${s.round.phase} step ${s.round.step}`).join(', ');
    throw new ProtocolError(`${what}: no such step is assigned (open: ${open === '' ? 'none' : open})`);
  }

  evalFor(workerId: string, seq: number): EvalCollection {
    return this.evals.collectionFor(workerId, seq);
  }

  /** A worker leaves on purpose; returns the micro-batches (or chunks) it still owed, now handed over. */
  leave(workerId: string, reason: 'drained' | 'error', detail: string): number {
    const m = this.membership.get(workerId);
    if (m === undefined || m.status === 'left') return 0;
    const owed = this.slots.filter((s) => !s.round.complete).flatMap((s) => s.round.owedBy(workerId)).concat(this.evals.owedBy(workerId));
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
    this.audits.drop(member.id, `left (${member.leftReason ?? 'unknown'})`);
    this.reduced.forget(member.id);
    this.speeds.forget(member.id);
    this.polled.delete(member.id);
    void this.recover(member.id);
  }

  /**
   * Hands what `workerId` still owes in the current step or evaluation to the
   * live workers, in a recovery task; waits for a live worker if there is none.
   */
  private async recover(workerId: string): Promise<void> {
    const evalRun = this.evals.current(); // the evaluation running now: the step recoveries below may wait
    try {
      for (const slot of this.slots) await this.recoverStep(slot, workerId);
      await this.evals.recover(evalRun, workerId);
    } catch (err) {
      this.fail(err instanceof Error ? err : new BertfleetError(String(err)));
    }
  }

  /** Hands what `workerId` owes in one step to the live workers, in a recovery task. */
  private async recoverStep(slot: StepSlot, workerId: string): Promise<void> {
    const { round } = slot;
    if (round.complete || round.owedBy(workerId).length === 0) return;
    const ids = await this.liveIds();
    const owed = round.owedBy(workerId);
    if (round.complete || owed.length === 0 || !this.slots.includes(slot)) return;
    const blocks = partition(round.microBatches, ids, { items: owed, weights: this.speeds.weights(ids) });
    const moved = round.reassign(workerId, blocks);
    await Promise.all(this.remotes.map((r, j) => r.reassign(this.plan(round.phase, round.step, round.microBatches, blocks, slot.slices[j + 1]!, workerId, []))));
    withdraw(slot.tasks, workerId);
    const task = this.tasks.push<TrainTask>({ ...slot.tasks[0]!, blocks, membershipVersion: this.membership.version, recovery: true });
    slot.tasks.push(task);
    this.log.warn({ from: workerId, phase: round.phase, step: round.step, microBatches: moved, to: describeBlocks(blocks), seq: task.seq }, 'micro-batches reassigned');
  }

  /** The live workers' ids, never empty: waits for one when there is none. */
  private async liveIds(): Promise<string[]> {
    const limitMs = this.opts.config.cluster.workerWaitTimeoutMs;
    for (;;) {
      await this.waitFor(() => this.membership.active().length > 0, 'a worker', limitMs, () => ({ have: 0, want: 1, waitLimitMs: limitMs }));
      // Read after the wait resumes: a sweep may have marked the last one left in between.
      const ids = this.membership.active().map((m) => m.id);
      if (ids.length > 0) return ids;
    }
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
