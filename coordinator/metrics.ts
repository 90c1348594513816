/**
 * The coordinator's Prometheus metrics (one registry per process, with the
 * default process metrics), served on its health port's /metrics. Fed from
 * where the facts are: the run loop's step, phase and checkpoint hooks and
 * membership changes (as a RunListener, fed by main.ts beside the run-events
 * hub), the gRPC service's uploads, pulls, refusals and worker timings reports
 * (`ServiceObserver` of coordinator-service.ts), and, read at scrape time, the
 * members and the gradient audits (`watch`).
 *
 * Per-worker series are bounded: they exist only for workers in the run
 * (at most cluster.maxWorkers live at once) and are removed when a worker
 * leaves. Every other label takes a fixed set of values.
 *
 * Knows nothing of HTTP or gRPC; prom-client through shared/observe/prometheus.ts.
 */
import { counter, createRegistry, exposition, gauge, histogram, type Registry } from '../shared/observe/prometheus.js';
import type { MembershipChange } from './membership.js';
import type { RunListener } from './run-listener.js';

export const RUN_PHASES = ['starting', 'pretrain', 'finetune', 'evaluate', 'done', 'failed'] as const;
export type RunPhaseLabel = (typeof RUN_PHASES)[number];

/** How a refused upload is counted: by error class, a fixed set. */
const REFUSAL_REASONS: Record<string, string> = {
  AlreadyReceivedError: 'duplicate', NotRegisteredError: 'not_registered', ShapeError: 'shape', LimitExceededError: 'limit', ProtocolError: 'protocol',
};

/** Where a worker's step time goes (its ReportMetrics window, per step). */
export const STEP_PARTS = ['compute', 'exchange', 'waiting', 'apply'] as const;

/** What the metrics read at scrape time. */
export interface RunView {
  members(): readonly { status: string }[];
  audits: { readonly passed: number; readonly dropped: number };
  /** The run's fatal error, if any (a GradientAuditError counts as a failed audit). */
  fatal(): Error | null;
}

export interface StepFacts {
  lr: number;
  gradNorm: number;
  sequences: number;
  durationMs: number;
  skipped?: boolean;
}

const STEP_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class CoordinatorMetrics implements RunListener {
  readonly registry: Registry = createRegistry();
  private readonly live = new Set<string>();
  private readonly parts = new Map<string, Record<(typeof STEP_PARTS)[number], number>>();
  private view: RunView | null = null;
  private lastCheckpointS: number | null = null;
  private auditsSeen = { passed: 0, dropped: 0, failed: 0 };

  private readonly phaseGauge = gauge(this.registry, 'bertfleet_phase', 'The run phase: 1 for the current one, 0 for the others', ['phase']);
  private readonly stepGauge = gauge(this.registry, 'bertfleet_step', 'Steps completed in the current training phase');
  private readonly phaseSteps = gauge(this.registry, 'bertfleet_phase_steps', 'Steps of the current training phase');
  private readonly loss = gauge(this.registry, 'bertfleet_loss', 'Training loss of the last step');
  private readonly lr = gauge(this.registry, 'bertfleet_learning_rate', 'Learning rate of the last step');
  private readonly gradNorm = gauge(this.registry, 'bertfleet_gradient_norm', 'Global gradient norm of the last step (before clipping)');
  private readonly seqPerSec = gauge(this.registry, 'bertfleet_sequences_per_second', 'Sequences per second of the last step');
  private readonly stepDuration = histogram(this.registry, 'bertfleet_step_duration_seconds', 'Wall time of a step, from building its work to its update applied', STEP_BUCKETS_S);
  private readonly skipped = counter(this.registry, 'bertfleet_skipped_steps_total', 'Steps skipped by the non-finite guard (nonFinite: skip)', ['phase']);
  private readonly stepPart = gauge(this.registry, 'bertfleet_step_part_seconds', 'Mean seconds per step the workers spend in each part (compute, exchange, waiting, apply), over their latest reports', ['part']);
  private readonly workerMicro = counter(this.registry, 'bertfleet_worker_micro_batches_total', 'Micro-batches whose partial gradient a worker delivered', ['worker']);
  private readonly workerStep = gauge(this.registry, 'bertfleet_worker_step_seconds', 'Mean step time of a worker over its latest report', ['worker']);
  private readonly members = gauge(this.registry, 'bertfleet_members', 'Workers in the run, by state', ['state']);
  private readonly departures = counter(this.registry, 'bertfleet_worker_departures_total', 'Workers that left the run, by reason', ['reason']);
  private readonly checkpointTime = gauge(this.registry, 'bertfleet_last_checkpoint_timestamp_seconds', 'Unix time of the last trainer state written (NaN before the first)');
  private readonly checkpointAge = gauge(this.registry, 'bertfleet_checkpoint_age_seconds', 'Seconds since the last trainer state was written (NaN before the first)');
  private readonly bytes = counter(this.registry, 'bertfleet_exchange_bytes_total', 'Gradient bytes exchanged with workers: received (partial sums) and sent (reduced)', ['direction']);
  private readonly refused = counter(this.registry, 'bertfleet_refused_uploads_total', 'Gradient uploads refused, by reason', ['reason']);
  private readonly audits = counter(this.registry, 'bertfleet_gradient_audits_total', 'Gradient audits by result: passed, dropped (a worker left), failed', ['result']);
  private readonly info = gauge(this.registry, 'bertfleet_run_info', 'Always 1; the run id as a label', ['run_id']);

  constructor(runId: string, private readonly now: () => number = Date.now) {
    this.info.set({ run_id: runId }, 1);
    this.phase('starting');
    for (const g of [this.loss, this.lr, this.gradNorm, this.seqPerSec, this.checkpointTime, this.checkpointAge]) g.set(NaN);
    for (const part of STEP_PARTS) this.stepPart.set({ part }, 0);
    for (const direction of ['received', 'sent']) this.bytes.inc({ direction }, 0);
  }

  /** The members and audits, read at each scrape. */
  watch(view: RunView): void {
    this.view = view;
  }

  // RunListener (run-listener.ts): the run loop's hooks and membership changes, through main.ts.

  phase(current: RunPhaseLabel, _step?: number): void {
    for (const p of RUN_PHASES) this.phaseGauge.set({ phase: p }, p === current ? 1 : 0);
  }

  step(phase: string, step: number, total: number, loss: number, s: StepFacts): void {
    this.stepGauge.set(step);
    this.phaseSteps.set(total);
    this.loss.set(loss);
    this.lr.set(s.lr);
    this.gradNorm.set(s.gradNorm);
    this.seqPerSec.set(s.durationMs > 0 ? (1000 * s.sequences) / s.durationMs : 0);
    this.stepDuration.observe(s.durationMs / 1000);
    if (s.skipped === true) this.skipped.inc({ phase });
  }

  checkpoint(_phase?: string, _step?: number, _dir?: string): void {
    this.lastCheckpointS = this.now() / 1000;
    this.checkpointTime.set(this.lastCheckpointS);
  }

  membership(c: MembershipChange, _members?: number): void {
    if (c.kind === 'joined') this.workerJoined(c.member.id);
    else this.workerLeft(c.member.id, c.member.leftReason ?? 'error');
  }

  private workerJoined(workerId: string): void {
    this.live.add(workerId);
    this.workerMicro.inc({ worker: workerId }, 0);
  }

  /** A worker left: its series go, so label values stay bounded by the live workers. */
  private workerLeft(workerId: string, reason: string): void {
    this.live.delete(workerId);
    this.parts.delete(workerId);
    this.workerMicro.remove({ worker: workerId });
    this.workerStep.remove({ worker: workerId });
    this.departures.inc({ reason });
  }

  // ServiceObserver (coordinator-service.ts)

  received(workerId: string, microBatches: number, bytes: number): void {
    this.bytes.inc({ direction: 'received' }, bytes);
    if (this.live.has(workerId)) this.workerMicro.inc({ worker: workerId }, microBatches);
  }

  served(_workerId: string, bytes: number): void {
    this.bytes.inc({ direction: 'sent' }, bytes);
  }

  refusedUpload(err: unknown): void {
    const name = err instanceof Error ? err.name : '';
    this.refused.inc({ reason: REFUSAL_REASONS[name] ?? 'other' });
  }

  /** A worker's ReportMetrics window (worker/step-timings.ts): totals over `steps` steps. */
  timings(workerId: string, f: Readonly<Record<string, number | boolean | string>>): void {
    const n = (k: string): number => (typeof f[k] === 'number' && Number.isFinite(f[k]) ? (f[k] as number) : 0);
    const steps = n('steps');
    if (steps <= 0 || !this.live.has(workerId)) return;
    const per = (ms: number): number => Math.max(0, ms) / 1000 / steps;
    this.parts.set(workerId, { compute: per(n('computeMs')), exchange: per(n('exchangeMs') - n('waitMs')), waiting: per(n('waitMs')), apply: per(n('applyMs')) });
    this.workerStep.set({ worker: workerId }, per(n('stepMs')));
  }

  async exposition(): Promise<{ contentType: string; body: string }> {
    this.collect();
    return exposition(this.registry);
  }

  /** The values read rather than pushed: members, audits, checkpoint age, the step split. */
  private collect(): void {
    const v = this.view;
    if (v !== null) {
      const by = { joining: 0, training: 0 };
      for (const m of v.members()) if (m.status === 'joining' || m.status === 'training') by[m.status]++;
      for (const [state, count] of Object.entries(by)) this.members.set({ state }, count);
      const failed = v.fatal()?.name === 'GradientAuditError' ? 1 : 0;
      const now = { passed: v.audits.passed, dropped: v.audits.dropped, failed };
      for (const result of ['passed', 'dropped', 'failed'] as const) {
        this.audits.inc({ result }, Math.max(0, now[result] - this.auditsSeen[result]));
      }
      this.auditsSeen = now;
    }
    this.checkpointAge.set(this.lastCheckpointS === null ? NaN : Math.max(0, this.now() / 1000 - this.lastCheckpointS));
    for (const part of STEP_PARTS) {
      const values = [...this.parts.values()].map((p) => p[part]);
      this.stepPart.set({ part }, values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length);
    }
  }
}
