/**
 * A counting progress bar on stderr (cli-progress) for a long stage — data
 * preparation, an evaluation split — or a no-op: it is shown only when asked
 * for and the stream is a terminal, so logs, CI output and piped stdout stay
 * clean (nothing at all is written otherwise). Knows nothing of what it counts.
 */
import cliProgress from 'cli-progress';

/** Where bars are drawn: process.stderr, or a test's Writable with isTTY set. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

export interface Progress {
  /** Begins a stage ("data train: tokenize") of `total` units ("documents"). */
  stage(name: string, total: number, unit?: string): void;
  update(done: number): void;
  stop(): void;
}

const NONE: Progress = { stage() {}, update() {}, stop() {} };

/** Stage names are padded to this width so consecutive bars line up. */
export const STAGE_WIDTH = 22;

/** The bar's width: what a line of counts leaves of the terminal's width, between 10 and 40. */
export function barSize(stream: ProgressStream): number {
  return Math.max(10, Math.min(40, (stream.columns ?? 80) - 66));
}

export function createProgress(wanted: boolean, stream: ProgressStream = process.stderr): Progress {
  if (!wanted || stream.isTTY !== true) return NONE;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: '{stage} [{bar}] {value}/{total} {unit} | {duration_formatted}',
      hideCursor: true,
      clearOnComplete: false,
      barsize: barSize(stream),
    },
    cliProgress.Presets.shades_classic,
  );
  let active = false;
  return {
    stage(name, total, unit = '') {
      if (active) bar.stop();
      bar.start(total, 0, { stage: name.padEnd(STAGE_WIDTH), unit });
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
