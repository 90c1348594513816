/**
 * Trainer-state integrity on real files in a temporary folder: every file is
 * checked against SHA256SUMS at resume; a damaged state is reported and the
 * previous kept one used; none valid is an error listing each; a missing
 * `latest` beside states is an error; leftovers of failed writes are removed;
 * a torn last line of steps.jsonl is dropped, any other bad line named.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RunOutputs } from '../../coordinator/outputs.js';
import { listStates, loadResumeState, saveTrainerState, SUMS_FILE, type TrainerStateData } from '../../shared/checkpoint/trainer-state.js';
import { CheckpointError } from '../../shared/errors.js';
import * as fsAtomic from '../../shared/fs-atomic.js';
import type { ParamSpec } from '../../shared/model/params.js';

vi.mock('../../shared/fs-atomic.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../shared/fs-atomic.js')>();
  return { ...real, writeFileSynced: vi.fn(real.writeFileSynced) };
});

const SPECS: ParamSpec[] = [
  { name: 'bert.a.weight', shape: [2, 3], decay: true, init: 'normal' },
  { name: 'bert.a.bias', shape: [3], decay: false, init: 'zeros' },
];
const OFFSETS = [0, 6];

function state(phase: 'pretrain' | 'finetune', step: number): TrainerStateData {
  const fill = (k: number) => Float32Array.from({ length: 9 }, (_, i) => step * 100 + k * 10 + i);
  return { meta: { format: 'bertfleet-trainer-state/1', runKey: 'k', phase, step, extra: {} }, params: fill(1), m: fill(2), v: fill(3) };
}

/** A logger whose lines the test reads. */
function memoryLog() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines, msgs: () => lines.map((l) => l['msg']) };
}

function flipBit(path: string): void {
  const bytes = readFileSync(path);
  bytes[bytes.length - 1] ^= 0x01;
  writeFileSync(path, bytes);
}

let dir: string;
beforeEach(() => {
  dir = join(mkdtempSync(join(tmpdir(), 'bertfleet-state-')), 'state');
});
afterEach(() => {
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

const load = (log = memoryLog().log) => loadResumeState(dir, () => SPECS, log);

describe('trainer state integrity', () => {
  it('writes a SHA256SUMS of every file that sha256sum -c accepts, and resumes from latest', () => {
    saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 2), 2);
    const final = saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 4), 2);
    expect(readFileSync(join(final, SUMS_FILE), 'utf8')).toMatch(/^[0-9a-f]{64} {2}params\.safetensors\n[0-9a-f]{64} {2}optimizer\.safetensors\n[0-9a-f]{64} {2}trainer_state\.json\n$/);
    expect(execFileSync('sha256sum', ['-c', SUMS_FILE], { cwd: final, encoding: 'utf8' })).toMatch(/params\.safetensors: OK/);
    const r = load();
    expect(r?.dir).toBe(final);
    expect(r?.state.meta.step).toBe(4);
    expect(r?.state.v).toEqual(state('pretrain', 4).v);
  });

  it('falls back to the previous state when a bit of the latest params.safetensors flipped, and says so', () => {
    const older = saveTrainerState(dir, SPECS, OFFSETS, state('finetune', 2), 2);
    const newer = saveTrainerState(dir, SPECS, OFFSETS, state('finetune', 4), 2);
    flipBit(join(newer, 'params.safetensors'));
    const m = memoryLog();
    const r = load(m.log);
    expect(r?.dir).toBe(older);
    expect(r?.state.params).toEqual(state('finetune', 2).params);
    const damaged = m.lines.find((l) => l['msg'] === 'trainer state damaged; trying the previous one')!;
    expect(damaged).toMatchObject({ level: 40, dir: newer });
    expect(damaged['problem']).toMatch(/^params\.safetensors has sha256 [0-9a-f]{64}, SHA256SUMS says [0-9a-f]{64}/);
    expect(m.lines.find((l) => l['msg'] === 'resuming from an earlier trainer state: the later ones are damaged')).toMatchObject({ level: 40, dir: older, step: 2 });
  });

  it('refuses with every state and its problem when none is valid', () => {
    const older = saveTrainerState(dir, SPECS, OFFSETS, state('finetune', 2), 2);
    const newer = saveTrainerState(dir, SPECS, OFFSETS, state('finetune', 4), 2);
    flipBit(join(newer, 'optimizer.safetensors'));
    rmSync(join(older, 'trainer_state.json'));
    let err: unknown;
    try {
      load();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointError);
    const msg = (err as Error).message;
    expect(msg).toContain(`no valid trainer state to resume from in ${dir}`);
    expect(msg).toMatch(/- step-finetune-00000004: optimizer\.safetensors has sha256 /);
    expect(msg).toMatch(/- step-finetune-00000002: trainer_state\.json is missing/);
  });

  it('treats a missing SHA256SUMS as damage', () => {
    saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 2), 2);
    const newer = saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 4), 2);
    rmSync(join(newer, SUMS_FILE));
    const m = memoryLog();
    expect(load(m.log)?.state.meta.step).toBe(2);
    expect(m.lines.find((l) => l['dir'] === newer)?.['problem']).toBe('SHA256SUMS is missing');
  });

  it('resumes a state written before checksums existed (format /1, no SHA256SUMS) unverified, saying so', () => {
    const old = saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 2), 2);
    rmSync(join(old, SUMS_FILE));
    const metaFile = join(old, 'trainer_state.json');
    const meta = JSON.parse(readFileSync(metaFile, 'utf8')) as Record<string, unknown>;
    expect(meta['format']).toBe('bertfleet-trainer-state/2');
    writeFileSync(metaFile, JSON.stringify({ ...meta, format: 'bertfleet-trainer-state/1' }));
    const m = memoryLog();
    const got = load(m.log);
    expect(got?.state.meta.step).toBe(2);
    expect(Array.from(got!.state.params)).toEqual(Array.from(state('pretrain', 2).params));
    expect(m.msgs()).toContain('trainer state written before checksums existed (format /1): resuming from it unverified');
  });

  it('refuses to start afresh when latest is missing but states exist, naming them', () => {
    saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 2), 2);
    saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 4), 2);
    rmSync(join(dir, 'latest'));
    expect(load).toThrow(CheckpointError);
    expect(load).toThrow(`${join(dir, 'latest')} is missing, but ${dir} holds the trainer states step-pretrain-00000002, step-pretrain-00000004`);
    expect(load).toThrow(/echo step-pretrain-00000004 > /);
  });

  it('returns null for a folder with no state at all (stopped before the first checkpoint)', () => {
    expect(load()).toBeNull();
    mkdirSync(dir);
    expect(load()).toBeNull();
  });

  it('uses the newest valid state, with a warning, when latest names a state that is gone', () => {
    saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 6), 2);
    const newest = saveTrainerState(dir, SPECS, OFFSETS, state('finetune', 2), 2);
    writeFileSync(join(dir, 'latest'), 'step-finetune-00000004\n');
    const m = memoryLog();
    expect(load(m.log)?.dir).toBe(newest);
    expect(m.lines.find((l) => l['msg'] === 'state/latest names no trainer state in the folder; trying the newest valid state')).toMatchObject({
      level: 40, latest: 'step-finetune-00000004', states: ['step-pretrain-00000006', 'step-finetune-00000002'],
    });
  });

  it('removes the temporary folders and files of failed writes at resume and before a save', () => {
    saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 2), 2);
    const leftovers = ['.step-pretrain-00000004.tmp-99999', 'latest.tmp-99999-abcd'];
    mkdirSync(join(dir, leftovers[0]!));
    writeFileSync(join(dir, leftovers[0]!, 'params.safetensors'), 'half');
    writeFileSync(join(dir, leftovers[1]!), 'step-');
    const m = memoryLog();
    expect(load(m.log)?.state.meta.step).toBe(2);
    expect(readdirSync(dir).sort()).toEqual(['latest', 'step-pretrain-00000002']);
    expect(m.lines.filter((l) => l['msg'] === 'removed what an unfinished checkpoint write left').map((l) => l['path']).sort()).toEqual(leftovers.map((n) => join(dir, n)).sort());
    mkdirSync(join(dir, leftovers[0]!));
    saveTrainerState(dir, SPECS, OFFSETS, state('pretrain', 6), 2);
    expect(readdirSync(dir).sort()).toEqual(['latest', 'step-pretrain-00000002', 'step-pretrain-00000006']);
  });

  it('removes its temporary folder when a write fails (a disk full, say) and leaves the previous state current', () => {
    saveTrainerState(dir, SPECS, OFFSETS, state('finetune', 2), 2);
    const real = vi.mocked(fsAtomic.writeFileSynced).getMockImplementation()!;
    vi.mocked(fsAtomic.writeFileSynced).mockImplementation((path, data) => {
      if (String(path).endsWith('optimizer.safetensors')) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      real(path, data);
    });
    try {
      expect(() => saveTrainerState(dir, SPECS, OFFSETS, state('finetune', 4), 2)).toThrow(/ENOSPC/);
    } finally {
      vi.mocked(fsAtomic.writeFileSynced).mockImplementation(real);
    }
    expect(readdirSync(dir).sort()).toEqual(['latest', 'step-finetune-00000002']);
    expect(load()?.state.meta.step).toBe(2);
  });

  it('removes states after the one saved: a run resumed from an earlier state abandoned them', () => {
    for (const step of [2, 4, 6]) saveTrainerState(dir, SPECS, OFFSETS, state('finetune', step), 2);
    saveTrainerState(dir, SPECS, OFFSETS, state('finetune', 5), 2);
    expect(listStates(dir)).toEqual(['step-finetune-00000004', 'step-finetune-00000005']);
  });
});

describe('steps.jsonl after a crash', () => {
  const line = (phase: string, step: number) => `${JSON.stringify({ phase, step, loss: 1 })}\n`;

  it('drops a torn last line and returns it; keeps the lines before the resumed step', () => {
    const outputs = new RunOutputs(join(dir, '..'));
    writeFileSync(outputs.stepsFile, `${line('pretrain', 0)}${line('pretrain', 1)}${line('finetune', 0)}${line('finetune', 1)}{"phase":"finetune","st`);
    expect(outputs.trimStepsFrom('finetune', 1)).toEqual({ tornLine: '{"phase":"finetune","st' });
    expect(readFileSync(outputs.stepsFile, 'utf8')).toBe(`${line('pretrain', 0)}${line('pretrain', 1)}${line('finetune', 0)}`);
  });

  it('refuses any other bad line, naming the file and the line', () => {
    const outputs = new RunOutputs(join(dir, '..'));
    const text = `${line('pretrain', 0)}not json\n${line('pretrain', 2)}`;
    writeFileSync(outputs.stepsFile, text);
    expect(() => outputs.trimStepsFrom('pretrain', 1)).toThrow(CheckpointError);
    expect(() => outputs.trimStepsFrom('pretrain', 1)).toThrow(`${outputs.stepsFile} line 2 is not a step record`);
    expect(readFileSync(outputs.stepsFile, 'utf8')).toBe(text);
    expect(existsSync(outputs.stepsFile)).toBe(true);
  });
});
