/**
 * `bertfleet cluster` as a supervisor of real processes (nats-server, the
 * coordinator, the workers), on the pipeline fixtures:
 *   - Ctrl-C (SIGINT to the whole process group, as a terminal sends it):
 *     exit 130, every process gone, ports free, the nats store removed, no
 *     error-level line from any process; `--resume` then ends byte-identical
 *     to `bertfleet train`;
 *   - SIGTERM to the cluster alone: exit 143, the coordinator stopped first
 *     (it checkpoints while the workers are still there), then the workers,
 *     then nats-server;
 *   - the cluster SIGKILLed: nats-server, the coordinator and the workers
 *     notice and exit on their own;
 *   - the coordinator child SIGKILLed mid-run: the cluster restarts it
 *     (`--resume auto`), the workers re-register, the bytes equal train's;
 *   - nats-server SIGKILLed mid-run: restarted on the same port and store,
 *     the run goes on to train's bytes;
 *   - `bertfleet worker --join OUTPUT` joins a running cluster through
 *     OUTPUT/cluster.json; a missing file is a clear error;
 *   - `bertfleet coordinator --resume auto` starts a run in an empty folder.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { fields, spawnBertfleet, type LoggedProcess } from '../helpers/logged-process.js';
import { startNats, type TestNats } from '../helpers/nats.js';
import { pipelineArgs } from '../helpers/pipeline.js';
import { freePort, isPortFree } from '../helpers/ports.js';
import { isProcessAlive } from '../helpers/process.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-supervision-'));
const WEIGHTS = ['pretrained/model.safetensors', 'finetuned/model.safetensors'];
/** Long enough to interrupt mid-pretraining; checkpoints every 2 steps (run.json). */
const STEPS = ['--pretrain-steps', '40'];

afterAll(() => rmSync(work, { recursive: true, force: true }));

async function gone(pids: number[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isProcessAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(pids.filter(isProcessAlive), 'processes still alive').toEqual([]);
}

function expectSameAsTrain(name: string): void {
  for (const f of WEIGHTS) {
    expect(readFileSync(join(work, name, f)).equals(readFileSync(join(work, 'train', f))), `${name}/${f} differs from train's`).toBe(true);
  }
}

function errorLines(p: LoggedProcess): string[] {
  return p.lines.filter((l) => l.includes('"level":50') || l.includes('"level":60'));
}

interface Started {
  cluster: LoggedProcess;
  nats: { pid: number; port: number; storeDir: string };
  coordinator: { pid: number; port: number };
  workers: number[];
}

/** Starts `bertfleet cluster` in its own process group and returns it once training is under way. */
async function startCluster(name: string, extra: string[] = [], workers = 2): Promise<Started> {
  const cluster = spawnBertfleet(['cluster', '--workers', String(workers), ...pipelineArgs(join(work, name), [...STEPS, ...extra])], { cwd: work, detached: true });
  const natsLine = fields(await cluster.waitFor(/"msg":"nats-server ready"/));
  const coordinatorLine = fields(await cluster.waitFor(/"msg":"coordinator process started"/, 60_000));
  await cluster.waitFor(/"phase":"pretrain","step":4,"dir"/, 120_000);
  const workerPids = cluster.lines.filter((l) => l.includes('"worker process started"')).map((l) => fields(l)['pid'] as number);
  expect(workerPids).toHaveLength(workers);
  return {
    cluster,
    nats: { pid: natsLine['pid'] as number, port: natsLine['port'] as number, storeDir: natsLine['storeDir'] as string },
    coordinator: { pid: coordinatorLine['pid'] as number, port: Number(String(coordinatorLine['address']).split(':')[1]) },
    workers: workerPids,
  };
}

describe('bertfleet cluster supervising its processes', () => {
  beforeAll(async () => {
    const ref = await runCli(['train', ...pipelineArgs(join(work, 'train'), STEPS)], { cwd: work });
    expect(ref.code, ref.stderr.slice(-2000)).toBe(0);
  });

  it('stops everything on Ctrl-C to the process group, quietly, and --resume ends with the bytes of train', async () => {
    const s = await startCluster('ctrl-c');
    process.kill(-s.cluster.pid, 'SIGINT');
    const end = await s.cluster.exited;
    expect(end.code, s.cluster.lines.slice(-20).join('\n')).toBe(130);
    expect(s.cluster.lines.join('\n')).toMatch(/bertfleet cluster: interrupted by SIGINT; stopped the coordinator, 2 workers and nats-server/);
    expect(errorLines(s.cluster), 'error-level lines').toEqual([]);
    await gone([s.cluster.pid, s.nats.pid, s.coordinator.pid, ...s.workers]);
    for (const p of [s.nats.port, s.coordinator.port]) expect(await isPortFree(p), `port ${p}`).toBe(true);
    expect(existsSync(s.nats.storeDir), 'nats store left behind').toBe(false);
    expect(existsSync(join(work, 'ctrl-c', 'cluster.json')), 'cluster.json left behind').toBe(false);

    const again = await runCli(['cluster', '--workers', '2', '--output', join(work, 'ctrl-c'), '--resume', '--no-progress'], { cwd: work });
    expect(again.code, again.stderr.slice(-3000)).toBe(0);
    expect(again.stderr).toMatch(/"phase":"pretrain","step":\d+,"msg":"resuming"/);
    expect(again.stdout).toMatch(/^finetuning \(test split/m);
    expectSameAsTrain('ctrl-c');
  });

  it('stops the coordinator first, then the workers and nats-server, on SIGTERM to the cluster alone', async () => {
    const s = await startCluster('sigterm');
    s.cluster.proc.kill('SIGTERM');
    const end = await s.cluster.exited;
    expect(end.code, s.cluster.lines.slice(-20).join('\n')).toBe(143);
    const at = (pattern: RegExp): number => s.cluster.lines.findIndex((l) => pattern.test(l));
    const coordinatorStopped = at(/"service":"coordinator".*"msg":"coordinator stopped"/);
    expect(coordinatorStopped).toBeGreaterThan(-1);
    expect(at(/"msg":"worker process exited"/)).toBeGreaterThan(coordinatorStopped);
    expect(at(/"child":"nats-server".*"msg":"child stopped"/)).toBeGreaterThan(at(/"msg":"worker process exited"/));
    expect(errorLines(s.cluster), 'error-level lines').toEqual([]);
    await gone([s.cluster.pid, s.nats.pid, s.coordinator.pid, ...s.workers]);
  });

  it('leaves nothing running when the cluster itself is SIGKILLed', async () => {
    const s = await startCluster('sigkill');
    process.kill(s.cluster.pid, 'SIGKILL');
    await gone([s.nats.pid, s.coordinator.pid, ...s.workers], 15_000);
    for (const p of [s.nats.port, s.coordinator.port]) expect(await isPortFree(p), `port ${p}`).toBe(true);
  });

  it('restarts a coordinator killed mid-run; the workers re-register and the bytes equal train', async () => {
    const s = await startCluster('coordinator-killed');
    process.kill(s.coordinator.pid, 'SIGKILL');
    const restarted = fields(await s.cluster.waitFor(/"attempt":1,.*"msg":"coordinator process started"|"msg":"coordinator process started".*"attempt":1/, 60_000));
    expect(restarted['pid']).not.toBe(s.coordinator.pid);
    await s.cluster.waitFor(/"msg":"resuming"/, 60_000);
    await s.cluster.waitFor(/"session":[1-9].*"msg":"registered"/, 60_000);
    const end = await s.cluster.exited;
    expect(end.code, s.cluster.lines.slice(-30).join('\n')).toBe(0);
    expect(s.cluster.lines.join('\n')).toMatch(/"child":"coordinator".*"msg":"child crashed; restarting it"/);
    expect(s.cluster.stdout()).toMatch(/^finetuning \(test split/m);
    expectSameAsTrain('coordinator-killed');
    await gone([s.nats.pid, restarted['pid'] as number, ...s.workers]);
  });

  it('restarts a nats-server killed mid-run on the same port and store; the bytes equal train', async () => {
    const s = await startCluster('nats-killed');
    process.kill(s.nats.pid, 'SIGKILL');
    const again = fields(await s.cluster.waitFor(/"msg":"nats-server restarted"/, 30_000));
    expect(again['port']).toBe(s.nats.port);
    const ready = s.cluster.lines.filter((l) => l.includes('"msg":"nats-server ready"')).map(fields);
    expect(ready).toHaveLength(2);
    expect(ready[1]).toMatchObject({ port: s.nats.port, storeDir: s.nats.storeDir });
    const end = await s.cluster.exited;
    expect(end.code, s.cluster.lines.slice(-30).join('\n')).toBe(0);
    expectSameAsTrain('nats-killed');
    await gone([ready[1]!['pid'] as number, s.coordinator.pid, ...s.workers]);
  });

  it('takes in a worker started with --join OUTPUT', async () => {
    const s = await startCluster('joined', [], 1);
    const file = JSON.parse(readFileSync(join(work, 'joined', 'cluster.json'), 'utf8')) as Record<string, unknown>;
    expect(file).toMatchObject({ coordinator: `127.0.0.1:${s.coordinator.port}`, nats: `nats://127.0.0.1:${s.nats.port}`, pid: s.cluster.pid });
    const joiner = spawnBertfleet(['worker', '--join', join(work, 'joined'), '--worker-id', 'joiner'], { cwd: work });
    await joiner.waitFor(/"msg":"registered"/, 60_000);
    const end = await s.cluster.exited;
    expect(end.code, s.cluster.lines.slice(-30).join('\n')).toBe(0);
    expect((await joiner.exited).code, joiner.lines.slice(-10).join('\n')).toBe(0);
    expectSameAsTrain('joined');
  });

  it('refuses --join on a folder without a cluster file, or with one left by a cluster that is gone', async () => {
    const r = await runCli(['worker', '--join', join(work, 'nowhere')], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`InputError: --join ${join(work, 'nowhere')}: ${join(work, 'nowhere', 'cluster.json')} does not exist`);
    // As a cluster killed outright leaves it: the pid of a process that has exited.
    const deadPid = spawnSync('true').pid;
    mkdirSync(join(work, 'stale'));
    writeFileSync(join(work, 'stale', 'cluster.json'), JSON.stringify({ coordinator: '127.0.0.1:1', nats: 'nats://127.0.0.1:2', pid: deadPid, started_at_ms: 0 }));
    const stale = await runCli(['worker', '--join', join(work, 'stale')], { cwd: work });
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain(`InputError: --join: ${join(work, 'stale', 'cluster.json')} names bertfleet cluster pid ${deadPid}, which no longer runs`);
  });
});

describe('bertfleet coordinator --resume auto', () => {
  let nats: TestNats;

  beforeAll(async () => {
    nats = await startNats();
  });

  afterAll(async () => {
    await nats?.stop();
  });

  it('starts a run in an empty folder', async () => {
    const port = await freePort();
    // Plaintext: this is about --resume auto, not security.
    const c = spawnBertfleet(['coordinator', '--resume', 'auto', '--listen', `127.0.0.1:${port}`, '--nats', nats.url, '--insecure', ...pipelineArgs(join(work, 'auto'))], { cwd: work });
    await c.waitFor(/"resume":false,"msg":"resume auto: no run in the folder; starting one"/, 60_000);
    await c.waitFor(/"msg":"coordinator listening"/, 60_000);
    expect(existsSync(join(work, 'auto', 'run-config.json'))).toBe(true);
    c.proc.kill('SIGINT');
    expect((await c.exited).code).toBe(130);
  });
});
