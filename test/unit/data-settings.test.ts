import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.js';
import { parsePretrainSettings } from '../../shared/data/pretrain-settings.js';

describe('pretraining settings', () => {
  it('defaults to create_pretraining_data.py values', () => {
    expect(parsePretrainSettings({})).toEqual({
      max_seq_length: 128,
      max_predictions_per_seq: 20,
      masked_lm_prob: 0.15,
      short_seq_prob: 0.1,
      dupe_factor: 5,
      whole_word_masking: false,
      seed: 12345,
      held_out: null,
    });
    expect(Object.isFrozen(parsePretrainSettings({}))).toBe(true);
  });

  it('lists every problem with the field and the value', () => {
    try {
      parsePretrainSettings({ max_seq_length: 2.5, masked_lm_prob: 0, dupe_facter: 2 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      expect(problems).toHaveLength(3);
      expect(problems.join('\n')).toMatch(/max_seq_length: .*\(got 2.5\)/);
      expect(problems.join('\n')).toMatch(/masked_lm_prob: .*\(got 0\)/);
      expect(problems.join('\n')).toMatch(/dupe_facter/);
    }
  });

  it('rejects more predictions than maskable positions', () => {
    expect(() => parsePretrainSettings({ max_seq_length: 16, max_predictions_per_seq: 20 })).toThrow(
      /max_predictions_per_seq \(20\) exceeds the 13 maskable positions/,
    );
  });
});
