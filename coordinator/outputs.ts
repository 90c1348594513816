/**
 * The run's output folder: `pretrained/` and `finetuned/` (Hugging Face layout),
 * `metrics.json`, per-step metrics in `steps.jsonl`, the trainer state in
 * `state/`, the resolved `run-config.json`. Guards against overwriting a
 * finished or foreign folder, and trims step lines beyond a resumed step so a
 * resumed run's log equals an uninterrupted one's.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../shared/errors.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { LOCK_FILE } from './ownership.js';

export class RunOutputs {
  readonly pretrained: string;
  readonly finetuned: string;
  readonly state: string;
  readonly metricsFile: string;
  readonly stepsFile: string;
  readonly configFile: string;

  constructor(readonly dir: string) {
    this.pretrained = join(dir, 'pretrained');
    this.finetuned = join(dir, 'finetuned');
    this.state = join(dir, 'state');
    this.metricsFile = join(dir, 'metrics.json');
    this.stepsFile = join(dir, 'steps.jsonl');
    this.configFile = join(dir, 'run-config.json');
  }

  /** Checks the folder can take this run; creates nothing. */
  check(resume: boolean): void {
    const exists = existsSync(this.dir);
    if (resume) {
      if (!exists || !existsSync(this.configFile)) {
        throw new InputError(`--resume: ${this.dir} holds no run to resume (expected ${this.configFile})`);
      }
      return;
    }
    // A lock left by a coordinator that died is stale (ownership.ts takes it over); it does not make the folder used.
    if (exists && readdirSync(this.dir).filter((n) => n !== LOCK_FILE).length > 0) {
      throw new InputError(
        `--output ${this.dir} is not empty; pass --resume to continue the run in it, or choose another folder (nothing was changed)`,
      );
    }
  }

  create(runConfig: unknown): void {
    mkdirSync(this.dir, { recursive: true });
    writeFileAtomic(this.configFile, `${JSON.stringify(runConfig, null, 2)}\n`);
  }

  savedRunConfig(): unknown {
    return JSON.parse(readFileSync(this.configFile, 'utf8'));
  }

  appendStep(line: Record<string, unknown>): void {
    appendFileSync(this.stepsFile, `${JSON.stringify(line)}\n`);
  }

  /** Drops step lines at or after (phase, step): they are recomputed after a resume. */
  trimStepsFrom(phase: string, step: number): void {
    if (!existsSync(this.stepsFile)) return;
    const order = (p: string): number => (p === 'pretrain' ? 0 : 1);
    const kept = readFileSync(this.stepsFile, 'utf8')
      .split('\n')
      .filter((l) => l.trim().length > 0)
      .filter((l) => {
        const rec = JSON.parse(l) as { phase: string; step: number };
        return order(rec.phase) < order(phase) || (rec.phase === phase && rec.step < step);
      });
    writeFileAtomic(this.stepsFile, kept.map((l) => `${l}\n`).join(''));
  }

  hasMetrics(): boolean {
    return existsSync(this.metricsFile);
  }

  readMetrics(): Record<string, unknown> {
    return JSON.parse(readFileSync(this.metricsFile, 'utf8')) as Record<string, unknown>;
  }

  writeMetrics(metrics: Record<string, unknown>): void {
    writeFileAtomic(this.metricsFile, `${JSON.stringify(metrics, null, 2)}\n`);
  }
}
