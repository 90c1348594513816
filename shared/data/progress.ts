/**
 * A progress bar on stderr (cli-progress) for long data preparation, or a
 * no-op: it is shown only when asked for and stderr is a terminal, so logs,
 * CI output and piped stdout stay clean. Knows nothing of what it counts.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  /** Begins a stage ("tokenize", "examples", "write") of `total` units. */
  stage(name: string, total: number): void;
  update(done: number): void;
  stop(): void;
}

const NONE: Progress = { stage() {}, update() {}, stop() {} };

export function createProgress(wanted: boolean): Progress {
  if (!wanted || !process.stderr.isTTY) return NONE;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{stage} [{bar}] {percentage}% | {value}/{total} | {duration_formatted}',
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let active = false;
  return {
    stage(name, total) {
      if (active) bar.stop();
      bar.start(total, 0, { stage: name.padEnd(9) });
      active = true;
    },
    update(done) {
      if (active) bar.update(done);
    },
    stop() {
      if (active) bar.stop();
      active = false;
    },
  };
}
