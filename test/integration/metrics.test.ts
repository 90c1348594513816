/**
 * The health port, for real: the HTTP server's routes (404, 405, a handler
 * that throws), then a `bertfleet cluster --workers 2` run during which the
 * coordinator's and a worker's health ports (listed in OUTPUT/cluster.json)
 * are probed and scraped like the kubelet and Prometheus would, the text
 * parsed by an independent parser: /healthz answers, a worker's /readyz turns
 * 200 once it is registered, the step grows between two scrapes, the loss is
 * finite and both workers have their series.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../shared/log.js';
import { Readiness, serveHealth } from '../../shared/observe/health-routes.js';
import { startHttpServer } from '../../shared/observe/http-server.js';
import { spawnBertfleet } from '../helpers/logged-process.js';
import { pipelineArgs } from '../helpers/pipeline.js';
import { scrape, valueOf, type Scrape } from '../helpers/scrape.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-metrics-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the health port server', () => {
  it('answers /healthz, /readyz as set, 404 elsewhere, 405 for POST and 500 for a handler that throws', async () => {
    const server = await startHttpServer({ host: '127.0.0.1', port: 0, log: silentLogger() });
    try {
      const readiness = new Readiness('registering with the coordinator');
      serveHealth(server, readiness);
      server.route('GET', '/boom', () => {
        throw new Error('boom');
      });
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
      const health = await fetch(`${server.url}/healthz`);
      expect([health.status, await health.text()]).toEqual([200, 'ok\n']);
      let ready = await fetch(`${server.url}/readyz`);
      expect([ready.status, await ready.json()]).toEqual([503, { ready: false, reason: 'registering with the coordinator' }]);
      readiness.set(true, 'registered');
      ready = await fetch(`${server.url}/readyz`);
      expect([ready.status, await ready.json()]).toEqual([200, { ready: true, reason: 'registered' }]);
      expect((await fetch(`${server.url}/nothing`)).status).toBe(404);
      expect((await fetch(`${server.url}/healthz`, { method: 'POST' })).status).toBe(405);
      expect((await fetch(`${server.url}/boom`)).status).toBe(500);
      expect(() => server.route('GET', '/healthz', () => undefined)).toThrow(/already registered/);
    } finally {
      await server.close();
    }
  });
});

interface Health {
  coordinator: string;
  workers: Record<string, string>;
}

/** The cluster's health URLs, once OUTPUT/cluster.json names them. */
async function healthUrls(output: string, untilMs: number): Promise<Health> {
  const file = join(output, 'cluster.json');
  for (;;) {
    if (existsSync(file)) {
      const health = (JSON.parse(readFileSync(file, 'utf8')) as { health?: Health }).health;
      if (health !== undefined) return health;
    }
    if (Date.now() > untilMs) throw new Error(`${file} did not name the health ports in time`);
    await sleep(100);
  }
}

/** Polls `probe` until it returns a value, or fails at `untilMs`. */
async function until<T>(what: string, untilMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  let last: unknown = null;
  for (;;) {
    try {
      const got = await probe();
      if (got !== undefined) return got;
    } catch (err) {
      last = err;
    }
    if (Date.now() > untilMs) throw new Error(`${what}: not seen in time (last error: ${String(last)})`);
    await sleep(50);
  }
}

/** The run's progress as one increasing number: phase, then step. */
function progress(s: Scrape): number | undefined {
  const step = valueOf(s, 'bertfleet_step');
  const phase = ['pretrain', 'finetune'].findIndex((p) => valueOf(s, 'bertfleet_phase', { phase: p }) === 1);
  return step === undefined || phase < 0 || step < 1 ? undefined : phase * 1_000_000 + step;
}

describe('metrics of a bertfleet cluster run', () => {
  it('serves probes and metrics that a scrape reads while the run trains', async () => {
    const output = join(work, 'cluster');
    // Slowed workers (a test hook) and more pretraining steps: time for several scrapes within a phase.
    const run = spawnBertfleet(['cluster', '--workers', '2', ...pipelineArgs(output, ['--pretrain-steps', '40'])], {
      cwd: work, env: { BERTFLEET_TEST_DELAY_MS_PER_MICRO_BATCH: '60' },
    });
    try {
      const deadline = Date.now() + 90_000;
      const health = await healthUrls(output, deadline);
      expect(Object.keys(health.workers).sort()).toEqual(['worker-1', 'worker-2']);
      const worker = health.workers['worker-1']!;

      expect((await until('coordinator /healthz', deadline, async () => (await fetch(`${health.coordinator}/healthz`)).status === 200 || undefined))).toBe(true);
      expect((await until('worker /healthz', deadline, async () => (await fetch(`${worker}/healthz`)).status === 200 || undefined))).toBe(true);
      const ready = await until('worker /readyz 200', deadline, async () => {
        const r = await fetch(`${worker}/readyz`);
        return r.status === 200 ? ((await r.json()) as { ready: boolean; reason: string }) : undefined;
      });
      expect(ready).toEqual({ ready: true, reason: 'registered' });
      expect((await fetch(`${health.coordinator}/readyz`)).status).toBe(200);

      const first = await until('a coordinator scrape during training', deadline, async () => {
        const s = await scrape(health.coordinator);
        return progress(s) === undefined ? undefined : s;
      });
      const later = await until('a later scrape with more steps', deadline, async () => {
        const s = await scrape(health.coordinator);
        return (progress(s) ?? 0) > progress(first)! ? s : undefined;
      });
      expect(Number.isFinite(valueOf(later, 'bertfleet_loss'))).toBe(true);
      expect(valueOf(later, 'bertfleet_learning_rate')).toBeGreaterThan(0);
      expect((valueOf(later, 'bertfleet_members', { state: 'training' }) ?? 0) + (valueOf(later, 'bertfleet_members', { state: 'joining' }) ?? 0)).toBe(2);
      const withSeries = await until('both workers\' series', deadline, async () => {
        const s = await scrape(health.coordinator);
        const micro = ['worker-1', 'worker-2'].map((w) => valueOf(s, 'bertfleet_worker_micro_batches_total', { worker: w }) ?? 0);
        return micro.every((n) => n > 0) ? s : undefined;
      });
      expect(withSeries.get('bertfleet_step_duration_seconds')?.type).toBe('histogram');
      expect(valueOf(withSeries, 'bertfleet_exchange_bytes_total', { direction: 'received' })).toBeGreaterThan(0);

      const w = await until('a worker scrape after a step', deadline, async () => {
        const s = await scrape(worker);
        return (valueOf(s, 'bertfleet_worker_computed_micro_batches_total') ?? 0) > 0 ? s : undefined;
      });
      expect(valueOf(w, 'bertfleet_worker_state', { state: 'training' })).toBe(1);
      expect(valueOf(w, 'bertfleet_worker_exchange_bytes_total', { direction: 'sent' })).toBeGreaterThan(0);
      expect(valueOf(w, 'bertfleet_worker_step_part_seconds_total', { part: 'compute' })).toBeGreaterThan(0);
      expect(w.get('process_resident_memory_bytes')?.type).toBe('gauge');

      const end = await run.exited;
      expect(end.code, run.lines.slice(-20).join('\n')).toBe(0);
    } finally {
      run.proc.kill('SIGINT');
      await run.exited;
    }
  });
});
