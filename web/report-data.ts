/**
 * What a report shows, read from a run's output folder: `steps.jsonl` (every
 * step's loss, learning rate, gradient norm and accuracies: the curves),
 * `metrics.json` (the evaluations, once the run finished), `run-config.json`
 * (model, seed, steps), `run-summary.json` (per-worker totals) and
 * `run-events.jsonl` — the live events each coordinator or `train` process
 * appended when it ended (step times and throughput, membership, phases,
 * worker timings). steps.jsonl decides which steps there are; run-events.jsonl
 * only adds their timings, matched by phase and step, so a resumed run's
 * report shows each step once. Any of these may be missing but not all:
 * a folder holding none of them is not a run (InputError saying so).
 *
 * Knows nothing of HTML.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../shared/errors.js';

export const REPORT_FILE = 'report.html';
export const RUN_EVENTS_FILE = 'run-events.jsonl';

const TIMING_FIELDS = ['sequences', 'seqPerSec', 'durationMs', 'at'] as const;
const RECORD_FIELDS = ['loss', 'lr', 'gradNorm', 'accuracy', 'mlmLoss', 'nspLoss', 'mlmAccuracy', 'nspAccuracy', 'skipped'] as const;

export interface ReportInputs {
  output: string;
  events: Record<string, unknown>[];
  metrics: unknown;
  summary: unknown;
  notes: string[];
}

type Loose = Record<string, unknown>;

export function readRunForReport(dir: string): ReportInputs {
  const files = { config: join(dir, 'run-config.json'), steps: join(dir, 'steps.jsonl'), metrics: join(dir, 'metrics.json'), summary: join(dir, 'run-summary.json'), events: join(dir, RUN_EVENTS_FILE) };
  if (!existsSync(dir)) throw new InputError(`${dir}: no such folder; expected a run's output folder (the --output of bertfleet train or cluster)`);
  if (!statSync(dir).isDirectory()) throw new InputError(`${dir} is a file; expected a run's output folder (the --output of bertfleet train or cluster)`);
  if (![files.config, files.steps, files.metrics].some((f) => existsSync(f))) {
    throw new InputError(`${dir} is not a run's output folder: expected run-config.json, steps.jsonl or metrics.json in it (written by bertfleet train or cluster), found none`);
  }
  const notes: string[] = [];
  const config = readJson(files.config) as Loose | null;
  const metrics = readJson(files.metrics);
  const summary = readJson(files.summary);
  if (metrics === null) notes.push('No metrics.json: the run had not finished when this report was made.');
  const steps = readJsonLines(files.steps, notes);
  const live = readJsonLines(files.events, notes);
  if (live.length === 0 && steps.length > 0) notes.push(`No ${RUN_EVENTS_FILE}: step times, throughput, membership and phases were not recorded for this run.`);
  const totals = { pretrain: phaseSteps(config, 'pretrain'), finetune: phaseSteps(config, 'finetune') };
  const fileSteps = new Map<string, Loose>();
  for (const r of steps) {
    if (typeof r['phase'] !== 'string' || typeof r['step'] !== 'number') continue;
    // steps.jsonl counts from 0; the events count completed steps, from 1.
    const e: Loose = { type: 'step', phase: r['phase'], step: r['step'] + 1, total: totals[r['phase'] as 'pretrain'] ?? null };
    for (const k of RECORD_FIELDS) if (r[k] !== undefined) e[k] = r[k];
    fileSteps.set(`${r['phase']}:${e['step']}`, e);
  }
  const others: Loose[] = [];
  for (const e of live) {
    if (e['type'] !== 'step') {
      others.push(e);
      continue;
    }
    const mine = fileSteps.get(`${String(e['phase'])}:${String(e['step'])}`);
    if (mine === undefined) continue;
    for (const k of TIMING_FIELDS) if (e[k] !== undefined) mine[k] = e[k];
  }
  if (!others.some((e) => e['type'] === 'run') && config !== null) others.unshift(runFromConfig(dir, config, summary as Loose | null, totals));
  return { output: resolve(dir), events: [...others, ...fileSteps.values()], metrics, summary, notes };
}

function phaseSteps(config: Loose | null, phase: string): number | null {
  const p = config?.[phase] as Loose | undefined;
  return typeof p?.['steps'] === 'number' ? p['steps'] : null;
}

function runFromConfig(dir: string, config: Loose, summary: Loose | null, steps: Record<string, number | null>): Loose {
  const inProcess = summary?.['inProcess'] === true;
  return {
    type: 'run', mode: inProcess || summary === null ? 'train' : 'coordinator', output: resolve(dir),
    workers: typeof summary?.['workerCount'] === 'number' && !inProcess ? summary['workerCount'] : null,
    steps, model: config['model'], seed: config['seed'], resumed: false,
  };
}

function readJson(file: string): unknown {
  if (!existsSync(file)) return null;
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`${file} is not JSON (${(err as Error).message}); expected the file bertfleet wrote`, { cause: err });
  }
}

/** The JSON objects of a .jsonl file; a torn last line (a process died writing it) is left out with a note. */
function readJsonLines(file: string, notes: string[]): Loose[] {
  if (!existsSync(file)) return [];
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: Loose[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      if (i === lines.length - 1) {
        notes.push(`${file}: its last line was torn (the process died writing it) and is left out.`);
        return;
      }
      throw new InputError(`${file} line ${i + 1} is not JSON (${(err as Error).message}): ${JSON.stringify(line.slice(0, 80))}`, { cause: err });
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InputError(`${file} line ${i + 1}: expected a JSON object, got ${JSON.stringify(line.slice(0, 80))}`);
    out.push(v as Loose);
  });
  return out;
}
