/**
 * One bertfleet run of the cluster suite, measured from its own log lines:
 * `bertfleet train` (one process) or `bertfleet cluster --workers N`, stopped
 * with SIGINT once its last pretraining step and the workers' timings of it
 * are logged (so no evaluation or fine-tuning is timed). The first `warmup`
 * steps are left out. From the workers' `worker steps` lines it takes every `…Ms` field present (compute,
 * upload, wait, download, apply, exchange, step, and whatever is added later)
 * as a mean per step and worker; from the `backend chosen` lines, the backend
 * and the OpenBLAS core each process used; and how many warnings were logged.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../bin/bertfleet', import.meta.url));

/** Log messages whose `…Ms` fields are the parts of a step, and the prefix they get in a row. */
const TIMING_MESSAGES: Record<string, string> = { 'worker steps': '' };
const WORKER_LINES_GRACE_MS = 5_000;

interface Line {
  time: number;
  msg: string;
  [k: string]: unknown;
}

export interface RunSpec {
  /** 0 = `bertfleet train`; N = `bertfleet cluster --workers N`. */
  workers: number;
  /** Flags after the command (model, steps, batch, config, output). */
  args: string[];
  steps: number;
  warmup: number;
  globalBatch: number;
  timeoutMs: number;
}

export interface RunRow {
  steps: number;
  step_ms: number;
  seq_per_s: number;
  backend: string;
  openblas_core: string;
  /** Log lines at warn level or above before the stop (retries, a worker lost): a non-zero count taints the figures. */
  warnings: number;
  /** Mean per step and worker of each timing field the workers logged (cluster runs only). */
  parts_ms?: Record<string, number>;
}

/** Runs one mode until its last pretraining step is logged; returns its log lines. */
function logsOf(spec: RunSpec): Promise<Line[]> {
  const command = spec.workers === 0 ? ['train'] : ['cluster', '--workers', String(spec.workers)];
  const child = spawn(BIN, [...command, ...spec.args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: Line[] = [];
  const other: string[] = [];
  let lastStepDone = false;
  let stopping = false;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGINT'); // lets `bertfleet cluster` stop its children; SIGKILL would orphan them
    setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
  }, spec.timeoutMs);
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    child.kill('SIGINT');
  };
  // The workers log their last step's timings just after the coordinator logs the step: wait for
  // them (or WORKER_LINES_GRACE_MS) before stopping, so the last measured step keeps its parts.
  const workerSteps = new Map<string, number>();
  const workersDone = (): boolean => [...workerSteps.values()].filter((n) => n >= spec.steps).length >= spec.workers;
  createInterface({ input: child.stderr }).on('line', (raw) => {
    if (!raw.startsWith('{')) {
      other.push(raw);
      return;
    }
    if (stopping) return; // shutdown noise (e.g. heartbeats failing as the coordinator goes) is not part of the run
    const l = JSON.parse(raw) as Line;
    lines.push(l);
    if (l.msg === 'worker steps' && l['phase'] === 'pretrain') {
      const who = String(l['workerId']);
      workerSteps.set(who, (workerSteps.get(who) ?? 0) + (typeof l['steps'] === 'number' ? l['steps'] : 1));
    }
    if (!lastStepDone && l.msg === 'step done' && l['phase'] === 'pretrain' && l['step'] === spec.steps) {
      lastStepDone = true;
      setTimeout(stop, WORKER_LINES_GRACE_MS).unref();
    }
    if (lastStepDone && workersDone()) stop();
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (lastStepDone && !timedOut) return resolve(lines);
      const last = [...lines.slice(-8).map((l) => JSON.stringify(l)), ...other.slice(-4)].join('\n');
      const how = timedOut ? `no pretraining step ${spec.steps} within ${Math.round(spec.timeoutMs / 1000)} s` : `exited (code ${String(code)}, signal ${String(signal)}) before pretraining step ${spec.steps}`;
      reject(new Error(`${command.join(' ')}: ${how}; last lines:\n${last}`));
    });
  });
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

/** Mean per step of each `…Ms` field over the measured steps of each worker, then over workers. */
function stepParts(lines: Line[], warmup: number, measured: number): Record<string, number> | undefined {
  const sums = new Map<string, { steps: number; fields: Map<string, number> }>();
  const seen = new Map<string, number>(); // steps already logged per worker
  for (const l of lines) {
    const prefix = TIMING_MESSAGES[l.msg];
    if (prefix === undefined || l['phase'] !== 'pretrain') continue;
    const who = `${l.msg}/${String(l['workerId'] ?? l['service'])}`;
    const steps = typeof l['steps'] === 'number' ? l['steps'] : 1;
    const before = seen.get(who) ?? 0;
    seen.set(who, before + steps);
    if (before < warmup || before + steps > warmup + measured) continue; // a window that is not wholly measured
    const acc = sums.get(who) ?? { steps: 0, fields: new Map<string, number>() };
    acc.steps += steps;
    for (const [k, v] of Object.entries(l)) if (k.endsWith('Ms') && typeof v === 'number') acc.fields.set(prefix + k, (acc.fields.get(prefix + k) ?? 0) + v);
    sums.set(who, acc);
  }
  if (sums.size === 0) return undefined;
  const perWorker = [...sums.values()].map((s) => new Map([...s.fields].map(([k, v]) => [k, v / s.steps])));
  const names = [...new Set(perWorker.flatMap((m) => [...m.keys()]))];
  return Object.fromEntries(names.map((k) => {
    const xs = perWorker.flatMap((m) => (m.has(k) ? [m.get(k)!] : []));
    return [k, round1(xs.reduce((a, b) => a + b, 0) / xs.length)];
  }));
}

/** Distinct values of a field over the `backend chosen` lines, joined with commas. */
function backendField(lines: Line[], pick: (l: Line) => string | undefined): string {
  const values = new Set(lines.filter((l) => l.msg === 'backend chosen').map(pick).filter((v): v is string => v !== undefined));
  return values.size === 0 ? 'not logged' : [...values].join(',');
}

export function measure(spec: RunSpec, lines: Line[]): RunRow {
  const steps = lines.filter((l) => l.msg === 'step done' && l['phase'] === 'pretrain');
  const first = steps.find((l) => l['step'] === spec.warmup);
  const measured = steps.filter((l) => (l['step'] as number) > spec.warmup);
  const last = measured[measured.length - 1];
  if (first === undefined || last === undefined) throw new Error(`expected pretraining steps ${spec.warmup} to ${spec.steps} logged, got ${steps.length} steps`);
  const stepMs = (last.time - first.time) / measured.length;
  const row: RunRow = {
    steps: measured.length, step_ms: Math.round(stepMs), seq_per_s: round1((1000 * spec.globalBatch) / stepMs),
    backend: backendField(lines, (l) => l['backend'] as string | undefined),
    openblas_core: backendField(lines, (l) => /core=([^\s;]+)/.exec(String(l['details']))?.[1] ?? 'none'),
    warnings: lines.filter((l) => typeof l['level'] === 'number' && l['level'] >= 40).length,
  };
  const parts = stepParts(lines, spec.warmup, measured.length);
  if (parts) row.parts_ms = parts;
  return row;
}

export async function runBertfleet(spec: RunSpec): Promise<RunRow> {
  return measure(spec, await logsOf(spec));
}
