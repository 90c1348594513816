/**
 * How many steps of each phase the non-finite guard skipped (run config
 * nonFinite: "skip"), for metrics.json. Counted from the run's steps.jsonl,
 * whose lines are trimmed to the resumed step on --resume, so a resumed run
 * counts the same as an uninterrupted one without carrying a counter in the
 * trainer state.
 */
import { existsSync, readFileSync } from 'node:fs';
import { InputError } from '../shared/errors.js';

export interface SkippedSteps {
  pretrain: number;
  finetune: number;
}

export function countSkippedSteps(stepsFile: string): SkippedSteps {
  const out: SkippedSteps = { pretrain: 0, finetune: 0 };
  if (!existsSync(stepsFile)) return out;
  readFileSync(stepsFile, 'utf8').split('\n').forEach((line, i) => {
    if (line.trim().length === 0) return;
    let rec: { phase?: unknown; skipped?: unknown };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch (err) {
      throw new InputError(`${stepsFile}:${i + 1}: expected a JSON step record, got ${JSON.stringify(line.slice(0, 80))}`, { cause: err });
    }
    if (rec.skipped === true && (rec.phase === 'pretrain' || rec.phase === 'finetune')) out[rec.phase]++;
  });
  return out;
}
