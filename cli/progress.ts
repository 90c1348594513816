/**
 * A progress bar for training phases on stderr, shown only on a terminal (logs
 * stay JSON lines either way).
 */
import cliProgress from 'cli-progress';

export interface StepProgress {
  update(phase: string, step: number, total: number, loss: number): void;
  stop(): void;
}

export function createStepProgress(enabled: boolean): StepProgress {
  if (!enabled || !process.stderr.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    { format: '{phase} [{bar}] {value}/{total} steps | loss {loss} | eta {eta_formatted}', stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  let current = '';
  return {
    update(phase, step, total, loss) {
      if (phase !== current) {
        if (current) bar.stop();
        bar.start(total, step, { phase, loss: loss.toFixed(3) });
        current = phase;
      } else {
        bar.update(step, { loss: loss.toFixed(3) });
      }
    },
    stop() {
      if (current) bar.stop();
    },
  };
}
