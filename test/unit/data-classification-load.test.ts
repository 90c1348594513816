import { describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors.js';
import { labelMapJson, loadClassificationFile, sortLabels } from '../../shared/data/classification.js';
import { fixture } from '../fixtures/data/helpers.js';

describe('classification files', () => {
  it('loads CSV with RFC 4180 quoting and string labels sorted to ids', () => {
    const d = loadClassificationFile(fixture('reviews.csv'));
    expect(d.labels).toEqual(['neg', 'neutral', 'pos']);
    expect(d.examples).toEqual([
      { text: 'Great, really great.', label: 2, line: 2 },
      { text: 'He said "wow" twice', label: 2, line: 3 },
      { text: 'Terrible service', label: 0, line: 4 },
      { text: 'A review that spans\ntwo lines', label: 0, line: 5 },
      { text: 'Just fine', label: 1, line: 8 },
    ]);
  });

  it('loads TSV pairs with text_b', () => {
    const d = loadClassificationFile(fixture('pairs.tsv'));
    expect(d.labels).toEqual(['contradiction', 'entailment']);
    expect(d.examples[0]).toEqual({ text: 'A man is eating.', textB: 'Someone eats food.', label: 1, line: 2 });
    expect(d.examples[2]!.text).toBe('"Quoted" words stay');
  });

  it('loads JSONL with integer labels in numeric order and drops exact duplicates', () => {
    const d = loadClassificationFile(fixture('reviews.jsonl'));
    expect(d.labels).toEqual(['0', '1', '2', '10']);
    expect(d.duplicatesDropped).toBe(1);
    expect(d.examples.map((e) => e.line)).toEqual([1, 2, 4, 5, 7, 8]);
    expect(d.examples[2]).toEqual({ text: 'Not bad at all', textB: 'would buy again', label: 1, line: 4 });
    expect(d.examples.find((e) => e.text.startsWith('Label ten'))!.label).toBe(3);
  });

  it('gives a label map in Hugging Face form', () => {
    expect(labelMapJson(['neg', 'pos'])).toEqual({ id2label: { 0: 'neg', 1: 'pos' }, label2id: { neg: 0, pos: 1 } });
    expect(sortLabels(['b', 'a', 'B'])).toEqual(['B', 'a', 'b']);
  });

  it('rejects a missing or empty file, naming the path', () => {
    expect(() => loadClassificationFile(fixture('nope.csv'))).toThrow(/classification file .*nope\.csv does not exist/);
    expect(() => loadClassificationFile(fixture('empty.csv'))).toThrow(InputError);
    expect(() => loadClassificationFile(fixture('empty.csv'))).toThrow(/empty\.csv is empty/);
    expect(() => loadClassificationFile(fixture('header-only.csv'))).toThrow(/header-only\.csv: no examples found/);
  });

  it('rejects an unknown extension unless the format is given', () => {
    expect(() => loadClassificationFile(fixture('corpus-small.txt'))).toThrow(/expected \.csv, \.tsv or \.jsonl/);
  });

  it('says which columns it found and which it expected when there is no label', () => {
    expect(() => loadClassificationFile(fixture('no-label.csv'))).toThrow(
      /no "text" or "label" column; found columns "sentence", "score"; expected "text", "label" and optionally "text_b"/,
    );
    expect(() => loadClassificationFile(fixture('no-label.jsonl'))).toThrow(/no "label" key; found keys "sentence", "score"/);
  });

  it('accepts other column names when told', () => {
    const d = loadClassificationFile(fixture('no-label.csv'), { columns: { text: 'sentence', label: 'score' } });
    expect(d.labels).toEqual(['0', '1']);
  });

  it('rejects a single class', () => {
    expect(() => loadClassificationFile(fixture('one-class.csv'))).toThrow(/only one class \("pos"\) among 3 examples/);
  });

  it('lists the line numbers of unparseable CSV rows', () => {
    expect(() => loadClassificationFile(fixture('bad-rows.csv'))).toThrow(
      /5 unparseable row\(s\) at lines 3, 5, 6, 7, 8: line 3: 4 fields, expected 2 as in the header; line 5: empty "text"; line 6: empty "label"; line 7: unexpected character/,
    );
  });

  it('lists the line numbers of unparseable JSONL and TSV rows', () => {
    expect(() => loadClassificationFile(fixture('bad-rows.jsonl'))).toThrow(/5 unparseable row\(s\) at lines 3, 4, 5, 6, 7: line 3: not valid JSON; line 4: not a JSON object/);
    expect(() => loadClassificationFile(fixture('bad-rows.tsv'))).toThrow(/1 unparseable row\(s\) at lines 3: line 3: 1 fields, expected 2/);
  });
});
