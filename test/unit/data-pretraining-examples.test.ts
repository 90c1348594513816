/**
 * The instance-making rules of create_pretraining_data.py, checked on real text
 * (the first 120 Brown documents) and on synthetic documents whose token ids
 * encode (document, sentence), so that A/B provenance can be read back.
 */
import { describe, expect, it } from 'vitest';
import { readCorpus } from '../../shared/data/corpora.js';
import { tokenizeDocuments } from '../../shared/data/corpus-tokenize.js';
import type { Instance } from '../../shared/data/instance-store.js';
import { parsePretrainSettings } from '../../shared/data/pretrain-settings.js';
import { createPretrainingInstances, maskingRulesFor, truncateSeqPair, type TokenizedDocument } from '../../shared/data/pretraining-examples.js';
import { Rng } from '../../shared/data/rng.js';
import { createTokenizer } from '../../shared/data/tokenizer.js';
import { loadDefaultVocab } from '../../shared/data/vocab.js';

const vocab = loadDefaultVocab();
const { cls, sep } = vocab.specialIds;
const brown = tokenizeDocuments(readCorpus({ kind: 'embedded', name: 'brown', maxDocuments: 120 }), createTokenizer(vocab)).documents;

function make(documents: readonly TokenizedDocument[], overrides: Record<string, unknown>) {
  const settings = parsePretrainSettings({ dupe_factor: 3, ...overrides });
  const made = createPretrainingInstances(documents, settings, maskingRulesFor(vocab, settings));
  return { ...made, list: Array.from(made.order, (i) => made.store.get(i)) };
}

function unmasked(inst: Instance): number[] {
  const t = Array.from(inst.tokens);
  inst.positions.forEach((p, k) => (t[p] = inst.labels[k]!));
  return t;
}

// Synthetic: 300 documents × 30 sentences × 8 tokens; id = 1000 + 40·doc + sentence.
const SYN_DOCS = 300;
const synthetic: TokenizedDocument[] = Array.from({ length: SYN_DOCS }, (_, d) =>
  Array.from({ length: 30 }, (_, j) => new Int32Array(8).fill(1000 + 40 * d + j)),
);
const docOf = (id: number) => Math.floor((id - 1000) / 40);
const sentenceOf = (id: number) => (id - 1000) % 40;

describe('pretraining instances (create_instances_from_document)', () => {
  const real = make(brown, {});

  it('lays out [CLS] A [SEP] B [SEP] within max_seq_length', () => {
    const bad = real.list.filter((inst) => {
      const t = inst.tokens;
      const specials = unmasked(inst).filter((id) => id === cls || id === sep).length;
      return !(t.length <= 128 && t[0] === cls && t[inst.lengthA + 1] === sep && t[t.length - 1] === sep &&
        inst.lengthA >= 1 && t.length - inst.lengthA - 3 >= 1 && specials === 3);
    });
    expect(real.list.length).toBeGreaterThan(5000);
    expect(bad).toEqual([]);
  });

  it('draws a short target for ~10% of document visits (short_seq_prob)', () => {
    const many = make(synthetic, { dupe_factor: 5 });
    expect(many.stats.passes).toBe(SYN_DOCS * 5);
    expect(Math.abs(many.stats.shortTargets / many.stats.passes - 0.1)).toBeLessThan(0.025);
    expect(real.list.filter((i) => i.tokens.length < 64).length).toBeGreaterThan(0);
  });

  it('makes about half of the B segments random (exactly 50/50 when every chunk has two segments or more)', () => {
    const noShort = make(brown, { short_seq_prob: 0 });
    const rate = noShort.stats.randomNext / noShort.stats.instances;
    expect(Math.abs(rate - 0.5)).toBeLessThan(0.02);
    // Short targets force a random B when a chunk has a single sentence, as in the Python.
    const rateDefault = real.stats.randomNext / real.stats.instances;
    expect(rateDefault).toBeGreaterThan(0.48);
    expect(rateDefault).toBeLessThan(0.58);
  });

  it('takes an actual next B from the following sentences and a random B from another document', () => {
    const syn = make(synthetic, {});
    const problems: string[] = [];
    syn.list.forEach((inst, i) => {
      const t = unmasked(inst);
      const a = t.slice(1, inst.lengthA + 1);
      const b = t.slice(inst.lengthA + 2, t.length - 1);
      const aDocs = new Set(a.map(docOf));
      if (aDocs.size !== 1) problems.push(`${i}: A spans documents`);
      if (inst.isRandomNext) {
        if (!b.map(docOf).every((d) => !aDocs.has(d))) problems.push(`${i}: random B from A's document`);
      } else {
        if (!b.map(docOf).every((d) => aDocs.has(d))) problems.push(`${i}: actual B from another document`);
        if (Math.min(...b.map(sentenceOf)) !== Math.max(...a.map(sentenceOf)) + 1) problems.push(`${i}: B does not follow A`);
      }
    });
    expect(problems).toEqual([]);
  });

  it('puts unused segments back: in one pass every sentence lands in its own document\'s A or B', () => {
    const once = make(synthetic, { dupe_factor: 1, short_seq_prob: 0 });
    const seen = new Set<number>();
    for (const inst of once.list) {
      const t = unmasked(inst);
      const aDoc = docOf(t[1]!);
      for (const id of t) if (id !== cls && id !== sep && docOf(id) === aDoc) seen.add(id);
    }
    expect(seen.size).toBe(SYN_DOCS * 30);
  });

  it('truncates the longer side, from the front or the back at random (truncate_seq_pair)', () => {
    const rng = new Rng(9);
    let fronts = 0;
    for (let k = 0; k < 200; k++) {
      const [aFrom, aTo, bFrom, bTo] = truncateSeqPair(10, 3, 8, rng);
      expect(aTo - aFrom).toBe(5);
      expect([bFrom, bTo]).toEqual([0, 3]);
      fronts += aFrom;
    }
    expect(fronts / (200 * 5)).toBeGreaterThan(0.4);
    expect(fronts / (200 * 5)).toBeLessThan(0.6);
    expect(truncateSeqPair(4, 4, 6, new Rng(1)).reduce((s, x, i) => s + (i % 2 ? x : -x), 0)).toBe(6);
  });

  it('is deterministic from the seed', () => {
    const again = make(brown, {});
    expect(again.list.length).toBe(real.list.length);
    for (let i = 0; i < real.list.length; i += 97) expect(again.list[i]).toEqual(real.list[i]);
    const other = make(brown, { seed: 1 });
    expect(other.list.slice(0, 20)).not.toEqual(real.list.slice(0, 20));
  });
});
