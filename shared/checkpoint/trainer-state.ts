/**
 * Trainer state for resuming a run: weights, AdamW moments, phase, step, data
 * cursor and the run's identity, in `<dir>/step-<phase>-<step>/` (weights and
 * moments as safetensors with Hugging Face names, the rest as JSON). Each state
 * is written into a temporary folder and renamed into place, then `latest`
 * is switched atomically, then states beyond the last `keep` are removed; a
 * crash at any point leaves the previous state intact and found.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../errors.js';
import { writeFileAtomic } from '../fs-atomic.js';
import type { ParamSpec } from '../model/params.js';
import { parseSafetensors, serializeSafetensors, type NamedTensor } from './safetensors.js';

export interface TrainerStateMeta {
  format: 'bertfleet-trainer-state/1';
  /** Hash of everything that must match to resume (seed, data, model, batch sizes). */
  runKey: string;
  phase: 'pretrain' | 'finetune';
  /** The next step to run; the data cursor of the phase. */
  step: number;
  /** Anything else the run loop carries across a restart (metrics so far, labels). */
  extra: Record<string, unknown>;
}

export interface TrainerStateData {
  meta: TrainerStateMeta;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

const LATEST = 'latest';

function entries(prefix: string, specs: readonly ParamSpec[], offsets: readonly number[], flat: Float32Array): [string, NamedTensor][] {
  return specs.map((s, i) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    return [`${prefix}${s.name}`, { shape: s.shape, data: flat.subarray(offsets[i]!, offsets[i]! + n) }];
  });
}

export function saveTrainerState(
  dir: string,
  specs: readonly ParamSpec[],
  offsets: readonly number[],
  state: TrainerStateData,
  keep: number,
): string {
  mkdirSync(dir, { recursive: true });
  const name = `step-${state.meta.phase}-${String(state.meta.step).padStart(8, '0')}`;
  const tmp = join(dir, `.${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeFileAtomic(join(tmp, 'params.safetensors'), serializeSafetensors(entries('', specs, offsets, state.params)));
  writeFileAtomic(
    join(tmp, 'optimizer.safetensors'),
    serializeSafetensors([...entries('exp_avg.', specs, offsets, state.m), ...entries('exp_avg_sq.', specs, offsets, state.v)]),
  );
  writeFileAtomic(join(tmp, 'trainer_state.json'), `${JSON.stringify(state.meta, null, 2)}\n`);
  const final = join(dir, name);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  writeFileAtomic(join(dir, LATEST), `${name}\n`);
  prune(dir, keep, name);
  return final;
}

function prune(dir: string, keep: number, current: string): void {
  const states = readdirSync(dir).filter((n) => n.startsWith('step-')).sort(byPhaseAndStep);
  const excess = states.filter((n) => n !== current).slice(0, Math.max(0, states.length - keep));
  for (const n of excess) rmSync(join(dir, n), { recursive: true, force: true });
}

function byPhaseAndStep(a: string, b: string): number {
  const rank = (n: string): string => n.replace('step-pretrain-', '0-').replace('step-finetune-', '1-');
  return rank(a) < rank(b) ? -1 : rank(a) > rank(b) ? 1 : 0;
}

/** The latest complete state in `dir`, or null when there is none. */
export function loadLatestTrainerState(dir: string, specsFor: (meta: TrainerStateMeta) => readonly ParamSpec[]): TrainerStateData | null {
  const pointer = join(dir, LATEST);
  if (!existsSync(pointer)) return null;
  const name = readFileSync(pointer, 'utf8').trim();
  const stateDir = join(dir, name);
  let meta: TrainerStateMeta;
  try {
    meta = JSON.parse(readFileSync(join(stateDir, 'trainer_state.json'), 'utf8')) as TrainerStateMeta;
  } catch (err) {
    throw new CheckpointError(`trainer state ${stateDir} is unreadable`, { cause: err });
  }
  if (meta.format !== 'bertfleet-trainer-state/1') {
    throw new CheckpointError(`trainer state ${stateDir} has format ${String(meta.format)}, expected bertfleet-trainer-state/1`);
  }
  const specs = specsFor(meta);
  const flat = (file: string, prefix: string): Float32Array => {
    const { tensors } = parseSafetensors(readFileSync(join(stateDir, file)), join(stateDir, file));
    const total = specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
    const out = new Float32Array(total);
    let off = 0;
    for (const s of specs) {
      const t = tensors.get(`${prefix}${s.name}`);
      const n = s.shape.reduce((x, y) => x * y, 1);
      if (!t || t.data.length !== n) throw new CheckpointError(`trainer state ${stateDir}: ${prefix}${s.name} is missing or has the wrong size`);
      out.set(t.data, off);
      off += n;
    }
    return out;
  };
  return { meta, params: flat('params.safetensors', ''), m: flat('optimizer.safetensors', 'exp_avg.'), v: flat('optimizer.safetensors', 'exp_avg_sq.') };
}
