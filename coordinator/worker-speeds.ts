/**
 * How fast each worker computes a micro-batch, from the compute time its
 * uploads report: a moving average per worker, turned into partition
 * weights (speed = 1 / ms per micro-batch), and the straggler verdict — a
 * worker persistently slower than the others' median by `stragglerRatio`
 * gets fewer micro-batches through its weight and is logged once when it
 * becomes a straggler (and once when it recovers). Weights change who
 * computes what, never the bits.
 *
 * Bounded: a departed worker is forgotten (`forget`), and at most
 * `maxTracked` workers are tracked at once (the longest-tracked one goes
 * first), so measurements that land after a worker left cannot pile up.
 *
 * Knows nothing of gRPC; the caller passes the measurements.
 */
import type { Logger } from '../shared/log.js';

interface Speed {
  msPerMicro: number;
  samples: number;
  straggler: boolean;
}

export interface SpeedOptions {
  log: Logger;
  /** Weight of the newest sample in the moving average. */
  alpha?: number;
  /** Slower than the others' median by this factor makes a straggler. */
  stragglerRatio?: number;
  /** Samples needed before a worker is judged. */
  minSamples?: number;
  /** Workers tracked at once. Default 1024 (above cluster.maxWorkers' default). */
  maxTracked?: number;
}

export class WorkerSpeeds {
  private readonly speeds = new Map<string, Speed>();
  private readonly alpha: number;
  private readonly ratio: number;
  private readonly minSamples: number;
  private readonly maxTracked: number;
  private readonly log: Logger;

  constructor(o: SpeedOptions) {
    this.alpha = o.alpha ?? 0.3;
    this.ratio = o.stragglerRatio ?? 1.5;
    this.minSamples = o.minSamples ?? 5;
    this.maxTracked = o.maxTracked ?? 1024;
    this.log = o.log.child({ component: 'worker-speeds' });
  }

  /** One upload: `microBatches` computed in `computeMs`. */
  record(workerId: string, microBatches: number, computeMs: number): void {
    if (!(microBatches > 0 && Number.isFinite(computeMs) && computeMs > 0)) return;
    const sample = computeMs / microBatches;
    const s = this.speeds.get(workerId);
    if (s === undefined) {
      if (this.speeds.size >= this.maxTracked) this.speeds.delete(this.speeds.keys().next().value!);
      this.speeds.set(workerId, { msPerMicro: sample, samples: 1, straggler: false });
    } else {
      s.msPerMicro = this.alpha * sample + (1 - this.alpha) * s.msPerMicro;
      s.samples++;
    }
  }

  /** Workers tracked now. */
  get size(): number {
    return this.speeds.size;
  }

  forget(workerId: string): void {
    this.speeds.delete(workerId);
  }

  /** Partition weights for `ids` (speed, in micro-batches per ms); unmeasured ids are left out. */
  weights(ids: readonly string[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const id of ids) {
      const s = this.speeds.get(id);
      if (s !== undefined && s.samples >= this.minSamples) out.set(id, 1 / s.msPerMicro);
    }
    return out;
  }

  /** Updates and logs straggler verdicts among `ids`; returns the current stragglers. */
  judge(ids: readonly string[]): string[] {
    const judged = ids.filter((id) => (this.speeds.get(id)?.samples ?? 0) >= this.minSamples);
    const out: string[] = [];
    for (const id of judged) {
      const others = judged.filter((o) => o !== id).map((o) => this.speeds.get(o)!.msPerMicro).sort((a, b) => a - b);
      if (others.length === 0) continue;
      const median = others.length % 2 === 1 ? others[(others.length - 1) / 2]! : (others[others.length / 2 - 1]! + others[others.length / 2]!) / 2;
      const s = this.speeds.get(id)!;
      // Hysteresis: a straggler stays one until it is clearly back (within (1 + ratio) / 2 of the median).
      const slow = s.straggler ? s.msPerMicro > ((1 + this.ratio) / 2) * median : s.msPerMicro > this.ratio * median;
      if (slow !== s.straggler) {
        s.straggler = slow;
        const fields = { workerId: id, msPerMicroBatch: Math.round(s.msPerMicro), othersMedianMs: Math.round(median), ratio: this.ratio };
        if (slow) this.log.warn(fields, 'straggler: giving it fewer micro-batches');
        else this.log.info(fields, 'straggler caught up');
      }
      if (slow) out.push(id);
    }
    return out;
  }
}
