import { describe, expect, it } from 'vitest';
import { readEmbeddedCorpus } from '../../shared/data/corpus-embedded.js';
import { createTokenizer, referenceTokenize } from '../../shared/data/tokenizer.js';
import { loadDefaultVocab } from '../../shared/data/vocab.js';

const vocab = loadDefaultVocab();
const tokenizer = createTokenizer(vocab);

describe('uncased WordPiece tokenizer (@huggingface/tokenizers from an in-memory tokenizer.json)', () => {
  it('encodes "Hello, world!" as bert-base-uncased does', () => {
    expect(tokenizer.encode('Hello, world!').ids).toEqual([101, 7592, 1010, 2088, 999, 102]);
    expect(tokenizer.encodeWords('Hello, world!')).toEqual([7592, 1010, 2088, 999]);
  });

  it('splits unknown words into ## pieces', () => {
    expect(tokenizer.tokenize('I like strawberries')).toEqual(['i', 'like', 'straw', '##berries']);
  });

  it('lowercases and strips accents', () => {
    expect(tokenizer.tokenize('Héllo naïve café.').join(' ')).toBe('hello naive cafe .');
  });

  it('builds [CLS] A [SEP] B [SEP] with type ids 0 then 1', () => {
    const { ids, typeIds } = tokenizer.encode('a b', 'c');
    expect(ids).toEqual([101, 1037, 1038, 102, 1039, 102]);
    expect(typeIds).toEqual([0, 0, 0, 0, 1, 1]);
  });

  it('never turns text into special tokens', () => {
    expect(tokenizer.tokenize('[MASK] and [SEP]')).toEqual(['[', 'mask', ']', 'and', '[', 'sep', ']']);
  });

  it('maps words over 100 characters, and unknown characters, to [UNK]', () => {
    expect(tokenizer.encodeWords('x'.repeat(101))).toEqual([100]);
    expect(tokenizer.encodeWords('\u{1F600}')).toEqual([100]);
  });

  it('tells word starts from ## continuations', () => {
    const ids = tokenizer.encodeWords('strawberries');
    expect(ids.map((id) => tokenizer.startsWord(id))).toEqual([true, false]);
    expect(tokenizer.startsWord(100)).toBe(true);
  });

  it('gives exactly the runtime tokenizer output on real and tricky text (cached fast path)', () => {
    const reference = referenceTokenize(vocab);
    const sentences = [
      ...readEmbeddedCorpus('sotu', 20).flat(),
      ...readEmbeddedCorpus('moby-dick', 10).flat(),
      ...readEmbeddedCorpus('brown', 5).flat(),
      'tab\there\r\nnew line', 'ctrl\u0001chars\u00ad here', '中文 mixed 日本語', 'ＦＵＬＬ width', 'Ǆ ß İ', '', '   ',
    ];
    expect(sentences.length).toBeGreaterThan(1000);
    for (const s of sentences) expect(tokenizer.tokenize(s)).toEqual(reference(s));
  });
});
