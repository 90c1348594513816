/**
 * Per-worker totals of a distributed run, for the closing table and
 * run-summary.json: the micro-batches whose partial sums each worker
 * delivered (the service's `received`), and from its timings reports
 * (worker/step-timings.ts windows, summed) its steps, step time and compute
 * time. It sits in the service's one observer slot and forwards every call
 * to the next observer (the Prometheus metrics).
 *
 * A straggler, as the closing table flags it: a worker whose mean compute
 * time per micro-batch is more than STRAGGLER_RATIO (1.5) times the median of
 * the other workers' — the rule worker-speeds.ts applies live. Not the step
 * time: in synchronous training every worker's step lasts as long as the
 * slowest one's (the others wait for the reduced gradient), and the
 * partitioner gives a slow worker fewer micro-batches, so only the time per
 * micro-batch shows who holds the run back.
 *
 * Bounded: at most `maxTracked` workers (far above cluster.maxWorkers).
 * Knows nothing of gRPC.
 */
import type { ServiceObserver } from './coordinator-service.js';

export const STRAGGLER_RATIO = 1.5;

export interface WorkerStats {
  /** Steps in the worker's timings reports. */
  steps: number;
  /** Micro-batches whose partial gradient it delivered. */
  microBatches: number;
  /** Mean wall time of its steps, from the assignment's arrival to the update applied. */
  meanStepMs: number;
  /** Mean compute time per micro-batch (0 before any report). */
  msPerMicroBatch: number;
  straggler: boolean;
}

interface Totals {
  steps: number;
  microBatches: number;
  stepMs: number;
  computeMs: number;
}

const NO_OBSERVER: ServiceObserver = { received() {}, served() {}, refusedUpload() {}, timings() {} };

export class WorkerTally implements ServiceObserver {
  private readonly totals = new Map<string, Totals>();

  constructor(
    private readonly next: ServiceObserver = NO_OBSERVER,
    private readonly maxTracked = 4096,
  ) {}

  received(workerId: string, microBatches: number, bytes: number): void {
    const t = this.of(workerId);
    if (t !== null) t.microBatches += microBatches;
    this.next.received(workerId, microBatches, bytes);
  }

  served(workerId: string, bytes: number): void {
    this.next.served(workerId, bytes);
  }

  refusedUpload(err: unknown): void {
    this.next.refusedUpload(err);
  }

  timings(workerId: string, fields: Readonly<Record<string, number | boolean | string>>): void {
    const n = (k: string): number => (typeof fields[k] === 'number' && Number.isFinite(fields[k]) ? Math.max(0, fields[k] as number) : 0);
    const t = this.of(workerId);
    if (t !== null) {
      t.steps += n('steps');
      t.stepMs += n('stepMs');
      t.computeMs += n('computeMs');
    }
    this.next.timings(workerId, fields);
  }

  /** Every worker seen, by id (sorted), with the straggler flags. */
  report(): Record<string, WorkerStats> {
    const ids = [...this.totals.keys()].sort();
    const perMicro = new Map(ids.map((id): [string, number] => {
      const t = this.totals.get(id)!;
      return [id, t.microBatches > 0 ? t.computeMs / t.microBatches : 0];
    }));
    const slow = new Set(stragglers(perMicro));
    const out: Record<string, WorkerStats> = {};
    for (const id of ids) {
      const t = this.totals.get(id)!;
      out[id] = {
        steps: t.steps, microBatches: t.microBatches, meanStepMs: t.steps > 0 ? t.stepMs / t.steps : 0,
        msPerMicroBatch: perMicro.get(id)!, straggler: slow.has(id),
      };
    }
    return out;
  }

  private of(workerId: string): Totals | null {
    const t = this.totals.get(workerId);
    if (t !== undefined) return t;
    if (this.totals.size >= this.maxTracked) return null;
    const fresh = { steps: 0, microBatches: 0, stepMs: 0, computeMs: 0 };
    this.totals.set(workerId, fresh);
    return fresh;
  }
}

/**
 * The ids whose ms per micro-batch exceeds STRAGGLER_RATIO × the median of
 * the others' (workers with no measurement, 0, are neither judged nor counted).
 */
export function stragglers(msPerMicroBatch: ReadonlyMap<string, number>): string[] {
  const measured = [...msPerMicroBatch].filter(([, ms]) => ms > 0);
  const out: string[] = [];
  for (const [id, ms] of measured) {
    const others = measured.filter(([o]) => o !== id).map(([, x]) => x);
    if (others.length > 0 && ms > STRAGGLER_RATIO * median(others)) out.push(id);
  }
  return out;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
