/**
 * The run's output folder: `pretrained/` and `finetuned/` (Hugging Face layout),
 * `metrics.json`, per-step metrics in `steps.jsonl`, the trainer state in
 * `state/`, the resolved `run-config.json`. Guards against overwriting a
 * finished or foreign folder, and trims step lines beyond a resumed step so a
 * resumed run's log equals an uninterrupted one's (a line torn by a crash
 * mid-append is dropped; any other bad line is an error naming it).
 */
import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, InputError } from '../shared/errors.js';
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
    try {
      return JSON.parse(readFileSync(this.configFile, 'utf8'));
    } catch (err) {
      throw new InputError(`--resume: ${this.configFile} is unreadable or not JSON; it holds the run's settings and cannot be guessed`, { cause: err });
    }
  }

  appendStep(line: Record<string, unknown>): void {
    appendFileSync(this.stepsFile, `${JSON.stringify(line)}\n`);
  }

  /** Forces the step lines appended so far to disk: called before a checkpoint, so a state never outlives its steps' lines. */
  syncSteps(): void {
    if (!existsSync(this.stepsFile)) return;
    const fd = openSync(this.stepsFile, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Drops step lines at or after (phase, step): they are recomputed after a
   * resume. A last line without its newline that does not parse is a torn
   * append (the process died writing it) and is dropped, returned so the caller can say so; any other
   * line that is not a step record is an error naming the file and line.
   */
  trimStepsFrom(phase: string, step: number): { tornLine: string | null } {
    if (!existsSync(this.stepsFile)) return { tornLine: null };
    const lines = readFileSync(this.stepsFile, 'utf8').split('\n');
    // What follows the last newline: '' in a whole file.
    const last = lines.length - 1;
    const order = (p: string): number => (p === 'pretrain' ? 0 : 1);
    const kept: string[] = [];
    let tornLine: string | null = null;
    for (const [i, line] of lines.entries()) {
      if (line.trim().length === 0) continue;
      const rec = parseStepLine(line);
      if (rec === null && i === last) {
        tornLine = line;
        continue;
      }
      if (rec === null) throw new CheckpointError(`${this.stepsFile} line ${i + 1} is not a step record (expected JSON with phase and step), got ${JSON.stringify(line.slice(0, 80))}`);
      if (order(rec.phase) < order(phase) || (rec.phase === phase && rec.step < step)) kept.push(line);
    }
    writeFileAtomic(this.stepsFile, kept.map((l) => `${l}\n`).join(''));
    return { tornLine };
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

function parseStepLine(line: string): { phase: string; step: number } | null {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    // Not JSON: the caller names the file and line.
    return null;
  }
  const r = rec as { phase?: unknown; step?: unknown };
  if (typeof rec !== 'object' || rec === null || typeof r.phase !== 'string' || typeof r.step !== 'number') return null;
  return { phase: r.phase, step: r.step };
}
