/**
 * The core promise, on short runs of the pipeline fixtures: for the same
 * seed, data and global batch (12 = 3 micro-batches of 4, so 2 and 3 workers
 * split the reduction tree differently), `bertfleet train` and `bertfleet
 * cluster` with 1, 2 and 3 workers end with byte-identical pretrained and
 * finetuned weights, the same metrics and the same per-step log — also when
 * a cluster is interrupted in finetuning and resumed on another worker count,
 * and when the gradient is cut into K = 2 or 3 slices over reducer processes
 * (`--reducers K`; K = 1 is every other case here).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { spawnBertfleet } from '../helpers/logged-process.js';
import { pipelineArgs } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-equivalence-'));
const FILES = ['pretrained/model.safetensors', 'finetuned/model.safetensors', 'metrics.json', 'steps.jsonl'];

async function run(command: string, name: string, extra: string[] = []): Promise<void> {
  const r = await runCli([command, ...pipelineArgs(join(work, name), extra)], { cwd: work });
  expect(r.stderr, r.stderr.slice(-3000)).not.toMatch(/"level":50/);
  expect(r.code, r.stderr.slice(-3000)).toBe(0);
  expect(r.stdout).toMatch(/^finetuning \(test split, \d+ examples\): accuracy/m);
}

describe('bertfleet cluster against bertfleet train', () => {
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  beforeAll(async () => {
    await run('train', 'train');
  });

  for (const workers of [1, 2, 3]) {
    it(`ends with the same bytes as train on ${workers} worker${workers > 1 ? 's' : ''}`, async () => {
      await run('cluster', `cluster-${workers}`, ['--workers', String(workers)]);
      expectSameAsTrain(`cluster-${workers}`);
    });
  }

  for (const [reducers, workers] of [[2, 3], [3, 2]] as const) {
    it(`ends with the same bytes as train with --reducers ${reducers} on ${workers} workers`, async () => {
      const name = `reducers-${reducers}`;
      const r = await runCli(['cluster', '--workers', String(workers), '--reducers', String(reducers), ...pipelineArgs(join(work, name))], { cwd: work });
      expect(r.code, r.stderr.slice(-3000)).toBe(0);
      expect(r.stderr, r.stderr.slice(-3000)).not.toMatch(/"level":50/);
      expect(r.stderr.match(/"msg":"reducer process started"/g) ?? []).toHaveLength(reducers - 1);
      expect(r.stderr).toMatch(/"msg":"gradients go to the coordinator and the reducers, one slice each"/);
      expectSameAsTrain(name);
    });
  }

  it('ends with the same bytes after a SIGINT in finetuning and --resume on another worker count', async () => {
    const first = spawnBertfleet(['cluster', '--workers', '2', ...pipelineArgs(join(work, 'resumed'))], { cwd: work });
    await first.waitFor(/"phase":"finetune","step":2,"dir"/, 120_000);
    first.proc.kill('SIGINT');
    expect((await first.exited).code).toBe(130);
    const r = await runCli(['cluster', '--workers', '1', '--output', join(work, 'resumed'), '--resume', '--no-progress'], { cwd: work });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stderr).toMatch(/"phase":"finetune","step":[2-5],"msg":"resuming"/);
    expectSameAsTrain('resumed');
  });
});

function expectSameAsTrain(name: string): void {
  for (const f of FILES) {
    const same = readFileSync(join(work, name, f)).equals(readFileSync(join(work, 'train', f)));
    expect(same, `${name}/${f} differs from train's`).toBe(true);
  }
}
