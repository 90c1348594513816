/**
 * The end of a real short run (pipeline fixtures): `bertfleet train` and
 * `bertfleet cluster` write OUTPUT/run-summary.json with the time of every
 * stage and seq/s per training phase (a cluster also each worker's totals),
 * keep metrics.json free of them, and print the closing table on stdout.
 * With stderr not a terminal, progress is on (no --no-progress) yet stderr
 * holds JSON log lines only.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { pipelineArgs } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-summary-'));

/** The pipeline fixtures with progress left on. */
function run(command: string, name: string, extra: string[] = []): Promise<CliResult> {
  return runCli([command, ...pipelineArgs(join(work, name), extra).filter((a) => a !== '--no-progress')], { cwd: work });
}

function readJson(path: string): Record<string, any> {
  return JSON.parse(readFileSync(path, 'utf8')) as Record<string, any>;
}

function expectStageTimings(summary: Record<string, any>): void {
  expect(Object.keys(summary['timings'])).toEqual(['dataPreparation', 'pretraining', 'finetuning', 'evaluation']);
  for (const t of Object.values(summary['timings']) as { seconds: number }[]) expect(t.seconds).toBeGreaterThan(0);
  // 6 steps of 12 sequences per phase (test/fixtures/pipeline/run.json).
  for (const phase of ['pretraining', 'finetuning']) {
    expect(summary['timings'][phase]).toMatchObject({ steps: 6, sequences: 72 });
    expect(summary['timings'][phase].seqPerSec).toBeGreaterThan(0);
  }
}

function expectJsonLinesOnly(stderr: string): void {
  for (const line of stderr.split('\n').filter((l) => l.length > 0)) expect(() => JSON.parse(line), line).not.toThrow();
}

describe('the end of a run', () => {
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('bertfleet train writes run-summary.json with per-stage timings and prints the closing table', async () => {
    const r = await run('train', 'train');
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const summary = readJson(join(work, 'train', 'run-summary.json'));
    expect(summary).toMatchObject({ format: 1, workerCount: 1, inProcess: true });
    expect(summary['workers']).toBeUndefined();
    expectStageTimings(summary);
    // metrics.json keeps only what is the same on every run.
    expect(Object.keys(readJson(join(work, 'train', 'metrics.json')))).toEqual(['pretraining', 'finetuning', 'labels', 'seed', 'skippedSteps']);

    expect(r.stdout).toMatch(/^run summary$/m);
    expect(r.stdout).toMatch(/^ {2}data preparation +\d/m);
    expect(r.stdout).toMatch(/^ {2}pretraining +\d+\.\d s +6 +\d+\.\d$/m);
    expect(r.stdout).toMatch(/^ {2}finetuning +\d+\.\d s +6 +\d+\.\d$/m);
    expect(r.stdout).toMatch(/^ {2}evaluation +\d+\.\d s$/m);
    expect(r.stdout).toContain('\n  workers: 1 (in-process)\n');
    expect(r.stdout).toMatch(/^ {2}test +\d+ +\d+\.\d% +\d+\.\d% \(\w+\) +\d\.\d{3}$/m);
    expect(r.stdout).toContain(`timings and workers: ${join(work, 'train', 'run-summary.json')}`);
    expectJsonLinesOnly(r.stderr);
  });

  it('bertfleet cluster adds each worker\'s steps, micro-batches and straggler flag', async () => {
    const r = await run('cluster', 'cluster', ['--workers', '2']);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const summary = readJson(join(work, 'cluster', 'run-summary.json'));
    expect(summary).toMatchObject({ format: 1, workerCount: 2, inProcess: false });
    expectStageTimings(summary);
    const workers = summary['workers'] as Record<string, { steps: number; microBatches: number; meanStepMs: number; straggler: boolean }>;
    expect(Object.keys(workers)).toHaveLength(2);
    // 12 steps of 3 micro-batches, each computed by one worker; every worker reports every step.
    expect(Object.values(workers).reduce((n, w) => n + w.microBatches, 0)).toBe(36);
    for (const w of Object.values(workers)) {
      expect(w.steps).toBe(12);
      expect(w.meanStepMs).toBeGreaterThan(0);
      expect(typeof w.straggler).toBe('boolean');
    }
    expect(r.stdout).toContain('\n  workers: 2\n');
    expect(r.stdout).toMatch(/^ {2}worker +steps +micro-batches +mean step ms +ms\/micro-batch +straggler$/m);
    for (const id of Object.keys(workers)) expect(r.stdout).toMatch(new RegExp(`^ {2}${id} +12 +\\d+ `, 'm'));
    // Not a terminal: no bar drawn by the coordinator (stderr also carries nats-server's and the workers' output).
    expect(r.stderr).not.toContain('\x1B[');
  });
});
