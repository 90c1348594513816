/**
 * Where a worker's step time goes, summed over a window of steps: computing
 * its micro-batches, then the exchange (from its compute ending to the last
 * reduced chunk downloaded), split into uploading its partial sums, waiting
 * (from its uploads done to the first reduced chunk: the other workers and
 * the reduction) and the rest of the download (reduced chunks stream back
 * while uploads are still going, so with one worker the wait is near 0), and
 * applying the update. Reported to the coordinator (ReportMetrics), which
 * logs it; the cluster benchmark reads those lines.
 */
export interface StepTiming {
  computeMs: number;
  uploadMs: number;
  exchangeMs: number;
  /** From the last upload done to the reduced gradient's first chunk (0 when it came earlier). */
  waitMs: number;
  downloadMs: number;
  applyMs: number;
  /** From the assignment's arrival to the update applied. */
  stepMs: number;
  sequences: number;
}

const FIELDS = ['computeMs', 'uploadMs', 'exchangeMs', 'waitMs', 'downloadMs', 'applyMs', 'stepMs', 'sequences'] as const;
const zero = (): StepTiming => ({ computeMs: 0, uploadMs: 0, exchangeMs: 0, waitMs: 0, downloadMs: 0, applyMs: 0, stepMs: 0, sequences: 0 });

export class TimingWindow {
  private sum: StepTiming = zero();
  private steps = 0;

  add(t: StepTiming): void {
    for (const f of FIELDS) this.sum[f] += t[f];
    this.steps++;
  }

  get size(): number {
    return this.steps;
  }

  /** The window's totals (rounded to 0.1 ms) and step count; resets it. */
  take(): StepTiming & { steps: number } {
    const out = { steps: this.steps, ...this.sum };
    for (const f of FIELDS) out[f] = Math.round(out[f] * 10) / 10;
    this.sum = zero();
    this.steps = 0;
    return out;
  }
}
