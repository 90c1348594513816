/**
 * A fixed, stratified train/validation/test split of classification data,
 * determined by a seed: within each label, examples are shuffled with our Rng
 * and cut into test, validation and train (in that order) by rounded
 * fractions, so every split keeps the label balance and the test set is never
 * seen in training. Each split keeps the source order. Knows nothing of files
 * or tokenization.
 */
import { ConfigError } from '../errors.js';
import type { ClassificationData } from './classification.js';
import { Rng } from './rng.js';

export interface SplitOptions {
  seed?: number;
  /** Fractions; default 0.8 / 0.1 / 0.1. */
  train?: number;
  validation?: number;
  test?: number;
}

export interface ClassificationSplits {
  train: ClassificationData;
  validation: ClassificationData;
  test: ClassificationData;
}

export function splitClassification(data: ClassificationData, options: SplitOptions = {}): ClassificationSplits {
  const { seed = 12345, train = 0.8, validation = 0.1, test = 0.1 } = options;
  const problems: string[] = [];
  for (const [name, f] of [['train', train], ['validation', validation], ['test', test]] as const) {
    if (!(f >= 0 && f <= 1)) problems.push(`split fraction ${name} must be in [0, 1], got ${f}`);
  }
  if (Math.abs(train + validation + test - 1) > 1e-9) {
    problems.push(`split fractions must add up to 1, got ${train} + ${validation} + ${test} = ${train + validation + test}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const rng = new Rng(seed);
  const assigned = new Int8Array(data.examples.length); // 0 train, 1 validation, 2 test
  data.labels.forEach((_, label) => {
    const members: number[] = [];
    data.examples.forEach((e, i) => {
      if (e.label === label) members.push(i);
    });
    rng.shuffle(members);
    const nTest = Math.round(members.length * test);
    const nValidation = Math.round(members.length * validation);
    members.forEach((i, k) => (assigned[i] = k < nTest ? 2 : k < nTest + nValidation ? 1 : 0));
  });
  const part = (which: number, name: string): ClassificationData => ({
    source: `${data.source}#${name}`,
    labels: data.labels,
    examples: data.examples.filter((_, i) => assigned[i] === which),
    duplicatesDropped: 0,
  });
  return { train: part(0, 'train'), validation: part(1, 'validation'), test: part(2, 'test') };
}
