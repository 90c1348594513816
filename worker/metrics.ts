/**
 * A worker's Prometheus metrics (one registry per process, with the default
 * process metrics), served on its health port's /metrics: its lifecycle
 * state, the steps it applied and where their time went (the same split as
 * worker/step-timings.ts: compute, upload, waiting, download, apply), the
 * micro-batches and sequences it computed, and the gradient bytes it sent
 * and received. Fed by worker/main.ts (state) and the worker loop's
 * `LoopObserver` hooks; every label takes a fixed set of values.
 *
 * Knows nothing of HTTP or gRPC; prom-client through shared/observe/prometheus.ts.
 */
import { counter, createRegistry, exposition, gauge, histogram, type Registry } from '../shared/observe/prometheus.js';
import type { StepTiming } from './step-timings.js';

export const WORKER_STATES = ['connecting', 'loading', 'registering', 'training', 'draining', 'waiting', 'finished', 'stopped'] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

const PARTS = { compute: 'computeMs', upload: 'uploadMs', waiting: 'waitMs', download: 'downloadMs', apply: 'applyMs' } as const;
const STEP_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** One applied step, as the worker loop reports it. */
export interface AppliedStep {
  phase: string;
  /** Steps applied in the phase, this one included. */
  step: number;
  timing: StepTiming;
  microBatches: number;
  receivedBytes: number;
}

export class WorkerMetrics {
  readonly registry: Registry = createRegistry();
  private readonly state = gauge(this.registry, 'bertfleet_worker_state', 'The worker\'s lifecycle state: 1 for the current one', ['state']);
  private readonly step = gauge(this.registry, 'bertfleet_worker_step', 'Steps this worker\'s replica has applied in the current phase');
  private readonly steps = counter(this.registry, 'bertfleet_worker_steps_total', 'Steps this worker computed and applied', ['phase']);
  private readonly stepDuration = histogram(this.registry, 'bertfleet_worker_step_duration_seconds', 'A step from its assignment\'s arrival to the update applied', STEP_BUCKETS_S);
  private readonly parts = counter(this.registry, 'bertfleet_worker_step_part_seconds_total', 'Step time by part: compute, upload, waiting (for the others and the reduction), download, apply', ['part']);
  private readonly micro = counter(this.registry, 'bertfleet_worker_computed_micro_batches_total', 'Micro-batches whose gradient this worker computed (recoveries included)');
  private readonly sequences = counter(this.registry, 'bertfleet_worker_sequences_total', 'Sequences this worker computed gradients for');
  private readonly bytes = counter(this.registry, 'bertfleet_worker_exchange_bytes_total', 'Gradient bytes: sent (partial sums) and received (reduced)', ['direction']);

  constructor() {
    this.setState('connecting');
    for (const part of Object.keys(PARTS)) this.parts.inc({ part }, 0);
    for (const direction of ['sent', 'received']) this.bytes.inc({ direction }, 0);
  }

  setState(current: WorkerState): void {
    for (const s of WORKER_STATES) this.state.set({ state: s }, s === current ? 1 : 0);
  }

  // LoopObserver (worker-loop.ts)

  uploaded(bytes: number): void {
    this.bytes.inc({ direction: 'sent' }, bytes);
  }

  stepApplied(s: AppliedStep): void {
    this.step.set(s.step);
    this.steps.inc({ phase: s.phase });
    this.stepDuration.observe(s.timing.stepMs / 1000);
    for (const [part, field] of Object.entries(PARTS) as [string, keyof StepTiming][]) this.parts.inc({ part }, Math.max(0, s.timing[field]) / 1000);
    this.micro.inc(s.microBatches);
    this.sequences.inc(s.timing.sequences);
    this.bytes.inc({ direction: 'received' }, s.receivedBytes);
  }

  exposition(): Promise<{ contentType: string; body: string }> {
    return exposition(this.registry);
  }
}
