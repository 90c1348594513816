/**
 * Fault injection on short runs of the micro model: a coordinator and worker
 * processes started for real (`bertfleet coordinator`, `bertfleet worker`),
 * one fault per run, and each run must end with pretrained and finetuned
 * weights byte-identical to `bertfleet train`'s:
 *   - a worker SIGKILLed mid-step (its micro-batches are recomputed by the others),
 *     also with the gradient cut over two reducer processes (`--reducers`);
 *   - a worker SIGTERMed (it drains, leaves with reason `drained`, exits 0);
 *   - a worker added mid-phase;
 *   - the coordinator SIGKILLed and started again with `--resume` (workers wait and re-register);
 *   - the coordinator SIGTERMed between checkpoints: it checkpoints the completed steps, tells
 *     the workers it is stopping (they wait), and `--resume auto` continues from that step
 *     (asked for more workers than come back, a resumed run goes on with those that do);
 *   - nats-server restarted on its port and store;
 *   - a straggler (a test hook slows one worker), which gets fewer micro-batches;
 *   - a worker whose micro-batch takes longer than the heartbeat timeout, which is
 *     never declared dead (it computes in a thread; its main thread keeps beating).
 * Security is on throughout: every process has its certificate from one
 * throwaway CA and nats-server runs with users and TLS.
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

const work = mkdtempSync(join(tmpdir(), 'bertfleet-faults-'));
const WEIGHTS = ['pretrained/model.safetensors', 'finetuned/model.safetensors'];
/** Long enough to inject a fault mid-phase; global batch 12 = 3 micro-batches of 4. */
const STEPS = ['--pretrain-steps', '24', '--finetune-steps', '16'];

afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  address: string;
  coordinator: LoggedProcess;
  workers: Map<string, LoggedProcess>;
  startWorker(id: string, env?: NodeJS.ProcessEnv): LoggedProcess;
}

describe('faults survived with byte-identical weights', () => {
  let nats: TestNats;
  let sec: TestSecurity;

  beforeAll(async () => {
    sec = await makeTestSecurity({ workerIds: ['a', 'b', 'c'], reducers: 2 });
    nats = await sec.startNats();
    const ref = await runCli(['train', ...pipelineArgs(join(work, 'train'), STEPS)], { cwd: work });
    expect(ref.code, ref.stderr.slice(-2000)).toBe(0);
  });

  afterAll(async () => {
    await nats?.stop();
    sec?.remove();
  });

  async function start(name: string, opts: { workers: string[]; expected?: number; port?: number; extra?: string[]; env?: Record<string, NodeJS.ProcessEnv> }): Promise<Run> {
    const port = opts.port ?? (await freePort());
    const address = `127.0.0.1:${port}`;
    const coordinator = spawnBertfleet(
      ['coordinator', '--listen', address, '--nats', nats.url, '--workers', String(opts.expected ?? opts.workers.length), ...sec.coordinator, ...pipelineArgs(join(work, name), [...STEPS, ...(opts.extra ?? [])])],
      { cwd: work },
    );
    const workers = new Map<string, LoggedProcess>();
    const startWorker = (id: string, env: NodeJS.ProcessEnv = {}): LoggedProcess => {
      const w = spawnBertfleet(['worker', '--coordinator', address, '--nats', nats.url, '--worker-id', id, ...sec.worker(id)], { cwd: work, env });
      workers.set(id, w);
      return w;
    };
    for (const id of opts.workers) startWorker(id, opts.env?.[id]);
    return { address, coordinator, workers, startWorker };
  }

  function expectSameAsTrain(name: string): void {
    for (const f of WEIGHTS) {
      expect(readFileSync(join(work, name, f)).equals(readFileSync(join(work, 'train', f))), `${name}/${f} differs from train's`).toBe(true);
    }
  }

  async function finished(run: Run, name: string): Promise<void> {
    const end = await run.coordinator.exited;
    expect(end.code, run.coordinator.lines.slice(-30).join('\n')).toBe(0);
    expect(run.coordinator.stdout()).toMatch(/^finetuning \(test split/m);
    expect(run.coordinator.lines.filter((l) => l.includes('"level":50')), 'error-level lines').toEqual([]);
    expectSameAsTrain(name);
  }

  it('survives a worker SIGKILLed mid-step: the others recompute its micro-batches', async () => {
    // The victim is slow (a test hook), so a kill lands while it computes its share.
    const run = await start('killed', { workers: ['a', 'b', 'c'], env: { c: { BERTFLEET_TEST_DELAY_MS_PER_MICRO_BATCH: '400' } } });
    await run.coordinator.waitFor(/"phase":"pretrain".*"step":4,.*"msg":"step done"|"step":4,"of":24/, 120_000);
    run.workers.get('c')!.proc.kill('SIGKILL');
    const moved = fields(await run.coordinator.waitFor(/"msg":"micro-batches reassigned"/, 60_000));
    expect(moved).toMatchObject({ from: 'c' });
    expect(fields(await run.coordinator.waitFor(/"workerId":"c".*"msg":"worker left"/))).toMatchObject({ reason: 'heartbeat_timeout' });
    await finished(run, 'killed');
  });

  it('survives a worker SIGKILLed mid-step with two reducer processes: they learn the reassignment too', async () => {
    const ports = [await freePort(), await freePort()];
    const reducers = ports.map((p, i) => spawnBertfleet(['reducer', '--listen', `127.0.0.1:${p}`, ...sec.reducer(i + 1)], { cwd: work }));
    try {
      await Promise.all(reducers.map((r) => r.waitFor(/"msg":"reducer listening"/, 60_000)));
      const extra = ['--reducers', ports.map((p) => `127.0.0.1:${p}`).join(',')];
      const run = await start('killed-reducers', { workers: ['a', 'b', 'c'], extra, env: { c: { BERTFLEET_TEST_DELAY_MS_PER_MICRO_BATCH: '400' } } });
      await run.coordinator.waitFor(/"step":4,"of":24/, 120_000);
      run.workers.get('c')!.proc.kill('SIGKILL');
      expect(fields(await run.coordinator.waitFor(/"msg":"micro-batches reassigned"/, 60_000))).toMatchObject({ from: 'c' });
      await Promise.all(reducers.map(async (r) => expect(fields(await r.waitFor(/"msg":"micro-batches reassigned"/, 60_000))).toMatchObject({ from: 'c' })));
      await finished(run, 'killed-reducers');
    } finally {
      for (const r of reducers) r.proc.kill('SIGTERM');
      await Promise.all(reducers.map((r) => r.exited));
    }
  });

  it('drains a worker on SIGTERM: it leaves with reason drained and exits 0, the run goes on', async () => {
    const run = await start('drained', { workers: ['a', 'b'] });
    await run.coordinator.waitFor(/"step":4,"of":24/, 120_000);
    const b = run.workers.get('b')!;
    b.proc.kill('SIGTERM');
    expect((await b.exited).code).toBe(0);
    expect(b.lines.join('\n')).toMatch(/"msg":"left the run \(drained\)"/);
    expect(fields(await run.coordinator.waitFor(/"workerId":"b".*"msg":"worker left"/))).toMatchObject({ reason: 'drained' });
    await finished(run, 'drained');
  });

  it('takes in a worker added mid-phase', async () => {
    const run = await start('added', { workers: ['a'] });
    await run.coordinator.waitFor(/"step":4,"of":24/, 120_000);
    const b = run.startWorker('b');
    await b.waitFor(/"msg":"state fetched"/, 60_000);
    await b.waitFor(/"sequences":[1-9]\d*,"msg":"worker steps"/, 60_000);
    await finished(run, 'added');
    expect((await b.exited).code).toBe(0);
    // A coordinator restarted after the end (a supervisor, a pod) finds the run finished: no worker needed.
    const again = await runCli(['coordinator', '--listen', `127.0.0.1:${await freePort()}`, '--nats', nats.url, '--workers', '2', ...sec.coordinator, '--output', join(work, 'added'), '--resume', 'auto', '--no-progress'], { cwd: work });
    expect(again.code, again.stderr.slice(-2000)).toBe(0);
    expect(again.stderr).toMatch(/"msg":"run already finished"/);
    expect(again.stdout).toMatch(/^finetuning \(test split/m);
    expectSameAsTrain('added');
  });

  it('survives the coordinator SIGKILLed: started again with --resume, the workers re-register and resynchronise', async () => {
    const port = await freePort();
    const run = await start('coordinator-killed', { workers: ['a', 'b'], port });
    await run.coordinator.waitFor(/"step":6,"dir"/, 120_000);
    run.coordinator.proc.kill('SIGKILL');
    await run.coordinator.exited;
    const again = spawnBertfleet(['coordinator', '--listen', run.address, '--nats', nats.url, '--workers', '1', ...sec.coordinator, '--output', join(work, 'coordinator-killed'), '--resume', '--no-progress'], { cwd: work });
    await again.waitFor(/"msg":"resuming"/, 60_000);
    for (const id of ['a', 'b']) await run.workers.get(id)!.waitFor(/"session":[1-9].*"msg":"registered"|"msg":"registered".*"session":[1-9]/, 60_000);
    await finished({ ...run, coordinator: again }, 'coordinator-killed');
    for (const id of ['a', 'b']) expect((await run.workers.get(id)!.exited).code).toBe(0);
  });

  it('checkpoints the completed steps on SIGTERM to the coordinator; the waiting workers continue with the next one', async () => {
    const config = JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'run.json'), 'utf8')) as Record<string, unknown>;
    const file = join(work, 'rare-checkpoints.json');
    writeFileSync(file, JSON.stringify({ ...config, checkpoint: { everySteps: 1000, keep: 2 } }));
    const run = await start('coordinator-sigterm', { workers: ['a', 'b'], extra: ['--config', file] });
    await run.coordinator.waitFor(/"step":5,"of":24/, 120_000);
    run.coordinator.proc.kill('SIGTERM');
    expect((await run.coordinator.exited).code).toBe(143);
    const saved = fields(await run.coordinator.waitFor(/"msg":"stopping: checkpointing the completed steps"/));
    expect(saved['step']).toBeGreaterThanOrEqual(5);
    for (const id of ['a', 'b']) await run.workers.get(id)!.waitFor(/"msg":"coordinator stopping; waiting for it to come back"/);
    // Asked for 3 workers, the resumed run goes on with the 2 that come back.
    const again = spawnBertfleet(['coordinator', '--listen', run.address, '--nats', nats.url, '--workers', '3', ...sec.coordinator, '--output', join(work, 'coordinator-sigterm'), '--resume', 'auto', '--no-progress'], { cwd: work });
    expect(fields(await again.waitFor(/"msg":"resuming"/, 60_000))).toMatchObject({ phase: 'pretrain', step: saved['step'] });
    expect(fields(await again.waitFor(/"msg":"resumed run: going on with the workers that came back"/, 60_000))).toMatchObject({ have: 2, want: 3 });
    await finished({ ...run, coordinator: again }, 'coordinator-sigterm');
    for (const id of ['a', 'b']) expect((await run.workers.get(id)!.exited).code).toBe(0);
  });

  it('survives a nats-server restart on the same port and store', async () => {
    const local = await sec.startNats();
    const url = local.url;
    try {
      const port = await freePort();
      const address = `127.0.0.1:${port}`;
      const coordinator = spawnBertfleet(['coordinator', '--listen', address, '--nats', url, '--workers', '2', ...sec.coordinator, ...pipelineArgs(join(work, 'nats-restarted'), STEPS)], { cwd: work });
      const workers = ['a', 'b'].map((id) => spawnBertfleet(['worker', '--coordinator', address, '--nats', url, '--worker-id', id, ...sec.worker(id)], { cwd: work }));
      await coordinator.waitFor(/"step":4,"of":24/, 120_000);
      await local.stop({ keepStore: true, graceMs: 1_000 });
      await new Promise((r) => setTimeout(r, 1_500));
      const restarted = await sec.startNats({ storeDir: local.storeDir, port: local.port });
      try {
        await finished({ address, coordinator, workers: new Map(), startWorker: () => undefined as never }, 'nats-restarted');
        for (const w of workers) expect((await w.exited).code).toBe(0);
      } finally {
        await restarted.stop();
      }
    } finally {
      await local.stop().catch(() => undefined);
    }
  });

  it('gives a straggler fewer micro-batches and logs it, with the same bits', async () => {
    const run = await start('straggler', { workers: ['a', 'b'], env: { b: { BERTFLEET_TEST_DELAY_MS_PER_MICRO_BATCH: '150' } } });
    const line = fields(await run.coordinator.waitFor(/"msg":"straggler: giving it fewer micro-batches"/, 120_000));
    expect(line).toMatchObject({ workerId: 'b' });
    await finished(run, 'straggler');
    // Before the verdict b computes 1 of the 3 micro-batches of a step (4 sequences); once judged, fewer (here none).
    const shares = run.workers.get('b')!.lines.filter((l) => l.includes('"msg":"worker steps"')).map((l) => fields(l)['sequences'] as number);
    expect(shares).toContain(4);
    expect(shares).toContain(0);
  });

  it('never declares dead a worker whose micro-batch takes longer than the heartbeat timeout', async () => {
    const config = JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'run.json'), 'utf8')) as Record<string, unknown>;
    const file = join(work, 'short-timeout.json');
    writeFileSync(file, JSON.stringify({ ...config, cluster: { heartbeatIntervalMs: 300, heartbeatTimeoutMs: 1_500 } }));
    const run = await start('slow-alive', { workers: ['a', 'b'], extra: ['--config', file], env: { b: { BERTFLEET_TEST_DELAY_MS_PER_MICRO_BATCH: '2500' } } });
    await finished(run, 'slow-alive');
    expect(run.coordinator.lines.filter((l) => l.includes('"msg":"worker left"'))).toEqual([]);
    // b did compute (slowly) before it was judged a straggler.
    const shares = run.workers.get('b')!.lines.filter((l) => l.includes('"msg":"worker steps"')).map((l) => fields(l)['sequences'] as number);
    expect(shares).toContain(4);
  });
});
