/**
 * `--when-done stay` on real processes (the form k8s/base runs them in, where
 * a StatefulSet restarts any process that exits): a coordinator and a worker
 * finish a short run and stay up — the coordinator ready on its health port,
 * its summary and report.html written, its dashboard and /metrics still
 * served, its gRPC port refusing every call
 * with FAILED_PRECONDITION "run finished"; the worker alive but not ready. A
 * worker that starts after the end exits 0 at once (no retrying) or, with
 * stay, idles. SIGTERM ends each with 0. A coordinator restarted on the
 * finished output with `--resume auto --when-done stay` goes straight to
 * serving: no phase is run again. A failed run still exits non-zero, the
 * coordinator and its workers, so a restart resumes it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProtocolError, RunFinishedError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/log.js';
import { loadTlsMaterial } from '../../shared/security/tls-material.js';
import { createCoordinatorClient } from '../../shared/wire/grpc.js';
import { PROTOCOL_VERSION } from '../../shared/wire/messages.js';
import { spawnBertfleet, type LoggedProcess } from '../helpers/logged-process.js';
import type { TestNats } from '../helpers/nats.js';
import { PIPELINE_FIXTURES, pipelineArgs } from '../helpers/pipeline.js';
import { freePort, isPortFree } from '../helpers/ports.js';
import { makeTestSecurity, type TestSecurity } from '../helpers/secure-processes.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-when-done-'));
const output = join(work, 'run');
const STAYING = /"msg":"run finished; staying up \(--when-done stay\)"/;

async function status(url: string): Promise<{ code: number; body: string }> {
  const r = await fetch(url);
  return { code: r.status, body: await r.text() };
}

describe('--when-done stay', () => {
  let sec: TestSecurity;
  let nats: TestNats;
  let address: string;
  let port: number;
  let coordinatorHealth: string;
  let dashboard: string;
  let coordinator: LoggedProcess;
  let worker: LoggedProcess;
  let workerHealth: string;

  const startCoordinator = async (extra: string[] = []): Promise<LoggedProcess> => {
    const [healthPort, dashboardPort] = [await freePort(), await freePort()];
    coordinatorHealth = `http://127.0.0.1:${healthPort}`;
    dashboard = `http://127.0.0.1:${dashboardPort}/`;
    return spawnBertfleet([
      'coordinator', '--listen', address, '--nats', nats.url, '--workers', '1', '--when-done', 'stay',
      '--health-port', String(healthPort), '--health-host', '127.0.0.1', '--dashboard-port', String(dashboardPort),
      ...sec.coordinator, ...pipelineArgs(output), ...extra,
    ], { cwd: work });
  };
  const startWorker = async (id: string, extra: string[] = []): Promise<{ proc: LoggedProcess; health: string }> => {
    const healthPort = await freePort();
    const proc = spawnBertfleet([
      'worker', '--coordinator', address, '--nats', nats.url, '--worker-id', id,
      '--health-port', String(healthPort), '--health-host', '127.0.0.1', ...sec.worker(id), ...extra,
    ], { cwd: work });
    return { proc, health: `http://127.0.0.1:${healthPort}` };
  };

  beforeAll(async () => {
    sec = await makeTestSecurity({ workerIds: ['w1', 'late', 'late-stay', 'probe', 'f1', 'f2'] });
    nats = await sec.startNats();
    port = await freePort();
    address = `127.0.0.1:${port}`;
  });

  afterAll(async () => {
    for (const p of [coordinator, worker]) if (p !== undefined && p.proc.exitCode === null) p.proc.kill('SIGKILL');
    await nats?.stop();
    sec?.remove();
    rmSync(work, { recursive: true, force: true });
  });

  it('finishes the run and stays up: the coordinator ready, the worker alive but not ready', async () => {
    coordinator = await startCoordinator();
    const w = await startWorker('w1', ['--when-done', 'stay']);
    worker = w.proc;
    workerHealth = w.health;
    await coordinator.waitFor(STAYING, 120_000);
    await worker.waitFor(STAYING, 60_000);
    expect(coordinator.lines.join('\n')).toMatch(/"msg":"run finished"/);
    // The summary and the report come at the end of the run, not at SIGTERM.
    expect(coordinator.stdout()).toMatch(/^finetuning \(test split, \d+ examples\): accuracy/m);
    expect(existsSync(join(output, 'report.html'))).toBe(true);
    const ready = await status(`${coordinatorHealth}/readyz`);
    expect(ready.code).toBe(200);
    expect(JSON.parse(ready.body)).toMatchObject({ ready: true, reason: expect.stringContaining('run finished') });
    expect((await status(`${coordinatorHealth}/metrics`)).code).toBe(200);
    expect((await status(dashboard)).code).toBe(200);
    expect((await status(`${workerHealth}/healthz`)).code).toBe(200);
    const idle = await status(`${workerHealth}/readyz`);
    expect(idle.code).toBe(503);
    expect(JSON.parse(idle.body)).toMatchObject({ ready: false, reason: expect.stringContaining('the run is finished') });
    expect(coordinator.proc.exitCode).toBeNull();
    expect(worker.proc.exitCode).toBeNull();
  }, 180_000);

  it('refuses every call from a late worker with FAILED_PRECONDITION "run finished"', async () => {
    const tls = loadTlsMaterial(sec.security.pki.workers.get('probe')!, { role: 'worker', id: 'probe' });
    const client = await createCoordinatorClient(address, { log: silentLogger(), tls });
    try {
      const config = await client.getRunConfig({ worker_id: 'probe', protocol_version: PROTOCOL_VERSION }).catch((e: unknown) => e);
      expect(config).toBeInstanceOf(RunFinishedError);
      expect(config).toBeInstanceOf(ProtocolError);
      expect((config as Error).message).toContain('run finished');
      expect((config as Error).cause).toMatchObject({ code: 9 }); // FAILED_PRECONDITION
      const register = await client.register({
        worker_id: 'probe', protocol_version: PROTOCOL_VERSION, model_config_fingerprint: '', vocab_fingerprint: '', data_fingerprint: '', backend_fingerprint: '', pid: 1, hostname: 'test',
      }).catch((e: unknown) => e);
      expect(register).toBeInstanceOf(RunFinishedError);
      expect((register as Error).cause).toMatchObject({ code: 9 });
    } finally {
      client.close();
    }
  });

  it('lets a late worker exit 0 at once, or idle with --when-done stay', async () => {
    const late = (await startWorker('late')).proc;
    const end = await late.exited;
    expect(end.code, late.lines.slice(-10).join('\n')).toBe(0);
    const log = late.lines.join('\n');
    expect(log).toMatch(/"msg":"the run is finished; nothing to do"/);
    expect(log).not.toMatch(/coordinator unreachable; retrying|"level":50/);

    const stay = await startWorker('late-stay', ['--when-done', 'stay']);
    await stay.proc.waitFor(STAYING);
    expect((await status(`${stay.health}/readyz`)).code).toBe(503);
    stay.proc.proc.kill('SIGTERM');
    expect((await stay.proc.exited).code).toBe(0);
  }, 60_000);

  it('exits 0 on SIGTERM, coordinator and worker, and frees the port', async () => {
    worker.proc.kill('SIGTERM');
    coordinator.proc.kill('SIGTERM');
    const [w, c] = await Promise.all([worker.exited, coordinator.exited]);
    expect(w.code, worker.lines.slice(-10).join('\n')).toBe(0);
    expect(c.code, coordinator.lines.slice(-10).join('\n')).toBe(0);
    expect(await isPortFree(port)).toBe(true);
  }, 30_000);

  it('restarted on the finished output with --resume auto, goes straight to serving', async () => {
    coordinator = await startCoordinator(['--resume', 'auto']);
    await coordinator.waitFor(STAYING, 60_000);
    const log = coordinator.lines.join('\n');
    expect(log).toMatch(/"msg":"run already finished"/);
    expect(log).not.toMatch(/"msg":"phase started"/);
    expect((await status(`${coordinatorHealth}/readyz`)).code).toBe(200);
    const late = (await startWorker('late')).proc;
    expect((await late.exited).code).toBe(0);
    expect(late.lines.join('\n')).toMatch(/"msg":"the run is finished; nothing to do"/);
    coordinator.proc.kill('SIGTERM');
    expect((await coordinator.exited).code).toBe(0);
  }, 90_000);

  it('still exits non-zero when the run fails, coordinator and workers alike', async () => {
    // A gradient audit on every step, and a worker that flips a bit of each audit gradient (the test hook): the first audit fails the run.
    const config = JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'run.json'), 'utf8')) as Record<string, unknown>;
    const file = join(work, 'audit-every-step.json');
    writeFileSync(file, JSON.stringify({ ...config, cluster: { auditEverySteps: 1 } }));
    const failing = spawnBertfleet([
      'coordinator', '--listen', address, '--nats', nats.url, '--workers', '2', '--when-done', 'stay',
      ...sec.coordinator, ...pipelineArgs(join(work, 'failed'), ['--config', file]),
    ], { cwd: work });
    const good = (await startWorker('f1', ['--when-done', 'stay'])).proc;
    const bad = spawnBertfleet(['worker', '--coordinator', address, '--nats', nats.url, '--worker-id', 'f2', '--when-done', 'stay', ...sec.worker('f2')], {
      cwd: work, env: { BERTFLEET_TEST_FAULT_INJECT: 'audit-flip' },
    });
    const ends = await Promise.all([failing.exited, good.exited, bad.exited]);
    expect(failing.lines.join('\n')).toMatch(/GradientAuditError/);
    expect(ends[0]!.code, failing.lines.slice(-10).join('\n')).not.toBe(0);
    expect(ends[0]!.code).not.toBeNull();
    expect(ends.slice(1).map((e) => e.code)).toEqual([1, 1]);
    for (const p of [failing, good, bad]) expect(p.lines.join('\n')).not.toMatch(STAYING);
  }, 120_000);
});
