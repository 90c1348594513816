/**
 * The gradient audit on whole runs of the pipeline fixtures, as separate
 * processes (`bertfleet coordinator`, two `bertfleet worker`s, a real
 * nats-server): with cluster.auditEverySteps = 1 every step's audited
 * micro-batch is computed by two workers, every audit passes, and the weights
 * are byte-identical to `bertfleet train`'s (the audit changes no result);
 * with one worker made faulty by the test hook BERTFLEET_TEST_FAULT_INJECT=
 * audit-flip (one bit of each audit gradient flipped, as a bad core might),
 * the first audit stops the run with a GradientAuditError naming both
 * workers and their fingerprints. A single worker skips audits, saying so once.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { fields, spawnBertfleet, type LoggedProcess } from '../helpers/logged-process.js';
import type { TestNats } from '../helpers/nats.js';
import { PIPELINE_FIXTURES, pipelineArgs } from '../helpers/pipeline.js';
import { freePort } from '../helpers/ports.js';
import { makeTestSecurity, type TestSecurity } from '../helpers/secure-processes.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-audit-'));
const FILES = ['pretrained/model.safetensors', 'finetuned/model.safetensors', 'metrics.json'];

/** The fixtures' run config with `cluster.auditEverySteps` = `every`, as a --config file. */
function auditConfig(every: number): string {
  const config = JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'run.json'), 'utf8')) as Record<string, unknown>;
  const file = join(work, `audit-${every}.json`);
  writeFileSync(file, JSON.stringify({ ...config, cluster: { auditEverySteps: every } }));
  return file;
}

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('gradient audit across workers', () => {
  let nats: TestNats;
  let sec: TestSecurity;

  beforeAll(async () => {
    sec = await makeTestSecurity({ workerIds: ['a', 'b'] });
    nats = await sec.startNats();
    const ref = await runCli(['train', ...pipelineArgs(join(work, 'train'))], { cwd: work });
    expect(ref.code, ref.stderr.slice(-2000)).toBe(0);
  });

  afterAll(async () => {
    await nats?.stop();
    sec?.remove();
  });

  async function start(name: string, every: number, env: Record<string, NodeJS.ProcessEnv> = {}): Promise<{ coordinator: LoggedProcess; workers: LoggedProcess[] }> {
    const address = `127.0.0.1:${await freePort()}`;
    const coordinator = spawnBertfleet(['coordinator', '--listen', address, '--nats', nats.url, '--workers', '2', ...sec.coordinator, ...pipelineArgs(join(work, name), ['--config', auditConfig(every)])], { cwd: work });
    const workers = ['a', 'b'].map((id) => spawnBertfleet(['worker', '--coordinator', address, '--nats', nats.url, '--worker-id', id, ...sec.worker(id)], { cwd: work, env: env[id] ?? {} }));
    return { coordinator, workers };
  }

  it('audits every step on two workers, every audit passes, and the bytes are those of train', async () => {
    const { coordinator, workers } = await start('audited', 1);
    const ends = await Promise.all([coordinator.exited, ...workers.map((w) => w.exited)]);
    expect(ends.map((e) => e.code), coordinator.lines.slice(-30).join('\n')).toEqual([0, 0, 0]);
    expect(coordinator.lines.filter((l) => l.includes('"level":50')), 'error-level lines').toEqual([]);
    const passed = coordinator.lines.filter((l) => l.includes('"msg":"gradient audit passed"')).map(fields);
    // 6 pretraining + 6 finetuning steps, one audit each, each compared by both workers.
    expect(passed).toHaveLength(12);
    expect(passed.map((p) => `${p['phase']}:${p['step']}`)).toEqual(expect.arrayContaining(['pretrain:0', 'pretrain:5', 'finetune:0', 'finetune:5']));
    for (const p of passed) expect([p['owner'], p['auditor']].sort()).toEqual(['a', 'b']);
    expect(passed.find((p) => p['step'] === 4 && p['phase'] === 'pretrain')).toMatchObject({ microBatch: 1 }); // step mod M, M = 3
    expect(coordinator.lines.filter((l) => l.includes('"msg":"gradient audit dropped"'))).toEqual([]);
    for (const f of FILES) expect(readFileSync(join(work, 'audited', f)).equals(readFileSync(join(work, 'train', f))), `${f} differs from train's`).toBe(true);
  });

  it('stops the run with a GradientAuditError naming both workers when one computes a different gradient', async () => {
    const { coordinator, workers } = await start('faulty', 2, { b: { BERTFLEET_TEST_FAULT_INJECT: 'audit-flip' } });
    const failed = fields(await coordinator.waitFor(/"msg":"gradient audit failed"/, 120_000));
    // The first audit is of pretraining step 1 (2 steps completed), micro-batch 1 mod 3.
    expect(failed).toMatchObject({ level: 50, phase: 'pretrain', step: 1, microBatch: 1, tensor: 'cls.seq_relationship.bias' });
    expect([failed['owner'], failed['auditor']].sort()).toEqual(['a', 'b']);
    expect(failed['ownerFingerprint']).toMatch(/^backend=.+;libc=.+;cpu=.+/);
    const end = await coordinator.exited;
    expect(end.code).toBe(3); // RUN_STOPPED_EXIT: a restart would meet the same workers again
    const stderr = coordinator.lines.filter((l) => !l.startsWith('{')).join('\n');
    expect(stderr).toMatch(/GradientAuditError: gradient audit of pretrain step 1, micro-batch 1: workers [ab] and [ab] computed different gradients; first differing tensor: cls\.seq_relationship\.bias/);
    expect(stderr).toMatch(/a: sha256 [0-9a-f]{64}, fingerprint backend=.*b: sha256 [0-9a-f]{64}, fingerprint backend=|b: sha256 [0-9a-f]{64}, fingerprint backend=.*a: sha256 [0-9a-f]{64}, fingerprint backend=/);
    const ends = await Promise.all(workers.map((w) => w.exited));
    expect(ends.map((e) => e.code)).toEqual([1, 1]);
    expect(workers[0]!.lines.join('\n')).toMatch(/the coordinator stopped the run: failed: gradient audit of pretrain step 1/);
  });

  it('skips audits with a single worker, saying so once', async () => {
    const r = await runCli(['cluster', '--workers', '1', ...pipelineArgs(join(work, 'single'), ['--config', auditConfig(1)])], { cwd: work });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stderr.match(/"msg":"gradient audits skipped while only one worker is live"/g) ?? []).toHaveLength(1);
    expect(r.stderr).not.toMatch(/"msg":"gradient audit (passed|failed)"/);
  });
});
