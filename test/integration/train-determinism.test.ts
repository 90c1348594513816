/**
 * `bertfleet train` on short runs: the same seed gives the same bytes; a run
 * killed part-way (kill -9, in pretraining and again in finetuning) and resumed
 * ends with weights byte-identical to an uninterrupted run; bad input fails
 * before anything is written.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import { PIPELINE_FIXTURES, pipelineArgs } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-train-'));
const WEIGHTS = ['pretrained/model.safetensors', 'finetuned/model.safetensors'];

function train(name: string, extra: string[] = []) {
  return runCli(['train', ...pipelineArgs(join(work, name), extra)], { cwd: work });
}

/** The pipeline arguments with another corpus in place of the fixture's. */
function trainWithCorpus(name: string, corpus: string) {
  const args = pipelineArgs(join(work, name));
  args[args.indexOf('--corpus') + 1] = corpus;
  return runCli(['train', ...args], { cwd: work });
}

/** Starts a run and SIGKILLs it right after the checkpoint of (phase, step) is written. */
function trainAndKill(name: string, phase: string, step: number, extra: string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['train', ...pipelineArgs(join(work, name), extra)], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
    let buf = '';
    let killed = false;
    child.stderr.on('data', (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n').slice(0, -1)) {
        if (!killed && line.includes('"checkpoint written"') && line.includes(`"phase":"${phase}"`) && line.includes(`"step":${step},`)) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`run ended without being killed: ${buf}`))));
  });
}

describe('bertfleet train: determinism and resume', () => {
  beforeAll(async () => {
    const r = await train('reference');
    expect(r.stderr).not.toMatch(/"level":50/);
    expect(r.code).toBe(0);
  });

  it('writes the Hugging Face checkpoints, metrics and per-step log', () => {
    const dir = join(work, 'reference');
    for (const f of ['pretrained/config.json', 'finetuned/config.json', 'metrics.json', 'steps.jsonl', 'run-config.json', ...WEIGHTS]) {
      expect(existsSync(join(dir, f)), f).toBe(true);
    }
    const metrics = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
    // Held-out pretraining metrics: after 6 steps at a peak learning rate of 1e-4 the MLM is
    // still close to a uniform guess over the 30 522 tokens (ln 30 522 = 10.33), perplexity is
    // exp of that loss, and accuracy is a whole count of correct tokens over the masked ones
    // (NaN fails each). That training lowers the loss is loss-falls.test.ts's.
    const pre = metrics.pretraining;
    expect(Math.abs(pre.mlmLoss - Math.log(30522)), `mlmLoss ${pre.mlmLoss}`).toBeLessThan(0.1);
    expect(pre.perplexity / Math.exp(pre.mlmLoss)).toBeCloseTo(1, 12);
    const correct = pre.mlmAccuracy * pre.maskedTokens;
    expect(Math.abs(correct - Math.round(correct)), `mlmAccuracy ${pre.mlmAccuracy} of ${pre.maskedTokens}`).toBeLessThan(1e-9);
    expect(Math.round(correct) >= 0 && Math.round(correct) <= pre.maskedTokens, `${correct} correct of ${pre.maskedTokens}`).toBe(true);
    expect(metrics.finetuning.test.confusionMatrix).toHaveLength(2);
    expect(metrics.finetuning.test.perClass.map((c: { label: string }) => c.label)).toEqual(['negative', 'positive']);
    const steps = readFileSync(join(dir, 'steps.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(steps.map((s) => `${s.phase}:${s.step}`)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `pretrain:${i}`).concat([0, 1, 2, 3, 4, 5].map((i) => `finetune:${i}`)));
    expect(JSON.parse(readFileSync(join(dir, 'finetuned/config.json'), 'utf8')).id2label).toEqual({ 0: 'negative', 1: 'positive' });
    expect(readdirSync(join(dir, 'state')).filter((n) => n.startsWith('step-'))).toHaveLength(2);
  });

  it('gives the same bytes for the same seed', async () => {
    const r = await train('again');
    expect(r.code).toBe(0);
    for (const f of WEIGHTS) expect(readFileSync(join(work, 'again', f)).equals(readFileSync(join(work, 'reference', f))), f).toBe(true);
  });

  it('gives different weights for another seed', async () => {
    const r = await train('other-seed', ['--seed', '8']);
    expect(r.code).toBe(0);
    expect(readFileSync(join(work, 'other-seed', WEIGHTS[1]!)).equals(readFileSync(join(work, 'reference', WEIGHTS[1]!)))).toBe(false);
  });

  it('resumes a run killed in pretraining and in finetuning to the same bytes', async () => {
    await trainAndKill('killed', 'pretrain', 4);
    expect(existsSync(join(work, 'killed', 'pretrained'))).toBe(false);
    // A second kill, this time in finetuning, during the resumed run.
    await new Promise<void>((resolve, reject) => {
      const child = spawn(BIN, ['train', ...pipelineArgs(join(work, 'killed'), ['--resume'])], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
      let buf = '';
      child.stderr.on('data', (d: Buffer) => {
        buf += d.toString();
        if (/"phase":"finetune","step":2,"dir"/.test(buf)) child.kill('SIGKILL');
      });
      child.on('error', reject);
      child.on('close', (_c, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(buf.slice(-2000)))));
    });
    const r = await runCli(['train', '--output', join(work, 'killed'), '--resume', '--no-progress'], { cwd: work });
    expect(r.stderr).toMatch(/"resuming"/);
    expect(r.code).toBe(0);
    for (const f of WEIGHTS) expect(readFileSync(join(work, 'killed', f)).equals(readFileSync(join(work, 'reference', f))), f).toBe(true);
    expect(readFileSync(join(work, 'killed', 'steps.jsonl'), 'utf8')).toBe(readFileSync(join(work, 'reference', 'steps.jsonl'), 'utf8'));
  });

  const bad: Array<[string, string[], RegExp]> = [
    ['a missing corpus file', ['--corpus', join(PIPELINE_FIXTURES, 'nope.txt')], /nope\.txt/],
    ['a classification file without a label column', ['--classification', join(PIPELINE_FIXTURES, '../data/no-label.csv')], /label/],
    ['a classification file with a single class', ['--classification', join(PIPELINE_FIXTURES, '../data/one-class.csv')], /class/],
    ['a micro-batch that does not divide the global batch', ['--global-batch', '12', '--micro-batch', '5'], /micro-batch \(5\) does not divide the global batch \(12\)/],
    ['an unknown model preset', ['--model', 'huge'], /neither a preset/],
  ];
  for (const [what, args, message] of bad) {
    it(`refuses ${what} with a clear error and writes nothing`, async () => {
      const name = `bad-${what.replace(/\W+/g, '-')}`;
      const r = await train(name, args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(message);
      expect(existsSync(join(work, name))).toBe(false);
    });
  }

  it('refuses a corpus with no document of two sentences, saying NSP is impossible', async () => {
    const r = await trainWithCorpus('bad-nsp', join(PIPELINE_FIXTURES, '../data/corpus-one-sentence-docs.txt'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/NSP|next.sentence/i);
    expect(existsSync(join(work, 'bad-nsp'))).toBe(false);
  });

  it('refuses an empty corpus file, naming it', async () => {
    const r = await trainWithCorpus('bad-empty', join(PIPELINE_FIXTURES, '../data/corpus-blank.txt'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/corpus-blank\.txt/);
    expect(existsSync(join(work, 'bad-empty'))).toBe(false);
  });

  it('refuses --init-from whose vocabulary size differs from the tokenizer', async () => {
    const r = await train('bad-init', ['--init-from', join(PIPELINE_FIXTURES, '../bert-parity')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/vocab_size 128, but the tokenizer's vocabulary has 30522 tokens/);
    expect(existsSync(join(work, 'bad-init'))).toBe(false);
  });

  it('refuses to overwrite an existing run without --resume', async () => {
    writeFileSync(join(work, 'marker'), 'x');
    const r = await train('reference');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not empty; pass --resume/);
  });
});
