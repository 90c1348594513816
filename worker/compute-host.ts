/**
 * A worker's compute, run in a thread of its own so the main thread's event
 * loop (heartbeats, gRPC keepalive, NATS) keeps turning while a step computes.
 * The thread (compute-thread.ts) starts the backend, loads the model config and
 * data, holds the replica, and runs the same WorkerCompute and Replica code as
 * the in-process trainer; this class is its main-thread handle. Every method is
 * async and answered in call order; Float32Arrays cross by transfer, not copy.
 * An error thrown in the thread comes back as the same bertfleet class; if the
 * thread dies, every pending and later call rejects with a BackendError.
 *
 * Knows nothing of gRPC or the worker loop.
 */
import { Worker } from 'node:worker_threads';
import { prepareOpenblasCore } from '../shared/backend/native-addon.js';
import type { BackendInfo, BackendName } from '../shared/backend/select.js';
import type { RunFingerprints } from '../shared/cluster/fingerprints.js';
import type { RunConfig } from '../shared/config/run-config.js';
import { BackendError } from '../shared/errors.js';
import type { BertConfig } from '../shared/model/config.js';
import { flatLayout } from '../shared/model/params.js';
import { phaseSpecs, type TrainPhase } from '../shared/training/phase-settings.js';
import {
  decodeError, owned, transferList,
  type ApplyResult, type AuditArgs, type Calls, type FaultInjection, type CallKind, type EvalArgs, type EvalResult, type GradientsArgs, type GradientsResult,
  type LoadArgs, type Progress, type Reply, type Request, type Started, type ThreadOptions,
} from './compute-protocol.js';
import type { AuditDigest, ReplicaCompute } from './compute-port.js';
import type { ReadyPartial } from './compute.js';

export interface ComputeHostOptions {
  /** The run config from the coordinator. */
  config: RunConfig;
  backend: { name: BackendName; blasThreads: number };
  /** The thread builds its own pino logger (JSON on fd 2) with these. */
  logLevel: string;
  logBindings: Record<string, unknown>;
  /** Test hook: sleep this long after each micro-batch gradient (a straggler). 0 = none. */
  delayMsPerMicroBatch?: number;
  /** Test hook: 'audit-flip' makes every audit digest this worker reports wrong. Default 'none'. */
  faultInject?: FaultInjection;
}

interface Pending {
  kind: CallKind;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress?: (p: Progress) => void;
}

/** Requests to one thread and its replies, matched by id; the thread's end becomes the error of every pending and later call. */
class ThreadLink {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private dead: BackendError | null = null;
  private closing = false;
  private readonly exited: Promise<void>;

  constructor(private readonly thread: Worker) {
    thread.on('message', (r: Reply | Progress) => ('partial' in r ? this.progress(r) : this.settle(r)));
    thread.on('error', (err: unknown) => {
      const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this.fail(new BackendError(`compute thread failed: ${what}`, { cause: err }));
    });
    thread.on('messageerror', (err) => this.fail(new BackendError(`compute thread sent a message that could not be read: ${err.message}`, { cause: err })));
    this.exited = new Promise((resolve) => {
      thread.once('exit', (code) => {
        this.fail(new BackendError(this.closing ? 'compute thread closed' : `compute thread exited with code ${code}`));
        resolve();
      });
    });
  }

  call<K extends CallKind>(kind: K, args: Calls[K]['args'], transfer: ArrayBuffer[] = [], onProgress?: (p: Progress) => void): Promise<Calls[K]['result']> {
    if (this.dead !== null) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { kind, resolve: resolve as (v: unknown) => void, reject, ...(onProgress !== undefined && { onProgress }) });
      try {
        this.thread.postMessage({ id, kind, args } as Request, transfer);
      } catch (err) {
        this.pending.delete(id);
        reject(new BackendError(`compute thread ${kind}: the request could not be sent: ${(err as Error).message}`, { cause: err }));
      }
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.thread.terminate();
    await this.exited;
  }

  private progress(p: Progress): void {
    const pending = this.pending.get(p.id);
    if (pending?.onProgress === undefined) {
      this.fail(new BackendError(`compute thread sent progress for call ${p.id}, which expects none`));
      return;
    }
    pending.onProgress(p);
  }

  private settle(r: Reply): void {
    const p = this.pending.get(r.id);
    if (p === undefined) {
      this.fail(new BackendError(`compute thread answered call ${r.id}, which is not pending`));
      return;
    }
    this.pending.delete(r.id);
    if (r.ok) p.resolve(r.result);
    else p.reject(decodeError(r.error, p.kind));
  }

  private fail(err: BackendError): void {
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
  }
}

export class ComputeHost implements ReplicaCompute {
  private constructor(
    private readonly link: ThreadLink,
    private readonly started: Started,
  ) {}

  /** Starts the thread: backend, model config, data (progress off) and fingerprints. Rejects (and ends the thread) if any fails. */
  static async start(o: ComputeHostOptions): Promise<ComputeHost> {
    const workerData: ThreadOptions = {
      config: o.config, backend: o.backend, logLevel: o.logLevel, logBindings: o.logBindings,
      delayMsPerMicroBatch: o.delayMsPerMicroBatch ?? 0, faultInject: o.faultInject ?? 'none',
    };
    prepareOpenblasCore(); // OPENBLAS_CORETYPE must be set here: the thread's env writes never reach libopenblas
    const link = new ThreadLink(new Worker(new URL('./compute-thread-boot.mjs', import.meta.url), { workerData }));
    try {
      return new ComputeHost(link, await link.call('start', {}));
    } catch (err) {
      await link.close();
      throw err;
    }
  }

  /** Exactly what runFingerprints(bert, data, backend) gives in-process. */
  get fingerprints(): RunFingerprints {
    return this.started.fingerprints;
  }

  get bert(): BertConfig {
    return this.started.bert;
  }

  get numLabels(): number {
    return this.started.numLabels;
  }

  paramCount(phase: TrainPhase): number {
    return flatLayout(phaseSpecs(this.started.bert, phase, this.started.numLabels)).total;
  }

  get backend(): BackendInfo {
    return this.started.backend;
  }

  /** Replaces the replica. The arrays are transferred: the caller must not use them afterwards. */
  load(s: LoadArgs): Promise<void> {
    const args = { phase: s.phase, step: s.step, params: owned(s.params), m: owned(s.m), v: owned(s.v) };
    return this.link.call('load', args, transferList([args.params, args.m, args.v])).then(() => undefined);
  }

  /**
   * Gradients of `micro` summed per subtree (as WorkerCompute.gradients), each
   * subtree's sum given to `onPartial` the moment the thread has it (with
   * `onPartial`, `partials` of the result is empty) or else returned;
   * per-micro-batch stats and the thread's compute time.
   */
  async gradients(r: GradientsArgs, onPartial?: (p: ReadyPartial) => void): Promise<GradientsResult> {
    const partials: ReadyPartial[] = [];
    const res = await this.link.call('gradients', r, [], (p) => (onPartial ?? ((x) => partials.push(x)))(p.partial));
    return { ...res, partials: onPartial === undefined ? partials : [] };
  }

  /**
   * Applies the reduced gradient of `step` (clip + AdamW with the phase's
   * settings). `grad` is transferred and handed back, clipped, for reuse.
   * Rejects with ProtocolError unless `step` is the replica's next step.
   */
  apply(grad: Float32Array, step: number, opts: { checksum: boolean }): Promise<ApplyResult> {
    const g = owned(grad);
    return this.link.call('apply', { grad: g, step, checksum: opts.checksum }, transferList([g]));
  }

  checksum(): Promise<string> {
    return this.link.call('checksum', {});
  }

  evaluate(r: EvalArgs): Promise<EvalResult> {
    return this.link.call('evaluate', r);
  }

  /** The digest of one micro-batch's gradient alone, on the replica before the step's update (the gradient audit). */
  audit(r: AuditArgs): Promise<AuditDigest> {
    return this.link.call('audit', r);
  }

  /** Hands a gradient buffer from `gradients` back to the thread for reuse (transferred: do not use it afterwards). */
  recycle(grad: Float32Array): void {
    const g = owned(grad);
    this.link.call('recycle', { grad: g }, transferList([g])).catch(() => undefined); // a dead thread reports itself on the next call
  }

  /** Releases the replica (its tensors). */
  drop(): Promise<void> {
    return this.link.call('drop', {}).then(() => undefined);
  }

  /** Ends the thread; pending and later calls reject with BackendError. Idempotent. */
  close(): Promise<void> {
    return this.link.close();
  }
}
