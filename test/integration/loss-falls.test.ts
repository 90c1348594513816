/**
 * `bertfleet train` learns: over 30 pretraining steps with the default
 * optimizer (peak learning rate 1e-4, AdamW, clipping at 1.0) on the pipeline
 * fixtures, the training loss of the last 5 steps is below that of the first 5
 * by a margin, and the held-out MLM loss ends below that of a uniform guess
 * over the vocabulary. Every replica applying the same wrong update keeps the
 * bytes identical, which the determinism tests cannot see; this test can.
 *
 * The margins (0.1 and 0.08 nats) were set from runs of this configuration
 * (seed 7). Drop of the training loss / held-out MLM loss below ln(30 522):
 * the defaults give 0.238 / 0.158; a peak learning rate of 1e-9 (the schema
 * refuses 0) gives 0.004 / -0.012, and 3e-5 gives 0.065 / 0.034: both
 * assertions fail for an optimizer that does not move the weights or moves
 * them three times too little.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { pipelineArgs } from '../helpers/pipeline.js';
import { makeTempDir } from '../helpers/tmp.js';

const STEPS = 30;
const K = 5;
const MIN_DROP = 0.1; // nats, mean of the first K step losses minus mean of the last K
const VOCAB = 30522; // test/fixtures/pipeline/micro-bert.json
const MIN_HELD_OUT_GAIN = 0.08; // nats below ln(VOCAB), the loss of a uniform guess

interface StepLine {
  phase: string;
  step: number;
  loss: number;
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('bertfleet train: the loss falls', () => {
  let tmp: { dir: string; remove: () => Promise<void> };
  let steps: StepLine[];
  let heldOutMlmLoss: number;

  beforeAll(async () => {
    tmp = await makeTempDir('loss-falls');
    const out = join(tmp.dir, 'run');
    const r = await runCli(['train', ...pipelineArgs(out, ['--pretrain-steps', String(STEPS), '--finetune-steps', '0'])], { cwd: tmp.dir });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    steps = readFileSync(join(out, 'steps.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StepLine);
    heldOutMlmLoss = (JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as { pretraining: { mlmLoss: number } }).pretraining.mlmLoss;
  });
  afterAll(() => tmp.remove());

  it(`lowers the mean training loss of the last ${K} steps by at least ${MIN_DROP} below the first ${K}`, () => {
    expect(steps.map((s) => `${s.phase}:${s.step}`)).toEqual(Array.from({ length: STEPS }, (_, i) => `pretrain:${i}`));
    const first = mean(steps.slice(0, K).map((s) => s.loss));
    const last = mean(steps.slice(-K).map((s) => s.loss));
    expect(first - last, `first ${K} steps ${first}, last ${K} steps ${last}`).toBeGreaterThan(MIN_DROP);
  });

  it('ends with a held-out MLM loss below a uniform guess over the vocabulary', () => {
    expect(Math.log(VOCAB) - heldOutMlmLoss, `held-out MLM loss ${heldOutMlmLoss}, ln(${VOCAB}) = ${Math.log(VOCAB)}`).toBeGreaterThan(MIN_HELD_OUT_GAIN);
  });
});
