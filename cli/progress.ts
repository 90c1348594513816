/**
 * A run's progress on stderr: a bar per training phase (steps, loss, seq/s,
 * ETA) and a counting bar per evaluation split (chunks done of total). Data
 * preparation draws its own bars (shared/data/progress.ts, same look). Shown
 * only when asked for and the stream is a terminal; otherwise nothing at all
 * is written, and the logs stay JSON lines.
 */
import cliProgress from 'cli-progress';
import { barSize, createProgress, type ProgressStream } from '../shared/data/progress.js';

/** What the bar needs of a step beyond its number and loss (train-phase.ts StepInfo fits). */
export interface StepFacts {
  sequences: number;
  durationMs: number;
}

export interface RunProgress {
  step(phase: string, step: number, total: number, loss: number, facts: StepFacts): void;
  /** `done` of `total` units of a counted stage, e.g. ("evaluate test", 3, 10, "chunks"). */
  count(stage: string, done: number, total: number, unit: string): void;
  stop(): void;
}

const NONE: RunProgress = { step() {}, count() {}, stop() {} };

/** Steps over which seq/s is averaged: smooth, yet it follows a change of pace. */
const RATE_WINDOW_STEPS = 20;

/** Sequences per second over the last `size` steps (their own durations, not the gaps between them). */
export class RateWindow {
  private readonly steps: StepFacts[] = [];

  constructor(private readonly size: number) {}

  add(f: StepFacts): void {
    this.steps.push(f);
    if (this.steps.length > this.size) this.steps.shift();
  }

  reset(): void {
    this.steps.length = 0;
  }

  perSecond(): number {
    const ms = this.steps.reduce((n, s) => n + s.durationMs, 0);
    return ms > 0 ? (1000 * this.steps.reduce((n, s) => n + s.sequences, 0)) / ms : 0;
  }
}

export function createRunProgress(wanted: boolean, stream: ProgressStream = process.stderr): RunProgress {
  if (!wanted || stream.isTTY !== true) return NONE;
  const steps = new cliProgress.SingleBar(
    { format: '{phase} [{bar}] {value}/{total} steps | loss {loss} | {rate} seq/s | eta {eta_formatted}', stream, hideCursor: true, barsize: barSize(stream) },
    cliProgress.Presets.shades_classic,
  );
  const counts = createProgress(true, stream);
  const rate = new RateWindow(RATE_WINDOW_STEPS);
  // The one bar drawn now: `step <phase>` or `count <stage>`; null between stages.
  let current: string | null = null;
  const stop = (): void => {
    if (current?.startsWith('step ')) steps.stop();
    else if (current !== null) counts.stop();
    current = null;
  };
  return {
    step(phase, step, total, loss, facts) {
      if (current !== `step ${phase}`) {
        stop();
        rate.reset();
      }
      rate.add(facts);
      const payload = { phase: phase.padEnd(8), loss: loss.toFixed(3), rate: rate.perSecond().toFixed(1) };
      if (current === `step ${phase}`) steps.update(step, payload);
      else steps.start(total, step, payload);
      current = `step ${phase}`;
    },
    count(stage, done, total, unit) {
      if (current !== `count ${stage}`) {
        stop();
        counts.stage(stage, total, unit);
        current = `count ${stage}`;
      }
      counts.update(done);
    },
    stop,
  };
}
