/**
 * The non-finite guard on whole runs of the pipeline fixtures, with a real
 * divergence rather than an injected value: a finetuning peak learning rate
 * of 1e30 makes the second finetuning step's loss and gradient NaN, every
 * time. With nonFinite "stop" (the default) `bertfleet train` and `bertfleet
 * cluster --workers 2` stop there with exit status 3 and a message naming
 * the step, the worker, its micro-batches and the first tensor (the cluster
 * does not restart its coordinator); with "skip" both finish, skip the same
 * five steps (steps.jsonl, metrics.json), write finite weights and end with
 * the same bytes. A peak learning rate of 1e39 overflows the weights
 * themselves (finite gradients): the trainer state is refused.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadHfCheckpoint } from '../../shared/checkpoint/hf-checkpoint.js';
import { allFinite } from '../../shared/training/non-finite.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { PIPELINE_FIXTURES } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-non-finite-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The fixtures' run config with `extra` on top (the finetune block merged). */
function configFile(name: string, finetune: Record<string, unknown>, extra: Record<string, unknown> = {}): string {
  const base = JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'run.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  const file = join(work, `${name}.json`);
  writeFileSync(file, JSON.stringify({ ...base, finetune: { ...base['finetune'], ...finetune }, ...extra }));
  return file;
}

function run(command: string[], name: string, config: string): Promise<CliResult> {
  return runCli([
    ...command, '--output', join(work, name),
    '--model', join(PIPELINE_FIXTURES, 'micro-bert.json'),
    '--corpus', join(PIPELINE_FIXTURES, 'corpus.txt'),
    '--classification', join(PIPELINE_FIXTURES, 'sentiment.csv'),
    '--config', config, '--seed', '7', '--no-progress',
  ], { cwd: work });
}

const finetuneStates = (name: string): string[] => readdirSync(join(work, name, 'state')).filter((n) => n.includes('finetune'));

const TENSOR = /[a-z_.0-9]+\[\d+\]/.source;

describe('nonFinite "stop"', () => {
  const config = (): string => configFile('stop', { peakLr: 1e30 });

  it('stops bertfleet train at the diverged step, naming it, the worker, its micro-batches and the tensor', async () => {
    const r = await run(['train'], 'train-stop', config());
    expect(r.code, r.stderr.slice(-3000)).toBe(3);
    expect(r.stderr).toMatch(new RegExp(
      `NonFiniteGradientError: finetune step 1: expected a finite gradient, got NaN at ${TENSOR} in the reduced gradient; ` +
        `it came from worker local, in the partial sum of micro-batches \\[0, 3\\) \\(NaN at ${TENSOR}\\)`,
    ));
    expect(existsSync(join(work, 'train-stop', 'finetuned'))).toBe(false);
    expect(finetuneStates('train-stop')).toEqual([]);
  });

  it('stops bertfleet cluster the same way, naming a worker, without restarting the coordinator', async () => {
    const r = await run(['cluster', '--workers', '2'], 'cluster-stop', config());
    expect(r.code, r.stderr.slice(-3000)).toBe(3);
    expect(r.stderr).toMatch(new RegExp(
      `NonFiniteGradientError: finetune step 1: expected a finite gradient, got NaN at ${TENSOR} in the reduced gradient; ` +
        `it came from worker worker-[12], in the partial sum of micro-batches \\[0, [12]\\)`,
    ));
    expect(r.stderr).toMatch(/"msg":"non-finite partial sum received"/);
    expect(r.stderr).not.toMatch(/"msg":"child crashed; restarting it"/);
    expect(r.stderr).not.toMatch(/stats invalid/);
    expect(finetuneStates('cluster-stop')).toEqual([]);
  });
});

describe('nonFinite "skip"', () => {
  const config = (): string => configFile('skip', { peakLr: 1e30 }, { nonFinite: 'skip' });
  const FILES = ['pretrained/model.safetensors', 'finetuned/model.safetensors', 'metrics.json', 'steps.jsonl'];

  it('skips the diverged steps on every replica, counts them, and train and cluster end with the same bytes', async () => {
    const cfg = config();
    for (const [command, name] of [[['train'], 'train-skip'], [['cluster', '--workers', '2'], 'cluster-skip']] as const) {
      const r = await run([...command], name, cfg);
      expect(r.code, r.stderr.slice(-3000)).toBe(0);
      expect(r.stderr).toMatch(/"msg":"step skipped: non-finite gradient"/);
      expect(r.stderr).not.toMatch(/"level":50/);
    }
    for (const f of FILES) {
      expect(readFileSync(join(work, 'cluster-skip', f)).equals(readFileSync(join(work, 'train-skip', f))), f).toBe(true);
    }
    const metrics = JSON.parse(readFileSync(join(work, 'train-skip', 'metrics.json'), 'utf8')) as { skippedSteps: unknown };
    expect(metrics.skippedSteps).toEqual({ pretrain: 0, finetune: 5 });
    const steps = readFileSync(join(work, 'train-skip', 'steps.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const finetune = steps.filter((s) => s['phase'] === 'finetune');
    expect(finetune.map((s) => s['skipped'] === true)).toEqual([false, true, true, true, true, true]);
    expect(finetune[1]!['reason']).toMatch(new RegExp(`^non-finite gradient: NaN at ${TENSOR}$`));
    // The finetuned weights are step 0's, finite (the learning rate of 5e29 made them huge, not infinite).
    for (const [name, t] of loadHfCheckpoint(join(work, 'train-skip', 'finetuned')).tensors) expect(allFinite(t.data), name).toBe(true);
  });

  it('resumes a run stopped by "stop" with "skip", ending as the run that skipped from the start', async () => {
    const r = await run(['train', '--resume'], 'train-stop', config());
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    for (const f of FILES) {
      expect(readFileSync(join(work, 'train-stop', f)).equals(readFileSync(join(work, 'train-skip', f))), f).toBe(true);
    }
  });
});

describe('checkpoints', () => {
  it('refuses a trainer state whose weights overflowed, and stops the run', async () => {
    const r = await run(['train'], 'train-overflow', configFile('overflow', { peakLr: 1e39 }, { nonFinite: 'skip' }));
    expect(r.code, r.stderr.slice(-3000)).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`NonFiniteWeightsError: trainer state of finetune step 2: expected finite weights, got -?Infinity at ${TENSOR}; nothing was written`));
    expect(finetuneStates('train-overflow')).toEqual([]);
  });
});
