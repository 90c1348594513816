/**
 * The run's compute fingerprint on real processes. The coordinator loads no
 * tensor backend: run with a backend it cannot load here (tfjs-node-gpu, no
 * GPU), it coordinates workers that run wasm-blas and ends byte-identical to
 * `bertfleet train --backend wasm-blas`. The first worker admitted pins the
 * backend fingerprint: a worker that differs is refused naming it. The
 * trainer state keeps the pin: a coordinator restarted with `--resume auto`
 * refuses a worker that differs (both values named, "pinned by the trainer
 * state"), takes the matching one back, and still ends with train's bytes.
 * Also the pin's rules alone: what a resumed state pins, and when it pins nothing.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComputeFingerprint, pinFromState } from '../../coordinator/compute-fingerprint.js';
import type { ResumePoint } from '../../shared/checkpoint/trainer-state.js';
import { ProtocolError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { runCli } from '../helpers/cli.js';
import { spawnBertfleet, type LoggedProcess } from '../helpers/logged-process.js';
import type { TestNats } from '../helpers/nats.js';
import { pipelineArgs } from '../helpers/pipeline.js';
import { freePort } from '../helpers/ports.js';
import { makeTestSecurity, type TestSecurity } from '../helpers/secure-processes.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-compute-fp-'));
const WEIGHTS = ['pretrained/model.safetensors', 'finetuned/model.safetensors'];
const LONGER = ['--finetune-steps', '24'];

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the compute fingerprint of a distributed run', () => {
  let sec: TestSecurity;
  let nats: TestNats;
  const procs: LoggedProcess[] = [];

  beforeAll(async () => {
    const ref = await runCli(['train', '--backend', 'wasm-blas', ...pipelineArgs(join(work, 'train'), LONGER)], { cwd: work });
    expect(ref.code, ref.stderr.slice(-2000)).toBe(0);
    sec = await makeTestSecurity({ workerIds: ['a', 'other', 'other-2'] });
    nats = await sec.startNats();
  });

  afterAll(async () => {
    for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await nats?.stop();
    sec?.remove();
  });

  it('is pinned by the first worker, kept in the trainer state and held at resume; the coordinator needs no backend', async () => {
    const output = join(work, 'cluster');
    const address = `127.0.0.1:${await freePort()}`;
    // The run config names a backend this machine cannot load: only workers load one.
    const coordinator = (): LoggedProcess => {
      const p = spawnBertfleet(['coordinator', '--listen', address, '--nats', nats.url, '--workers', '1', '--resume', 'auto', ...sec.coordinator,
        ...pipelineArgs(output, [...LONGER, '--backend', 'tfjs-node-gpu'])], { cwd: work });
      procs.push(p);
      return p;
    };
    const worker = (id: string, backend: string): LoggedProcess => {
      const p = spawnBertfleet(['worker', '--coordinator', address, '--nats', nats.url, '--worker-id', id, '--backend', backend, ...sec.worker(id)], { cwd: work });
      procs.push(p);
      return p;
    };

    const first = coordinator();
    const a = worker('a', 'wasm-blas');
    await first.waitFor(/"workerId":"a".*"msg":"compute fingerprint pinned"/, 60_000);
    const other = worker('other', 'cpu');
    expect((await other.exited).code).toBe(1);
    expect(other.lines.join('\n')).toMatch(
      /registration of worker other refused: backend_fingerprint differs: expected backend=wasm-blas;.*, got backend=cpu;.*pinned by worker a \(the first admitted\)/,
    );

    // Stopped mid-run (resumable), then started again on the same output.
    await first.waitFor(/"phase":"finetune","step":2,"dir"/, 120_000);
    first.proc.kill('SIGTERM');
    expect((await first.exited).code).toBe(143);
    // Worker a stops too, so the resumed run cannot finish before the refusal below is tried.
    a.proc.kill('SIGTERM');
    await a.exited;
    const state = JSON.parse(readFileSync(join(output, 'state', readFileSync(join(output, 'state', 'latest'), 'utf8').trim(), 'trainer_state.json'), 'utf8')) as { computeFingerprint?: string };
    expect(state.computeFingerprint).toMatch(/^backend=wasm-blas;/);

    const second = coordinator();
    await second.waitFor(/"msg":"compute fingerprint from the trainer state: every worker must have it"/, 60_000);
    const other2 = worker('other-2', 'cpu');
    expect((await other2.exited).code).toBe(1);
    const refusal = other2.lines.join('\n');
    expect(refusal).toContain(`backend_fingerprint differs: expected ${state.computeFingerprint}, got backend=cpu;`);
    expect(refusal).toMatch(/pinned by the trainer state \S+step-finetune-/);

    // Worker a comes back and the run ends as train's.
    const a2 = worker('a', 'wasm-blas');
    const ends = await Promise.all([second.exited, a2.exited]);
    expect(ends.map((e) => e.code), second.lines.slice(-20).join('\n')).toEqual([0, 0]);
    expect(second.lines.join('\n')).not.toMatch(/"msg":"backend chosen"/);
    for (const f of WEIGHTS) expect(readFileSync(join(output, f)).equals(readFileSync(join(work, 'train', f))), f).toBe(true);
  }, 240_000);
});

describe('the pin alone', () => {
  const log = silentLogger();
  const point = (computeFingerprint?: string): ResumePoint => ({
    dir: '/runs/x/state/step-pretrain-00000002',
    state: {
      meta: { format: 'bertfleet-trainer-state/2', runKey: 'k', phase: 'pretrain', step: 2, extra: {}, ...(computeFingerprint !== undefined && { computeFingerprint }) },
      params: new Float32Array(0), m: new Float32Array(0), v: new Float32Array(0),
    },
  });

  it('pins nothing without a state, for a state from before the pin existed, or when the resume changed the backend settings', () => {
    expect(pinFromState(null, { settingsChanged: false }, log)).toBeNull();
    expect(pinFromState(point(), { settingsChanged: false }, log)).toBeNull();
    expect(pinFromState(point('backend=cpu'), { settingsChanged: true }, log)).toBeNull();
  });

  it("holds workers to a resumed state's pin, naming both values and where it came from", () => {
    const pin = new ComputeFingerprint(pinFromState(point('backend=cpu'), { settingsChanged: false }, log), log);
    expect(() => pin.check('backend=cpu', 'w')).not.toThrow();
    const err = (() => {
      try {
        pin.check('backend=wasm-blas', 'registration of worker w refused');
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toMatch(
      /^registration of worker w refused: backend_fingerprint differs: expected backend=cpu, got backend=wasm-blas \(the run's compute fingerprint, pinned by the trainer state \/runs\/x\/state\/step-pretrain-00000002:/,
    );
    pin.admitted('w2', 'backend=wasm-blas');
    expect(pin.value).toBe('backend=cpu');
  });

  it('is pinned once, by the first worker admitted', () => {
    const pin = new ComputeFingerprint(null, log);
    expect(() => pin.check('backend=wasm-blas', 'w')).not.toThrow();
    pin.admitted('w1', 'backend=wasm-blas');
    pin.admitted('w2', 'backend=cpu');
    expect(pin.pinned).toEqual({ fingerprint: 'backend=wasm-blas', source: 'worker w1 (the first admitted)' });
    expect(() => pin.check('backend=cpu', 'w3')).toThrow(/expected backend=wasm-blas, got backend=cpu/);
  });
});
