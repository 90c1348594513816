/**
 * Imbalanced data on whole runs of the pipeline fixtures: a classification
 * file made here from the fixture's real sentences (every negative one, one
 * positive in four: 23% positive, as the spam set), finetuned for the
 * fixture's 6 steps — too short, so the model predicts the majority class
 * only. The summary and metrics.json carry the majority baseline, and the
 * collapse is warned about in the log, metrics.json and the summary. With
 * `--class-weights balanced` the loss changes (other bytes than the plain
 * run), and `bertfleet train` and `cluster --workers 2` still end with the
 * same bytes — so the weights reach the loss on both paths, identically.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cli.js';
import { PIPELINE_FIXTURES, pipelineArgs } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-imbalanced-'));
const DATA = join(work, 'imbalanced.csv');
const FILES = ['pretrained/model.safetensors', 'finetuned/model.safetensors', 'metrics.json', 'steps.jsonl'];

/** The fixture's header and negative rows, and every fourth positive row (its sentences are one per line). */
function writeImbalanced(): { negative: number; positive: number } {
  const [header, ...rows] = readFileSync(join(PIPELINE_FIXTURES, 'sentiment.csv'), 'utf8').trimEnd().split('\n');
  let seen = 0;
  const kept = rows.filter((r) => r.endsWith(',negative') || (r.endsWith(',positive') && ++seen % 4 === 0));
  writeFileSync(DATA, `${[header, ...kept].join('\n')}\n`);
  return { negative: kept.filter((r) => r.endsWith(',negative')).length, positive: kept.filter((r) => r.endsWith(',positive')).length };
}

async function run(command: string, name: string, extra: string[] = []): Promise<CliResult> {
  const r = await runCli([command, ...pipelineArgs(join(work, name), ['--classification', DATA, ...extra])], { cwd: work });
  expect(r.code, r.stderr.slice(-3000)).toBe(0);
  expect(r.stderr, r.stderr.slice(-3000)).not.toMatch(/"level":50/);
  return r;
}

const metricsOf = (name: string) => JSON.parse(readFileSync(join(work, name, 'metrics.json'), 'utf8')) as {
  finetuning: Record<'validation' | 'test', { accuracy: number; majorityBaseline: { label: string; accuracy: number }; collapsedTo: string | null; confusionMatrix: number[][] }> & {
    classWeights: { mode: string; trainCounts: Record<string, number>; weights: Record<string, number> | null };
  };
};

const same = (a: string, b: string, f: string): boolean => readFileSync(join(work, a, f)).equals(readFileSync(join(work, b, f)));

describe('imbalanced classification data', () => {
  let plain: CliResult;

  beforeAll(async () => {
    const counts = writeImbalanced();
    expect(counts.positive / (counts.positive + counts.negative)).toBeCloseTo(0.23, 1);
    plain = await run('train', 'plain');
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('reports the majority-class baseline beside the accuracy', () => {
    const { test, validation } = metricsOf('plain').finetuning;
    for (const split of [test, validation]) {
      const [neg, pos] = split.confusionMatrix.map((row) => row.reduce((a, b) => a + b, 0)) as [number, number];
      expect(split.majorityBaseline).toEqual({ label: 'negative', accuracy: neg / (neg + pos) });
    }
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    expect(plain.stdout).toContain(`accuracy ${pct(test.accuracy)} (majority baseline ${pct(test.majorityBaseline.accuracy)}: always "negative")`);
  });

  it('warns when a too-short run predicts the majority class only', () => {
    const { test, classWeights } = metricsOf('plain').finetuning;
    expect(classWeights).toMatchObject({ mode: 'none', weights: null });
    expect(test.collapsedTo).toBe('negative');
    expect(test.confusionMatrix.map((row) => row[1])).toEqual([0, 0]); // nothing predicted positive
    expect(test.accuracy).toBe(test.majorityBaseline.accuracy);
    const warning = plain.stderr.split('\n').find((l) => l.includes('"split":"test"') && l.includes('"msg":"predictions collapsed to one class"'));
    expect(warning, plain.stderr.slice(-3000)).toBeDefined();
    expect(JSON.parse(warning!)).toMatchObject({ level: 40, label: 'negative', share: test.accuracy });
    expect(plain.stdout).toMatch(/^warning: every test prediction is "negative" .*--class-weights balanced/m);
  });

  it('weighs the loss with --class-weights balanced, with the same bytes from train and a 2-worker cluster', async () => {
    const r = await run('train', 'balanced-train', ['--class-weights', 'balanced']);
    await run('cluster', 'balanced-cluster', ['--class-weights', 'balanced', '--workers', '2']);
    const { classWeights } = metricsOf('balanced-train').finetuning;
    const { negative: nNeg, positive: nPos } = classWeights.trainCounts as { negative: number; positive: number };
    const n = nNeg + nPos;
    expect(classWeights.mode).toBe('balanced');
    expect(classWeights.weights!['negative']).toBe(Math.fround(n / (2 * nNeg)));
    expect(classWeights.weights!['positive']).toBe(Math.fround(n / (2 * nPos)));
    expect(r.stdout).toMatch(/^ {2}class weights \(balanced\): negative 0\.\d{3}, positive [23]\.\d{3}$/m);
    expect(same('plain', 'balanced-train', 'pretrained/model.safetensors')).toBe(true);
    expect(same('plain', 'balanced-train', 'finetuned/model.safetensors'), 'the weights changed nothing').toBe(false);
    for (const f of FILES) expect(same('balanced-cluster', 'balanced-train', f), `balanced-cluster/${f} differs from train's`).toBe(true);
  });
});
