/**
 * Trainer state for resuming a run: weights, AdamW moments, phase, step, data
 * cursor and the run's identity, in `<dir>/step-<phase>-<step>/` (weights and
 * moments as safetensors with Hugging Face names, the rest as JSON), with a
 * `SHA256SUMS` of those three files (`sha256sum -c` reads it) written last.
 *
 * Writing: each state goes into a temporary folder (removed if the write
 * fails), every file and the folder are fsync'ed, the folder is renamed into
 * place and its parent fsync'ed, then `latest` is switched atomically, then
 * states beyond the last `keep` are removed. Temporary folders left by a
 * process that died are removed before each write and at resume.
 *
 * Resuming: `latest` names the state to resume from; every file is checked
 * against `SHA256SUMS`. A damaged state (a file missing, unreadable, or with
 * another hash) is reported and the previous kept state is tried, and so on;
 * if none is valid, the error lists each state and its problem. A `latest`
 * that names no state (removed by hand, or lost between a rename and a
 * switch) is reported and the newest valid state used: each state carries
 * its own checksums, so the pointer is only a preference. A missing `latest`
 * beside existing states is an error, never a fresh start.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CheckpointError } from '../errors.js';
import { fsyncDir, TMP_MARK, writeFileAtomic, writeFileSynced } from '../fs-atomic.js';
import type { Logger } from '../log.js';
import type { ParamSpec } from '../model/params.js';
import { parseSafetensors, serializeSafetensors, type NamedTensor } from './safetensors.js';

export interface TrainerStateMeta {
  /** /2 carries SHA256SUMS; /1 (written before checksums existed) is read unverified, with a warning. */
  format: typeof STATE_FORMAT | typeof LEGACY_FORMAT;
  /** Hash of everything that must match to resume (seed, data, model, batch sizes). */
  runKey: string;
  phase: 'pretrain' | 'finetune';
  /** The next step to run; the data cursor of the phase. */
  step: number;
  /** Anything else the run loop carries across a restart (metrics so far, labels). */
  extra: Record<string, unknown>;
  /**
   * The backend fingerprint of what computed the steps (a distributed run's
   * compute fingerprint, coordinator/compute-fingerprint.ts); a resumed run
   * admits only workers that have it. Absent in states written before it existed.
   */
  computeFingerprint?: string;
}

export interface TrainerStateData {
  meta: TrainerStateMeta;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export const STATE_FORMAT = 'bertfleet-trainer-state/2';
const LEGACY_FORMAT = 'bertfleet-trainer-state/1';
export const LATEST = 'latest';
export const SUMS_FILE = 'SHA256SUMS';
const PARAMS_FILE = 'params.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const META_FILE = 'trainer_state.json';
/** Every file of a state, each listed in SHA256SUMS. */
export const STATE_FILES: readonly string[] = [PARAMS_FILE, OPTIMIZER_FILE, META_FILE];
const STATE_NAME = /^step-(pretrain|finetune)-\d{8}$/;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function entries(prefix: string, specs: readonly ParamSpec[], offsets: readonly number[], flat: Float32Array): [string, NamedTensor][] {
  return specs.map((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    return [`${prefix}${s.name}`, { shape: s.shape, data: flat.subarray(offsets[i]!, offsets[i]! + n) }];
  });
}

/**
 * Removes what failed writes left in `dir`: `.step-*.tmp-*` folders and
 * `latest.tmp-*` files. The state folder has one writer (the run holding the
 * output folder), so any such entry is left over, never in progress.
 */
export function removeUnfinishedWrites(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const stale = readdirSync(dir).filter((n) => n.includes(TMP_MARK) && (n.startsWith('.step-') || n.startsWith(`${LATEST}${TMP_MARK}`)));
  for (const n of stale) rmSync(join(dir, n), { recursive: true, force: true });
  return stale;
}

export function saveTrainerState(
  dir: string,
  specs: readonly ParamSpec[],
  offsets: readonly number[],
  state: TrainerStateData,
  keep: number,
): string {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    fsyncDir(dirname(dir));
  }
  removeUnfinishedWrites(dir);
  const name = `step-${state.meta.phase}-${String(state.meta.step).padStart(8, '0')}`;
  const tmp = join(dir, `.${name}${TMP_MARK}${process.pid}`);
  const final = join(dir, name);
  const files: [string, Buffer][] = [
    [PARAMS_FILE, serializeSafetensors(entries('', specs, offsets, state.params))],
    [OPTIMIZER_FILE, serializeSafetensors([...entries('exp_avg.', specs, offsets, state.m), ...entries('exp_avg_sq.', specs, offsets, state.v)])],
    [META_FILE, Buffer.from(`${JSON.stringify({ ...state.meta, format: STATE_FORMAT }, null, 2)}\n`, 'utf8')],
  ];
  mkdirSync(tmp);
  try {
    for (const [file, bytes] of files) writeFileSynced(join(tmp, file), bytes);
    // Last, so a folder with SHA256SUMS has all its files.
    writeFileSynced(join(tmp, SUMS_FILE), files.map(([file, bytes]) => `${sha256(bytes)}  ${file}\n`).join(''));
    fsyncDir(tmp);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } finally {
    // Gone after the rename; after a failed write (ENOSPC, say) this removes the partial folder.
    rmSync(tmp, { recursive: true, force: true });
  }
  fsyncDir(dir);
  writeFileAtomic(join(dir, LATEST), `${name}\n`);
  prune(dir, keep, name);
  return final;
}

/** State names in `dir`, oldest first (pretraining before finetuning, then by step). */
export function listStates(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => STATE_NAME.test(n)).sort(byPhaseAndStep);
}

/**
 * Keeps the last `keep` states up to `current`. States after `current` are
 * removed too: they exist only when a run resumed from an earlier state, and
 * belong to the course it abandoned.
 */
function prune(dir: string, keep: number, current: string): void {
  const states = listStates(dir);
  const upTo = states.indexOf(current);
  const excess = [...states.slice(0, Math.max(0, upTo + 1 - keep)), ...states.slice(upTo + 1)];
  for (const n of excess) rmSync(join(dir, n), { recursive: true, force: true });
}

function byPhaseAndStep(a: string, b: string): number {
  const rank = (n: string): string => n.replace('step-pretrain-', '0-').replace('step-finetune-', '1-');
  return rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0;
}

function readBytes(stateDir: string, file: string): Buffer {
  const path = join(stateDir, file);
  if (!existsSync(path)) throw new CheckpointError(`${file} is missing`);
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CheckpointError(`${file} is unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

/**
 * The state's files, each checked against SHA256SUMS; `verified` is false only
 * for a state written before checksums existed (format /1, no SHA256SUMS).
 */
function verifiedFiles(stateDir: string): { files: Map<string, Buffer>; verified: boolean } {
  if (!existsSync(join(stateDir, SUMS_FILE)) && legacyFormat(stateDir)) {
    return { files: new Map(STATE_FILES.map((f) => [f, readBytes(stateDir, f)])), verified: false };
  }
  const expected = new Map<string, string>();
  const sums = readBytes(stateDir, SUMS_FILE).toString('utf8').split('\n');
  for (const [i, line] of sums.entries()) {
    if (line.trim() === '') continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m === null) throw new CheckpointError(`${SUMS_FILE} line ${i + 1} is not "<sha256>  <file>": ${JSON.stringify(line.slice(0, 80))}`);
    expected.set(m[2]!, m[1]!);
  }
  const unlisted = STATE_FILES.filter((f) => !expected.has(f));
  if (unlisted.length > 0) throw new CheckpointError(`${SUMS_FILE} does not list ${unlisted.join(', ')}`);
  const out = new Map<string, Buffer>();
  for (const [file, hash] of expected) {
    const bytes = readBytes(stateDir, file);
    const got = sha256(bytes);
    if (got !== hash) throw new CheckpointError(`${file} has sha256 ${got}, ${SUMS_FILE} says ${hash} (the file changed after it was written)`);
    out.set(file, bytes);
  }
  return { files: out, verified: true };
}

function legacyFormat(stateDir: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(stateDir, META_FILE), 'utf8')) as { format?: unknown }).format === LEGACY_FORMAT;
  } catch {
    return false; // unreadable: reported as damage by the checked path
  }
}

/** One state, verified and parsed; CheckpointError naming the problem (relative to the state's folder). */
export function readTrainerState(stateDir: string, specsFor: (meta: TrainerStateMeta) => readonly ParamSpec[]): TrainerStateData & { verified: boolean } {
  const { files, verified } = verifiedFiles(stateDir);
  let meta: TrainerStateMeta;
  try {
    meta = JSON.parse(files.get(META_FILE)!.toString('utf8')) as TrainerStateMeta;
  } catch (err) {
    throw new CheckpointError(`${META_FILE} is not JSON`, { cause: err });
  }
  if (meta.format !== STATE_FORMAT && !(meta.format === LEGACY_FORMAT && !verified)) {
    throw new CheckpointError(`${META_FILE} has format ${String(meta.format)}, expected ${STATE_FORMAT}${meta.format === LEGACY_FORMAT ? ' (a /1 state with SHA256SUMS was not written by bertfleet)' : ''}`);
  }
  const specs = specsFor(meta);
  const total = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
  const flat = (file: string, tensors: Map<string, NamedTensor>, prefix: string): Float32Array => {
    const out = new Float32Array(total);
    let off = 0;
    for (const s of specs) {
      const t = tensors.get(`${prefix}${s.name}`);
      const n = s.shape.reduce((x, y) => x * y, 1);
      if (!t || t.data.length !== n) throw new CheckpointError(`${file}: ${prefix}${s.name} is missing or has the wrong size`);
      out.set(t.data, off);
      off += n;
    }
    return out;
  };
  const params = parseSafetensors(files.get(PARAMS_FILE)!, PARAMS_FILE).tensors;
  const optimizer = parseSafetensors(files.get(OPTIMIZER_FILE)!, OPTIMIZER_FILE).tensors;
  return { verified, meta, params: flat(PARAMS_FILE, params, ''), m: flat(OPTIMIZER_FILE, optimizer, 'exp_avg.'), v: flat(OPTIMIZER_FILE, optimizer, 'exp_avg_sq.') };
}

export interface ResumePoint {
  state: TrainerStateData;
  /** The folder of the state resumed from. */
  dir: string;
}

/** The states to try, best first: `latest` and those before it, or all when `latest` names none. */
function candidates(dir: string, states: readonly string[], log: Logger): string[] {
  const pointer = join(dir, LATEST);
  if (!existsSync(pointer)) {
    throw new CheckpointError(
      `${pointer} is missing, but ${dir} holds the trainer states ${states.join(', ')}; bertfleet will not guess which one to ` +
        `resume from. Write the name of one into ${pointer} (the newest is ${states.at(-1)}: echo ${states.at(-1)} > ${pointer}) ` +
        `and resume again, or start a new run in another --output (the states were left as they are)`,
    );
  }
  const latest = readFileSync(pointer, 'utf8').trim();
  const at = states.indexOf(latest);
  if (at >= 0) return states.slice(0, at + 1).reverse();
  log.warn({ pointer, latest, states }, 'state/latest names no trainer state in the folder; trying the newest valid state');
  return [...states].reverse();
}

/**
 * The state to resume from (see the file comment), or null when `dir` holds
 * no state at all (the run stopped before its first checkpoint).
 */
export function loadResumeState(dir: string, specsFor: (meta: TrainerStateMeta) => readonly ParamSpec[], log: Logger): ResumePoint | null {
  for (const n of removeUnfinishedWrites(dir)) log.info({ path: join(dir, n) }, 'removed what an unfinished checkpoint write left');
  const states = listStates(dir);
  if (states.length === 0) return null;
  const problems: string[] = [];
  for (const name of candidates(dir, states, log)) {
    const stateDir = join(dir, name);
    try {
      const { verified, ...state } = readTrainerState(stateDir, specsFor);
      if (!verified) log.warn({ dir: stateDir }, 'trainer state written before checksums existed (format /1): resuming from it unverified');
      if (problems.length > 0) log.warn({ dir: stateDir, step: state.meta.step, phase: state.meta.phase, damaged: problems }, 'resuming from an earlier trainer state: the later ones are damaged');
      return { state, dir: stateDir };
    } catch (err) {
      if (!(err instanceof CheckpointError)) throw err;
      problems.push(`${name}: ${err.message}`);
      log.warn({ dir: stateDir, problem: err.message }, 'trainer state damaged; trying the previous one');
    }
  }
  throw new CheckpointError(
    `no valid trainer state to resume from in ${dir}:\n  - ${problems.join('\n  - ')}\n` +
      `the run cannot continue from these; start it again in another --output (the states were left as they are)`,
  );
}
