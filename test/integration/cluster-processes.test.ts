/**
 * Whole distributed runs as separate processes, on the pipeline fixtures:
 * `bertfleet coordinator` refuses a worker whose backend differs from the
 * first admitted worker's (naming the fingerprint), accepts one that matches, takes in a second worker that
 * connects after the finetuning phase was written (it reads the phase, fetches
 * the state and computes its share) and ends byte-identical to `bertfleet
 * train`, every process gone and the port free. `bertfleet cluster` stopped
 * by SIGINT stops everything it started; losing a worker to SIGKILL, it goes
 * on and ends byte-identical to train. (More of the cluster's supervision:
 * cluster-supervision.test.ts.)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { fields, spawnBertfleet, type LoggedProcess } from '../helpers/logged-process.js';
import type { TestNats } from '../helpers/nats.js';
import { pipelineArgs } from '../helpers/pipeline.js';
import { freePort, isPortFree } from '../helpers/ports.js';
import { makeTestSecurity, type TestSecurity } from '../helpers/secure-processes.js';
import { isProcessAlive } from '../helpers/process.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-processes-'));
const WEIGHTS = ['pretrained/model.safetensors', 'finetuned/model.safetensors'];
const LONGER = ['--finetune-steps', '60'];

afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(async () => {
  const ref = await runCli(['train', ...pipelineArgs(join(work, 'train'), LONGER)], { cwd: work });
  expect(ref.code, ref.stderr.slice(-2000)).toBe(0);
});

async function gone(pids: number[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isProcessAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(pids.filter(isProcessAlive), 'processes still alive').toEqual([]);
}

describe('bertfleet coordinator and bertfleet worker', () => {
  let nats: TestNats;
  let sec: TestSecurity;

  beforeAll(async () => {
    sec = await makeTestSecurity({ workerIds: ['bad', 'a', 'b'] });
    nats = await sec.startNats();
  });

  afterAll(async () => {
    await nats?.stop();
    sec?.remove();
  });

  it('refuses a mismatched worker, takes in a late one after the phase change, and matches train', async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const coordinator = spawnBertfleet(['coordinator', '--listen', address, '--nats', nats.url, '--workers', '1', ...sec.coordinator, ...pipelineArgs(join(work, 'coordinated'), LONGER)], { cwd: work });
    const worker = (id: string, extra: string[] = []): LoggedProcess =>
      spawnBertfleet(['worker', '--coordinator', address, '--nats', nats.url, '--worker-id', id, ...sec.worker(id), ...extra], { cwd: work });
    // The first worker admitted pins the run's compute fingerprint: a first, then the mismatched one.
    const a = worker('a');
    await coordinator.waitFor(/"workerId":"a".*"msg":"worker joined"/);
    const bad = worker('bad', ['--backend', 'cpu']);
    const refused = await bad.exited;
    expect(refused.code).toBe(1);
    expect(bad.lines.join('\n')).toMatch(/ProtocolError: registration of worker bad refused: backend_fingerprint differs: expected backend=.+, got backend=cpu;/);
    await coordinator.waitFor(/"workerId":"bad".*"msg":"worker refused"/);

    await coordinator.waitFor(/"msg":"phase started"/);
    await coordinator.waitFor(/"phase":"finetune".*"msg":"phase started"/, 120_000);
    const b = worker('b');
    const seen = fields(await b.waitFor(/"msg":"phase changed"/));
    expect(seen).toMatchObject({ from: null, to: 'finetune' });
    expect(fields(await b.waitFor(/"msg":"state fetched"/))).toMatchObject({ phase: 'finetune' });
    // Its first step may find it outside the partition (it joined mid-step): it then only applies the update.
    const share = fields(await b.waitFor(/"sequences":[1-9]\d*,"msg":"worker steps"/));
    expect(share).toMatchObject({ phase: 'finetune' });

    const results = await Promise.all([coordinator.exited, a.exited, b.exited]);
    expect(results.map((r) => r.code), coordinator.lines.slice(-20).join('\n')).toEqual([0, 0, 0]);
    expect(coordinator.stdout()).toMatch(/^finetuning \(test split/m);
    for (const f of WEIGHTS) expect(readFileSync(join(work, 'coordinated', f)).equals(readFileSync(join(work, 'train', f))), f).toBe(true);
    await gone([coordinator.pid, a.pid, b.pid, bad.pid]);
    expect(await isPortFree(port)).toBe(true);
  });
});

describe('bertfleet cluster shutdown', () => {
  /** Starts a cluster and returns it once training is under way, with every pid and port it started. */
  async function started(name: string, extra: string[]) {
    const cluster = spawnBertfleet(['cluster', '--workers', '2', ...pipelineArgs(join(work, name), extra)], { cwd: work });
    const natsLine = fields(await cluster.waitFor(/"msg":"nats-server ready"/));
    const listening = fields(await cluster.waitFor(/"msg":"coordinator process started"/, 60_000));
    await cluster.waitFor(/"msg":"step done"/, 120_000);
    const workers = cluster.lines.filter((l) => l.includes('"worker process started"')).map((l) => fields(l)['pid'] as number);
    expect(workers).toHaveLength(2);
    const pids = [cluster.pid, natsLine['pid'] as number, listening['pid'] as number, ...workers];
    const ports = [natsLine['port'] as number, Number(String(listening['address']).split(':')[1])];
    return { cluster, pids, workers, ports };
  }

  it('stops nats-server, the coordinator and every worker on SIGINT, leaving no process or port', async () => {
    const { cluster, pids, ports } = await started('sigint', ['--pretrain-steps', '500']);
    cluster.proc.kill('SIGINT');
    const end = await cluster.exited;
    expect(end.code).toBe(130);
    expect(cluster.lines.join('\n')).toMatch(/bertfleet cluster: interrupted by SIGINT; stopped the coordinator, 2 workers and nats-server/);
    await gone(pids);
    for (const p of ports) expect(await isPortFree(p), `port ${p}`).toBe(true);
  });

  it('goes on when a worker is killed, and ends with the bytes of train', async () => {
    const { cluster, pids, workers, ports } = await started('killed-worker', LONGER);
    await cluster.waitFor(/"phase":"finetune","step":4,/, 120_000);
    process.kill(workers[1]!, 'SIGKILL');
    const end = await cluster.exited;
    expect(end.code, cluster.lines.slice(-30).join('\n')).toBe(0);
    expect(cluster.lines.join('\n')).toMatch(/"workerId":"worker-2","code":null,"signal":"SIGKILL","msg":"worker process died; the run goes on without it"/);
    expect(cluster.stdout()).toMatch(/^finetuning \(test split/m);
    for (const f of WEIGHTS) expect(readFileSync(join(work, 'killed-worker', f)).equals(readFileSync(join(work, 'train', f))), f).toBe(true);
    await gone(pids);
    for (const p of ports) expect(await isPortFree(p), `port ${p}`).toBe(true);
  });
});
