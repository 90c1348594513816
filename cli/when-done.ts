/**
 * `--when-done exit|stay`, shared by `bertfleet coordinator` and `bertfleet
 * worker`: what the process does once its run is finished. `exit` (the
 * default) exits 0. `stay` keeps the process up, idle, until SIGTERM (then
 * exit 0), for supervisors that restart any process that exits — a
 * Kubernetes StatefulSet would otherwise start a finished coordinator again,
 * and again. A failed run exits non-zero either way, so a restart resumes it.
 */
import { UsageError, type Options } from './args.js';

export type WhenDone = 'exit' | 'stay';

export const whenDoneOptions: Options = {
  'when-done': { type: 'string' },
};

/** `what` says what staying means for this command. */
export function whenDoneHelp(what: string): string {
  return `  --when-done exit|stay once the run is finished: exit 0 (default), or stay up until SIGTERM
${what}`;
}

export function whenDoneChoice(values: Record<string, unknown>): WhenDone {
  const raw = values['when-done'];
  if (raw === undefined) return 'exit';
  if (raw !== 'exit' && raw !== 'stay') throw new UsageError(`--when-done must be exit or stay, got "${String(raw)}"`);
  return raw;
}
