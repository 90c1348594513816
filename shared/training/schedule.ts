/**
 * The learning rate of a step: linear warmup over `warmupSteps`, then linear
 * decay to zero at `totalSteps`, as google-research/bert's optimization.py
 * (polynomial decay with power 1 after a linear warmup). Steps count from 0;
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
