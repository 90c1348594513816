import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.js';
import { encodeClassification, truncatePairFromEnd } from '../../shared/data/classification-encode.js';
import { createTokenizer } from '../../shared/data/tokenizer.js';
import { loadDefaultVocab } from '../../shared/data/vocab.js';

const tokenizer = createTokenizer(loadDefaultVocab());

describe('encodeClassification', () => {
  it('pads [CLS] text [SEP] to max_seq_length with mask and labels', () => {
    const b = encodeClassification([{ text: 'Hello, world!', label: 1 }], tokenizer, 8);
    expect(Array.from(b.inputIds)).toEqual([101, 7592, 1010, 2088, 999, 102, 0, 0]);
    expect(Array.from(b.attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 0, 0]);
    expect(Array.from(b.tokenTypeIds)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(b.labels)).toEqual([1]);
    expect(b.truncated).toBe(0);
  });

  it('gives text_b token type 1', () => {
    const b = encodeClassification([{ text: 'a b', textB: 'c', label: 0 }], tokenizer, 8);
    expect(Array.from(b.inputIds)).toEqual([101, 1037, 1038, 102, 1039, 102, 0, 0]);
    expect(Array.from(b.tokenTypeIds)).toEqual([0, 0, 0, 0, 1, 1, 0, 0]);
  });

  it('truncates long texts and counts them', () => {
    const b = encodeClassification(
      [
        { text: 'one two three four five six seven', label: 0 },
        { text: 'short', label: 1 },
        { text: 'a b c d e f', textB: 'g h', label: 1 },
      ],
      tokenizer,
      6,
    );
    expect(b.truncated).toBe(2);
    expect(Array.from(b.inputIds.subarray(0, 6))).toEqual([101, ...tokenizer.encodeWords('one two three four'), 102]);
    expect(Array.from(b.inputIds.subarray(12, 18))).toEqual([101, 1037, 1038, 102, 1043, 102]); // a b | g
  });

  it('truncates a pair from the end of the longer side, B on a tie', () => {
    expect(truncatePairFromEnd([1, 2, 3, 4, 5], [6, 7], 4)).toEqual([[1, 2], [6, 7]]);
    expect(truncatePairFromEnd([1, 2], [3, 4], 3)).toEqual([[1, 2], [3]]);
  });

  it('rejects a max_seq_length too small for a pair', () => {
    expect(() => encodeClassification([], tokenizer, 3)).toThrow(ConfigError);
  });
});
