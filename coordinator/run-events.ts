/**
 * A run's live facts in one place: a small typed event hub that the run loop
 * and the distributed executor publish to (steps, phases, membership, worker
 * timings, evaluations, checkpoints, the run's end) and that the dashboard's
 * event stream (web/dashboard.ts) and the report (web/report-data.ts) read.
 *
 * Every event gets `seq` (1, 2, ... in publishing order) and `at` (Unix ms).
 * The history is kept so a dashboard opened late shows the whole curve, and
 * it is bounded: past `maxEvents`, every other sample (step and
 * worker-timings events) of the older two thirds is dropped — the curve
 * keeps its span and shape, at less resolution where it is old — and, if
 * that leaves more than 3/4 of the bound (facts alone), the oldest events
 * go. A listener that throws is logged and unsubscribed: a broken viewer
 * never stops the run.
 *
 * Knows nothing of HTTP, files or Prometheus.
 */
import type { Logger } from '../shared/log.js';
import type { ServiceObserver } from './coordinator-service.js';
import type { MembershipChange } from './membership.js';
import type { RunListener } from './run-listener.js';
import type { StepInfo } from './train-phase.js';

/** The step record's accuracy and partial-loss fields (steps.jsonl), as present in the phase. */
export const STEP_RECORD_FIELDS = ['accuracy', 'mlmLoss', 'nspLoss', 'mlmAccuracy', 'nspAccuracy'] as const;

export interface RunStartedEvent {
  type: 'run';
  /** `train` (in-process) or `coordinator` (a distributed run; `bertfleet cluster` runs one). */
  mode: 'train' | 'coordinator';
  output: string;
  /** Workers waited for before step 0; null in-process. */
  workers: number | null;
  steps: { pretrain: number; finetune: number };
  model: string;
  seed: number;
  resumed: boolean;
}

export interface StepEvent {
  type: 'step';
  phase: string;
  /** Steps completed in the phase (1-based, as the progress bar counts). */
  step: number;
  total: number;
  loss: number;
  lr: number;
  gradNorm: number;
  sequences: number;
  seqPerSec: number;
  durationMs: number;
  skipped?: boolean;
  accuracy?: number;
  mlmLoss?: number;
  nspLoss?: number;
  mlmAccuracy?: number;
  nspAccuracy?: number;
}

export interface PhaseEvent {
  type: 'phase';
  phase: string;
  step: number;
}

export interface MemberEvent {
  type: 'member';
  change: 'joined' | 'left';
  workerId: string;
  /** Workers training or joining after the change. */
  members: number;
  rejoined?: boolean;
  /** Why it left: drained, heartbeat_timeout, error. */
  reason?: string;
  detail?: string;
}

/** A worker's timings report (worker/step-timings.ts window), as means per step. */
export interface WorkerTimingsEvent {
  type: 'worker-timings';
  workerId: string;
  steps: number;
  stepMs: number;
  computeMs: number;
  exchangeMs: number;
  waitMs: number;
}

export interface EvaluationEvent {
  type: 'evaluation';
  /** `pretrain held-out`, `validation` or `test`. */
  split: string;
  metrics: Record<string, unknown>;
}

export interface CheckpointEvent {
  type: 'checkpoint';
  phase: string;
  step: number;
  dir: string;
}

export interface RunEndEvent {
  type: 'finished' | 'failed' | 'stopped';
  error?: string;
}

export type RunEventBody = RunStartedEvent | StepEvent | PhaseEvent | MemberEvent | WorkerTimingsEvent | EvaluationEvent | CheckpointEvent | RunEndEvent;
export type RunEvent = RunEventBody & { seq: number; at: number };

const SAMPLE_TYPES: ReadonlySet<string> = new Set(['step', 'worker-timings']);

export interface RunEventsOptions {
  log: Logger;
  /** History bound (default 50,000 events, ~15 MB). */
  maxEvents?: number;
  now?: () => number;
}

export class RunEvents implements RunListener {
  private readonly log: Logger;
  private readonly maxEvents: number;
  private readonly now: () => number;
  private readonly listeners = new Set<(e: RunEvent) => void>();
  private events: RunEvent[] = [];
  private seq = 0;

  constructor(o: RunEventsOptions) {
    this.log = o.log.child({ component: 'run-events' });
    this.maxEvents = o.maxEvents ?? 50_000;
    if (!(Number.isInteger(this.maxEvents) && this.maxEvents >= 8)) throw new RangeError(`maxEvents: expected an integer >= 8, got ${this.maxEvents}`);
    this.now = o.now ?? Date.now;
  }

  publish(body: RunEventBody): RunEvent {
    const e = { ...body, seq: ++this.seq, at: this.now() } as RunEvent;
    this.events.push(e);
    if (this.events.length > this.maxEvents) this.thin();
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        this.listeners.delete(l);
        this.log.error({ err, type: e.type }, 'run event listener failed; unsubscribed');
      }
    }
    return e;
  }

  /** Called with every event published from now on; returns the unsubscribe. */
  subscribe(listener: (e: RunEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** The kept events, oldest first (a copy). */
  history(): RunEvent[] {
    return [...this.events];
  }

  // Typed publishers, shaped like the run loop's hooks (run-loop.ts, train-phase.ts).

  step(phase: string, step: number, total: number, loss: number, info: StepInfo): void {
    const e: StepEvent = {
      type: 'step', phase, step, total, loss, lr: info.lr, gradNorm: info.gradNorm, sequences: info.sequences,
      seqPerSec: info.durationMs > 0 ? (1000 * info.sequences) / info.durationMs : 0, durationMs: info.durationMs,
      ...(info.skipped === true && { skipped: true }),
    };
    for (const k of STEP_RECORD_FIELDS) {
      const v = info.record?.[k];
      if (typeof v === 'number') e[k] = v;
    }
    this.publish(e);
  }

  phase(phase: string, step: number): void {
    this.publish({ type: 'phase', phase, step });
  }

  checkpoint(phase: string, step: number, dir: string): void {
    this.publish({ type: 'checkpoint', phase, step, dir });
  }

  evaluated(split: string, metrics: object): void {
    this.publish({ type: 'evaluation', split, metrics: { ...metrics } });
  }

  membership(c: MembershipChange, members: number): void {
    this.publish(c.kind === 'joined'
      ? { type: 'member', change: 'joined', workerId: c.member.id, members, rejoined: c.rejoined }
      : { type: 'member', change: 'left', workerId: c.member.id, members, reason: c.member.leftReason ?? 'error', detail: c.detail });
  }

  ended(outcome: 'finished' | 'failed' | 'stopped', err?: unknown): void {
    this.publish({ type: outcome, ...(err !== undefined && { error: err instanceof Error ? err.message : String(err) }) });
  }

  /** A ServiceObserver that publishes each worker's timings report, then passes every call on to `next`. */
  observer(next: ServiceObserver): ServiceObserver {
    return {
      received: (w, micro, bytes) => next.received(w, micro, bytes),
      served: (w, bytes) => next.served(w, bytes),
      refusedUpload: (err) => next.refusedUpload(err),
      timings: (w, f) => {
        this.workerTimings(w, f);
        next.timings(w, f);
      },
    };
  }

  private workerTimings(workerId: string, f: Readonly<Record<string, number | boolean | string>>): void {
    const n = (k: string): number => (typeof f[k] === 'number' && Number.isFinite(f[k]) ? Math.max(0, f[k] as number) : 0);
    const steps = n('steps');
    if (steps <= 0) return;
    this.publish({
      type: 'worker-timings', workerId, steps,
      stepMs: n('stepMs') / steps, computeMs: n('computeMs') / steps, exchangeMs: n('exchangeMs') / steps, waitMs: n('waitMs') / steps,
    });
  }

  /** Halves the samples of the older two thirds, then drops the oldest events while more than 3/4 of the bound remain. */
  private thin(): void {
    const older = Math.ceil((2 * this.events.length) / 3);
    let sample = 0;
    // The first sample is always kept: the curve keeps its start.
    const kept = this.events.filter((e, i) => i >= older || !SAMPLE_TYPES.has(e.type) || sample++ % 2 === 0);
    const target = Math.floor((3 * this.maxEvents) / 4);
    this.events = kept.length > target ? kept.slice(kept.length - target) : kept;
  }
}
