import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.js';
import { splitClassification } from '../../shared/data/classification-split.js';
import { loadDefaultSentiment } from '../../shared/data/sentiment-default.js';

const data = loadDefaultSentiment();

describe('default sentiment set (UCI, sentiment@5.0.2)', () => {
  it('drops the null-class records and duplicates: 2 982 sentences, 1 492 negative', () => {
    expect(data.labels).toEqual(['negative', 'positive']);
    expect(data.examples.length).toBe(2982);
    expect(data.duplicatesDropped).toBe(18);
    expect(new Set(data.examples.map((e) => e.text)).size).toBe(2982);
    expect(data.examples.filter((e) => e.label === 0).length).toBe(1492);
  });
});

describe('stratified split', () => {
  const s = splitClassification(data, { seed: 12345 });

  it('cuts 80/10/10 within each label', () => {
    expect([s.train.examples.length, s.validation.examples.length, s.test.examples.length]).toEqual([2386, 298, 298]);
    for (const part of [s.validation, s.test]) {
      expect(part.examples.filter((e) => e.label === 0).length).toBe(149);
      expect(part.examples.filter((e) => e.label === 1).length).toBe(149);
    }
  });

  it('is disjoint and covers everything', () => {
    const texts = (d: typeof s.train) => new Set(d.examples.map((e) => e.text));
    const train = texts(s.train);
    const test = texts(s.test);
    const validation = texts(s.validation);
    expect([...test].filter((t) => train.has(t) || validation.has(t))).toEqual([]);
    expect([...validation].filter((t) => train.has(t))).toEqual([]);
    expect(train.size + test.size + validation.size).toBe(2982);
  });

  it('is fixed by the seed', () => {
    expect(splitClassification(data, { seed: 12345 }).test.examples).toEqual(s.test.examples);
    expect(splitClassification(data, { seed: 1 }).test.examples).not.toEqual(s.test.examples);
  });

  it('rejects fractions that do not add up to 1', () => {
    expect(() => splitClassification(data, { train: 0.9, validation: 0.1, test: 0.1 })).toThrow(ConfigError);
    expect(() => splitClassification(data, { train: 0.9, validation: 0.1, test: 0.1 })).toThrow(/add up to 1, got 0.9 \+ 0.1 \+ 0.1/);
  });
});
