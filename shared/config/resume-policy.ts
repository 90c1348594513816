/**
 * What `--resume` may change. A resumed run continues the bits of the run it
 * resumes, so every run-config setting that decides those bits must be the
 * saved one; settings the user gives on resume are compared with the saved
 * config key by key, and a difference in any key not listed here is refused
 * (cli/train.ts). Keys added to the run config later are compared unless added
 * here: the safe default. Pure: no files, no flags, no logging.
 */
import type { RunConfig } from './run-config.js';

/**
 * Run-config keys (dotted paths) whose given value replaces the saved one on
 * resume, because they change how the run is carried out, not what it computes:
 * - `checkpoint.*`, `logEverySteps`: when state and log lines are written;
 *   a resumed run's steps are the same whenever they were checkpointed.
 * - `data.cacheDir`: where prepared data is cached; the data itself is
 *   fingerprinted into the run key.
 * - `cluster.*` timeouts, heartbeat, lease and checksum intervals: liveness
 *   and checking, never arithmetic.
 * - `cluster.chunkBytes`: the reduction is elementwise, so the chunk size never
 *   changes a sum (README: "any value gives the same bits").
 * - `cluster.maxWorkers`: how many workers may be members at once; who
 *   computes what never changes the bits.
 * - `cluster.auditEverySteps`: the audit recomputes a micro-batch to compare
 *   it; the reduced gradient is not changed by it.
 * - `nonFinite`: a step with a non-finite gradient is applied by no replica
 *   under either value; only whether the run stops there or goes on differs
 *   (so a run stopped by 'stop' can be resumed with 'skip').
 * - `backend`, `blasThreads`: allowed so a run can be finished on another
 *   machine; they can change the bits of the steps computed after the resume
 *   (the worker fingerprint names them for that reason), so a change is logged.
 * Not listed, so refused when changed: seed, model, initFrom, every other
 * `data.*`, `pretrain.*` and `finetune.*` (steps too: the learning-rate
 * schedule decays over the phase's steps, so more steps change every step's
 * update, not only add steps at the end), `optimizer.*`.
 */
export const RESUME_MAY_CHANGE: readonly string[] = [
  'backend',
  'blasThreads',
  'logEverySteps',
  'nonFinite',
  'checkpoint.everySteps',
  'checkpoint.keep',
  'data.cacheDir',
  'cluster.checksumEverySteps',
  'cluster.auditEverySteps',
  'cluster.heartbeatIntervalMs',
  'cluster.heartbeatTimeoutMs',
  'cluster.workerWaitTimeoutMs',
  'cluster.reconnectTimeoutMs',
  'cluster.leaseTtlMs',
  'cluster.runStateWriteTimeoutMs',
  'cluster.chunkBytes',
  'cluster.maxWorkers',
];

/** Of the may-change keys, those that can change the bits of the steps after the resume (logged when changed). */
export const RESUME_CHANGES_BITS: readonly string[] = ['backend', 'blasThreads'];

export interface ResumeDifference {
  /** Dotted run-config key, e.g. `finetune.steps`. */
  key: string;
  saved: unknown;
  given: unknown;
}

export interface ResumeComparison {
  /** Given settings that differ from the saved ones and may not change: the resume is refused. */
  refused: ResumeDifference[];
  /** Given settings that differ and may change: the resumed run uses the given value. */
  changed: ResumeDifference[];
}

/**
 * The leaves (dotted path → value) of a partial config; arrays and null are
 * leaves, undefined values are absent (a flag not given).
 */
export function leaves(o: Record<string, unknown>, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    const key = `${prefix}${k}`;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [kk, vv] of leaves(v as Record<string, unknown>, `${key}.`)) out.set(kk, vv);
    } else {
      out.set(key, v);
    }
  }
  return out;
}

function at(config: RunConfig, key: string): unknown {
  let cur: unknown = config;
  for (const part of key.split('.')) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[part] : undefined;
  return cur;
}

/**
 * Compares the settings the user gave (`given`: only those, as a partial
 * config) with the saved config. `givenConfig` is `given` parsed (defaults
 * filled), so values are compared after validation.
 */
export function compareForResume(saved: RunConfig, given: Record<string, unknown>, givenConfig: RunConfig): ResumeComparison {
  const refused: ResumeDifference[] = [];
  const changed: ResumeDifference[] = [];
  for (const key of leaves(given).keys()) {
    const s = at(saved, key);
    const g = at(givenConfig, key);
    if (JSON.stringify(s) === JSON.stringify(g)) continue;
    (RESUME_MAY_CHANGE.includes(key) ? changed : refused).push({ key, saved: s, given: g });
  }
  return { refused, changed };
}

/** The saved config with the given values of the keys that may change (and differ). */
export function resumedConfigInput(saved: RunConfig, changed: readonly ResumeDifference[]): Record<string, unknown> {
  const out = structuredClone(saved) as Record<string, unknown>;
  for (const { key, given } of changed) {
    const parts = key.split('.');
    let obj = out;
    for (const p of parts.slice(0, -1)) obj = obj[p] as Record<string, unknown>;
    obj[parts.at(-1)!] = given;
  }
  return out;
}

/** `key: saved X, given Y`, values as JSON. */
export function describeDifference(d: ResumeDifference): string {
  return `${d.key}: saved ${JSON.stringify(d.saved)}, given ${JSON.stringify(d.given)}`;
}
