/**
 * How long a run's stages took, for the closing table and run-summary.json
 * (never metrics.json: timings differ from run to run, metrics.json must not).
 * Per stage the wall seconds; per training phase also the steps run, their
 * sequences and seq/s = sequences / the sum of the steps' own durations (so
 * waiting for workers before the first step does not lower it). Only what
 * this process ran: a resumed run counts the steps it computed itself.
 *
 * Knows nothing of terminals or files.
 */

export type StageName = 'dataPreparation' | 'pretraining' | 'finetuning' | 'evaluation';

/** Stages in the order a run goes through them. */
export const STAGES: readonly StageName[] = ['dataPreparation', 'pretraining', 'finetuning', 'evaluation'];

export interface StageTiming {
  /** Wall seconds (summed when the stage ran more than once: evaluation after each phase). */
  seconds: number;
  /** Training phases only. */
  steps?: number;
  sequences?: number;
  seqPerSec?: number;
}

export type RunTimings = Partial<Record<StageName, StageTiming>>;

const STAGE_OF_PHASE: Record<string, StageName> = { pretrain: 'pretraining', finetune: 'finetuning' };

export class RunClock {
  private readonly seconds = new Map<StageName, number>();
  private readonly steps = new Map<StageName, { steps: number; sequences: number; ms: number }>();

  constructor(private readonly nowMs: () => number = () => performance.now()) {}

  /** Runs `fn`, adding its wall time to `stage` (also when it throws). */
  async time<T>(stage: StageName, fn: () => Promise<T>): Promise<T> {
    const start = this.nowMs();
    try {
      return await fn();
    } finally {
      this.add(stage, (this.nowMs() - start) / 1000);
    }
  }

  add(stage: StageName, seconds: number): void {
    this.seconds.set(stage, (this.seconds.get(stage) ?? 0) + seconds);
  }

  /** One training step of `phase` ('pretrain' | 'finetune'): its sequences and its own duration. */
  step(phase: string, sequences: number, durationMs: number): void {
    const stage = STAGE_OF_PHASE[phase];
    if (stage === undefined) return;
    const s = this.steps.get(stage) ?? { steps: 0, sequences: 0, ms: 0 };
    s.steps++;
    s.sequences += sequences;
    s.ms += durationMs;
    this.steps.set(stage, s);
  }

  timings(): RunTimings {
    const out: RunTimings = {};
    for (const stage of STAGES) {
      const seconds = this.seconds.get(stage);
      if (seconds === undefined) continue;
      const s = this.steps.get(stage);
      out[stage] = s === undefined
        ? { seconds }
        : { seconds, steps: s.steps, sequences: s.sequences, seqPerSec: s.ms > 0 ? (1000 * s.sequences) / s.ms : 0 };
    }
    return out;
  }
}
