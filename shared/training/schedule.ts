/**
 * The learning rate of a step: linear warmup over `warmupSteps`, then linear
 * decay to zero at `totalSteps`, measured from the end of the warmup:
 * peak * (total - t) / (total - warmup), as Hugging Face's
 * get_linear_schedule_with_warmup. (google-research/bert's optimization.py
 * decays over all steps from step 0, peak * (1 - t / total), and lets the
 * warmup override it; the two differ after the warmup.) Steps count from 0;
 * step t of the warmup uses (t + 1) / warmup so the first step is not wasted.
 */
export interface Schedule {
  peakLr: number;
  warmupSteps: number;
  totalSteps: number;
}

export function learningRate(s: Schedule, step: number): number {
  if (step < s.warmupSteps) return (s.peakLr * (step + 1)) / s.warmupSteps;
  const decaySteps = Math.max(1, s.totalSteps - s.warmupSteps);
  return Math.max(0, (s.peakLr * (s.totalSteps - step)) / decaySteps);
}
