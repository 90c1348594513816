/**
 * What a registered worker does until told to stop, asked to drain, or told
 * it is no longer registered: take the next task from the feed; for a
 * training step compute its micro-batches' gradients (in the compute
 * thread), upload the subtree partial sums, compute the step's audited
 * micro-batch alone when it names this worker and report its digest (the
 * gradient audit), and while the reduced gradient is
 * still to come, take any recovery task for the same step (micro-batches a
 * departed worker owed) and deliver those too; then download the reduced
 * gradient and apply the same update as every replica, reporting a checksum
 * when due. For an evaluation, compute its chunks and send the results.
 * Whenever its replica is not the one a task needs (a phase start, a late
 * join, a registration lost) it fetches the coordinator's state and
 * continues after the seq that state includes.
 *
 * Draining (SIGTERM): the share in hand is finished and uploaded, then the
 * worker leaves (reason `drained`) without waiting for the reduction.
 *
 * Knows nothing of process signals or NATS connections: it is given a
 * `phase()` reader and abort signals.
 */
import { checksumDue } from '../shared/cluster/checksum-due.js';
import { sliceBounds, type Slice } from '../shared/cluster/slices.js';
import { encodeIndexedStats, encodeStats } from '../shared/cluster/stats-json.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { ProtocolError, ReplicaMismatchError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { TrainPhase } from '../shared/training/phase-settings.js';
import type { GradientHeader } from '../shared/wire/messages.js';
import type { WorkerTask } from './assignment.js';
import type { ReplicaCompute } from './compute-port.js';
import type { MicroInput, ReadyPartial } from './compute.js';
import type { CoordinatorLink } from './coordinator-link.js';
import { fetchState, type StateSource } from './fetch-state.js';
import { TimingWindow, type StepTiming } from './step-timings.js';
import { TaskFeed } from './task-feed.js';

export interface LoopOptions {
  workerId: string;
  config: RunConfig;
  link: CoordinatorLink;
  compute: ReplicaCompute;
  log: Logger;
  /** Aborted: stop now (the registration was lost, or a hard stop). */
  signal: AbortSignal;
  /** Aborted: finish the share in hand, leave, return `drained`. */
  drain: AbortSignal;
  /** The run's phase as the control plane last said (null without NATS or before any). */
  phase?: () => string | null;
  /**
   * Reducers 1 .. K-1 of `--reducers K` (the coordinator, `link`, is reducer
   * 0): slice j of every gradient is pushed to and pulled from reducer j.
   */
  reducers?: readonly CoordinatorLink[];
  /** Told of uploads and applied steps (the worker's metrics, worker/metrics.ts). */
  observer?: LoopObserver;
}

export interface LoopObserver {
  uploaded(bytes: number): void;
  stepApplied(s: { phase: TrainPhase; step: number; timing: StepTiming; microBatches: number; receivedBytes: number }): void;
}

export type LoopEnd = { kind: 'stop'; reason: string } | { kind: 'drained' };

type Train = Extract<WorkerTask, { kind: 'train' }>;
type Eval = Extract<WorkerTask, { kind: 'eval' }>;

/** A NATS run phase -> the replica it uses ('evaluate' runs on the finetuned one). */
const REPLICA_OF: Record<string, TrainPhase | undefined> = { pretrain: 'pretrain', finetune: 'finetune', evaluate: 'finetune' };
const ORDER: Record<TrainPhase, number> = { pretrain: 0, finetune: 1 };

interface Held {
  phase: TrainPhase;
  step: number;
  paramCount: number;
}

export class WorkerLoop {
  private held: Held | null = null;
  private resyncs = 0;
  private reduced: Float32Array | null = null;
  private readonly timings = new TimingWindow();
  private readonly log: Logger;
  private readonly feed: TaskFeed;
  private readonly either: AbortSignal;

  constructor(private readonly o: LoopOptions) {
    this.log = o.log.child({ component: 'worker-loop' });
    this.feed = new TaskFeed(o.link, o.workerId, 0, o.log);
    this.either = AbortSignal.any([o.signal, o.drain]);
  }

  /** Steps applied in the current phase (for heartbeats). */
  get step(): number {
    return this.held?.step ?? 0;
  }

  async run(): Promise<LoopEnd> {
    this.feed.start();
    try {
      for (;;) {
        this.o.signal.throwIfAborted();
        if (this.o.drain.aborted) return await this.leave('idle');
        await this.followPhase();
        let task: Exclude<WorkerTask, { kind: 'idle' }>;
        try {
          task = await this.feed.next(this.either);
        } catch (err) {
          if (this.o.drain.aborted && !this.o.signal.aborted) continue;
          throw err;
        }
        if (task.kind === 'stop') {
          this.log.info({ seq: task.seq, reason: task.reason }, 'stop order received');
          await this.dropReplica();
          return { kind: 'stop', reason: task.reason };
        }
        if (this.stale(task)) continue;
        if ((task.kind === 'eval' && task.chunks.length === 0) || (task.kind === 'train' && task.recovery && task.micro.length === 0)) continue;
        if (this.held === null || this.held.phase !== task.phase || this.held.step !== task.step) {
          await this.resync(task);
          continue;
        }
        this.resyncs = 0;
        if (task.kind === 'eval') await this.evaluate(task);
        else if ((await this.trainOrStop(task, this.held)) === 'drained') return await this.leave('uploaded');
      }
    } finally {
      this.feed.stop();
    }
  }

  /** A task for a step this replica has already applied (or an earlier phase): nothing to do. */
  private stale(task: Train | Eval): boolean {
    const h = this.held;
    if (h === null) return false;
    if (ORDER[task.phase] !== ORDER[h.phase]) return ORDER[task.phase] < ORDER[h.phase];
    return task.kind === 'train' ? task.step < h.step : false;
  }

  private async leave(when: 'idle' | 'uploaded'): Promise<LoopEnd> {
    try {
      const r = await this.o.link.leave({ worker_id: this.o.workerId, reason: 'drained', detail: when === 'idle' ? 'asked to leave (SIGTERM)' : 'asked to leave (SIGTERM) after delivering its share' }, 5_000);
      this.log.info({ reassigned: r.reassigned, step: this.step }, 'left the run (drained)');
    } catch (err) {
      this.log.warn({ err }, 'leave not acknowledged; exiting anyway');
    }
    await this.dropReplica();
    return { kind: 'drained' };
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
    await this.dropReplica();
    const t0 = performance.now();
    const link = this.o.link;
    const source: StateSource = { fetchState: (req, o) => link.retry('FetchState', () => link.client.fetchState(req, o)) };
    const got = await fetchState(source, { workerId: this.o.workerId, phase }, (p) => this.o.compute.paramCount(p));
    const paramCount = this.o.compute.paramCount(got.state.phase);
    await this.o.compute.load(got.state); // transfers the arrays to the compute thread
    this.held = { phase: got.state.phase, step: got.state.step, paramCount };
    this.feed.restartAfter(got.seq);
    this.log.info({ phase: got.state.phase, step: got.state.step, seq: got.seq, bytes: got.bytes, durationMs: Math.round(performance.now() - t0) }, 'state fetched');
  }

  private async dropReplica(): Promise<void> {
    if (this.held === null) return;
    this.held = null;
    await this.o.compute.drop();
  }

  /** A step, given up when a stop order arrives while the coordinator is unreachable (it stopped). */
  private async trainOrStop(task: Train, held: Held): Promise<'applied' | 'resync' | 'drained' | 'stopped'> {
    try {
      return await this.train(task, held);
    } catch (err) {
      if (this.feed.stopSeen.aborted && !this.o.signal.aborted) {
        this.log.info({ step: task.step, err }, 'step abandoned: the coordinator sent a stop order');
        return 'stopped';
      }
      throw err;
    }
  }

  /**
   * 'drained' when a drain was asked for: the share is uploaded, the worker
   * leaves without applying; 'stopped' when a stop order came instead of the
   * reduced gradient (the step is not applied; the loop takes the order next).
   */
  private async train(task: Train, held: Held): Promise<'applied' | 'resync' | 'drained' | 'stopped'> {
    const t0 = performance.now();
    const { workerId } = this.o;
    if (this.reduced?.length !== held.paramCount) this.reduced = new Float32Array(held.paramCount);
    const into = this.reduced;
    let readyAt = 0;
    // Pulled while uploading: the coordinator sends each reduced chunk as soon as it is summed.
    const onPiece = (): void => {
      readyAt ||= performance.now();
    };
    const req = { worker_id: workerId, step: task.step, phase: task.phase };
    const pulling = Promise.all(this.exchangeLinks(held).map(({ link: l, slice }) =>
      l.pullReduced(req, (h) => reducedTarget(h as GradientHeader, into.subarray(slice.lo, slice.hi), this.o.config.cluster.chunkBytes), this.feed.stopSeen, onPiece))).then(() => into);
    pulling.catch(() => undefined); // awaited below; an upload failure must not leave it unhandled
    let computeMs = await this.deliver(task, held);
    const uploadedAt = performance.now();
    // The audited micro-batch alone, after the share and before the update (the thread takes calls in order); never awaited by the step.
    const auditing = task.audit === null ? null : this.audit(task, task.audit);
    let sequences = task.micro.reduce((n, m) => n + m.examples.length, 0);
    let microBatches = task.micro.length;
    // Until the reduced gradient comes: recovery tasks for this very step are ours to deliver too.
    for (;;) {
      if (this.o.drain.aborted) return 'drained';
      const waiting = new AbortController();
      const next = await Promise.race([
        pulling.then(() => 'pulled' as const, () => 'pulled' as const),
        this.feed.wait(AbortSignal.any([waiting.signal, this.o.drain, this.o.signal])).then(() => 'task' as const, () => 'task' as const),
      ]);
      waiting.abort();
      this.o.signal.throwIfAborted();
      if (next === 'pulled') break;
      if (this.o.drain.aborted) return 'drained';
      const t = this.feed.peek();
      // The coordinator is stopping: this step's reduced gradient will not come; the stop order is next.
      if (t?.kind === 'stop') return 'stopped';
      if (t === undefined || t.kind !== 'train' || !t.recovery || t.phase !== task.phase || t.step !== task.step) break;
      this.feed.take();
      if (t.micro.length > 0) {
        this.log.info({ step: t.step, seq: t.seq, microBatches: t.micro.map((m) => m.index) }, 'recovery task: computing micro-batches of a departed worker');
        computeMs += await this.deliver(t, held);
        sequences += t.micro.reduce((n, m) => n + m.examples.length, 0);
        microBatches += t.micro.length;
      }
    }
    let grad: Float32Array;
    try {
      grad = await pulling;
    } catch (err) {
      if (!(err instanceof ProtocolError) || err.name === 'NotRegisteredError') throw err;
      this.log.warn({ err, step: task.step }, 'reduced gradient unavailable; resynchronising from the state');
      await this.dropReplica();
      return 'resync';
    }
    const t3 = performance.now();
    const due = checksumDue(this.o.config, held.phase, task.step + 1);
    const applied = await this.o.compute.apply(grad, task.step, { checksum: due });
    this.reduced = applied.grad;
    held.step = task.step + 1;
    const t4 = performance.now();
    if (applied.checksum !== null) await this.checkReplica(held, applied.checksum);
    await auditing;
    const timing: StepTiming = {
      computeMs, uploadMs: uploadedAt - t0 - computeMs, exchangeMs: t3 - t0 - computeMs, waitMs: Math.max(0, (readyAt || t3) - uploadedAt),
      downloadMs: t3 - Math.max(readyAt, uploadedAt), applyMs: t4 - t3, stepMs: t4 - t0, sequences,
    };
    this.timings.add(timing);
    this.o.observer?.stepApplied({ phase: held.phase, step: held.step, timing, microBatches, receivedBytes: held.paramCount * Float32Array.BYTES_PER_ELEMENT });
    if (this.timings.size >= this.o.config.logEverySteps || held.step === this.o.config[held.phase].steps) await this.report(held);
    return 'applied';
  }

  /** Reducer j and its slice of the flat vector, for j = 0 (the coordinator) .. K-1. */
  private exchangeLinks(held: Held): { link: CoordinatorLink; slice: Slice }[] {
    const links = [this.o.link, ...(this.o.reducers ?? [])];
    const slices = sliceBounds(held.paramCount, links.length);
    return links.map((link, j) => ({ link, slice: slices[j]! }));
  }

  /**
   * Computes a train task's micro-batches and uploads each subtree's sum the
   * moment it is complete, while the next ones compute; returns the compute time.
   */
  private async deliver(task: Train, held: Held): Promise<number> {
    if (task.micro.length === 0) return 0;
    const uploads: Promise<unknown>[] = [];
    const upload = (p: ReadyPartial): void => {
      const header = {
        worker_id: this.o.workerId, step: task.step, phase: task.phase, range: p.range, stats_json: encodeIndexedStats(p.stats), compute_ms: p.computeMs,
      };
      // Slice j to reducer j, all at once.
      const sent = Promise.all(this.exchangeLinks(held).map(({ link, slice }) =>
        link.pushGradient(header, p.grad.subarray(slice.lo, slice.hi), this.o.config.cluster.chunkBytes, this.feed.stopSeen)));
      // Once sent (grpc-js has copied it into its frames), the buffer goes back to the compute thread.
      const done = sent.then(() => {
        this.o.observer?.uploaded(p.grad.byteLength);
        return this.o.compute.recycle?.(p.grad);
      });
      done.catch(() => undefined); // awaited below, with the others
      uploads.push(done);
    };
    const { computeMs } = await this.o.compute.gradients({ dataset: task.dataset, micro: task.micro, subtrees: task.subtrees, counts: task.counts }, upload);
    await Promise.all(uploads);
    return computeMs;
  }

  /**
   * The gradient audit's part of this worker: the micro-batch's gradient
   * alone, as a digest, reported to the coordinator, which compares it with
   * the other worker's. A failure here is logged and left: the coordinator
   * drops an audit it does not hear about, and the step is not held up.
   */
  private async audit(task: Train, micro: MicroInput): Promise<void> {
    const fields = { phase: task.phase, step: task.step, microBatch: micro.index };
    if (this.o.compute.audit === undefined) {
      this.log.warn(fields, 'gradient audit asked of a compute that cannot audit; not reported');
      return;
    }
    try {
      const d = await this.o.compute.audit({ dataset: task.dataset, micro, counts: task.counts });
      const r = await this.o.link.reportAudit({
        worker_id: this.o.workerId, phase: task.phase, step: task.step, micro_batch: d.index, sha256: d.sha256, tensors: d.tensors, stats_json: d.statsJson, fingerprint: d.fingerprint,
      }, this.feed.stopSeen);
      if (r.outcome === 'mismatch') this.log.warn({ ...fields, sha256: d.sha256 }, 'gradient audit failed: another worker computed this micro-batch differently');
      else this.log.debug({ ...fields, outcome: r.outcome }, 'gradient audit reported');
    } catch (err) {
      this.log.warn({ ...fields, err }, 'gradient audit not reported; the coordinator drops it');
    }
  }

  private async checkReplica(held: Held, checksum: string): Promise<void> {
    const r = await this.o.link.reportChecksum({ worker_id: this.o.workerId, phase: held.phase, step: held.step, checksum }, this.feed.stopSeen);
    if (!r.match) {
      throw new ReplicaMismatchError(`replica of worker ${this.o.workerId} differs from the coordinator's after ${held.phase} step ${held.step}: expected checksum ${r.reference_checksum}, got ${checksum}`);
    }
  }

  private async report(held: Held): Promise<void> {
    const window = { phase: held.phase, ...this.timings.take() };
    this.log.info(window, 'worker steps');
    await this.o.link.reportMetrics({ worker_id: this.o.workerId, step: held.step, json: JSON.stringify(window) }).catch((err: unknown) => {
      this.log.debug({ err }, 'timings not reported');
    });
  }

  private async evaluate(task: Eval): Promise<void> {
    const out = await this.o.compute.evaluate({ dataset: task.dataset, chunks: task.chunks });
    const results = out.map((r) => ({ index: r.index, stats_json: encodeStats(r.stats), predictions: [...r.predictions] }));
    await this.o.link.pushEvalResults({ worker_id: this.o.workerId, seq: task.seq, results });
    this.log.debug({ seq: task.seq, chunks: results.length, dataset: task.dataset, recovery: task.recovery }, 'eval chunks sent');
  }
}

/**
 * Where a pulled reduced slice goes, once its header is read and before any
 * byte is: the announced size must be the slice's (from the parameter
 * layout) and the chunk size the run's (cluster.chunkBytes, at most 8 MiB),
 * else ProtocolError, expected vs got. Nothing is sized by the header.
 */
export function reducedTarget(h: GradientHeader, target: Float32Array, chunkBytes: number): Float32Array {
  const what = `reduced gradient of ${h.phase} step ${h.step}`;
  if (h.total_bytes !== target.byteLength) throw new ProtocolError(`${what}: expected ${target.byteLength} bytes (the slice of the parameter layout), got a header announcing ${h.total_bytes} bytes`);
  if (h.chunk_bytes !== chunkBytes) throw new ProtocolError(`${what}: expected chunks of ${chunkBytes} bytes (cluster.chunkBytes), got ${h.chunk_bytes} bytes`);
  return target;
}
