/**
 * Statistical checks of create_masked_lm_predictions' rules over thousands of
 * real instances (the first 120 Brown documents, dupe_factor 3).
 */
import { describe, expect, it } from 'vitest';
import { readCorpus } from '../../shared/data/corpora.js';
import { tokenizeDocuments } from '../../shared/data/corpus-tokenize.js';
import type { Instance } from '../../shared/data/instance-store.js';
import { createMaskedLmPredictions, roundHalfEven } from '../../shared/data/masking.js';
import { parsePretrainSettings } from '../../shared/data/pretrain-settings.js';
import { createPretrainingInstances, maskingRulesFor } from '../../shared/data/pretraining-examples.js';
import { Rng } from '../../shared/data/rng.js';
import { createTokenizer } from '../../shared/data/tokenizer.js';
import { loadDefaultVocab } from '../../shared/data/vocab.js';

const vocab = loadDefaultVocab();
const { cls, sep, pad, mask } = vocab.specialIds;
const corpus = tokenizeDocuments(readCorpus({ kind: 'embedded', name: 'brown', maxDocuments: 120 }), createTokenizer(vocab));

function instances(overrides: Record<string, unknown>): Instance[] {
  const settings = parsePretrainSettings({ dupe_factor: 3, ...overrides });
  const made = createPretrainingInstances(corpus.documents, settings, maskingRulesFor(vocab, settings));
  return Array.from(made.order, (i) => made.store.get(i));
}

/** The tokens before masking: labels put back at their positions. */
function original(inst: Instance): Int32Array {
  const t = Int32Array.from(inst.tokens);
  inst.positions.forEach((p, k) => (t[p] = inst.labels[k]!));
  return t;
}

describe('masked LM targets (create_masked_lm_predictions)', () => {
  const all = instances({});

  it('rounds like Python 3 (half to even)', () => {
    expect([0.5, 1.5, 2.5, 4.5, 19.2, 19.5, 2.4999].map(roundHalfEven)).toEqual([0, 2, 2, 4, 19, 20, 2]);
  });

  it('predicts min(max_predictions_per_seq, max(1, round(len * 0.15))) per instance', () => {
    expect(all.length).toBeGreaterThan(5000);
    const wrong = all.filter((inst) => inst.positions.length !== Math.min(20, Math.max(1, roundHalfEven(inst.tokens.length * 0.15))));
    expect(wrong).toEqual([]);
  });

  it('masks about 15% of the candidate tokens overall', () => {
    const candidates = all.reduce((n, i) => n + i.tokens.length - 3, 0);
    const masked = all.reduce((n, i) => n + i.positions.length, 0);
    expect(masked / candidates).toBeGreaterThan(0.145);
    expect(masked / candidates).toBeLessThan(0.16);
  });

  it('replaces ~80% with [MASK], keeps ~10%, puts a random id in ~10%', () => {
    let asMask = 0, kept = 0, random = 0;
    for (const inst of all) {
      inst.positions.forEach((p, k) => {
        const now = inst.tokens[p]!;
        if (now === mask) asMask++;
        else if (now === inst.labels[k]) kept++;
        else random++;
      });
    }
    const total = asMask + kept + random;
    expect(asMask / total).toBeCloseTo(0.8, 1);
    expect(Math.abs(asMask / total - 0.8)).toBeLessThan(0.01);
    expect(Math.abs(kept / total - 0.1)).toBeLessThan(0.01);
    expect(Math.abs(random / total - 0.1)).toBeLessThan(0.01);
  });

  it('never masks [CLS], [SEP] or [PAD], and lists positions sorted', () => {
    let specialsMasked = 0;
    let unsorted = 0;
    for (const inst of all) {
      for (const label of inst.labels) if (label === cls || label === sep || label === pad) specialsMasked++;
      for (let k = 1; k < inst.positions.length; k++) if (inst.positions[k]! <= inst.positions[k - 1]!) unsorted++;
    }
    expect({ specialsMasked, unsorted }).toEqual({ specialsMasked: 0, unsorted: 0 });
  });

  it('with whole-word masking masks every piece of a chosen word or none', () => {
    const wwm = instances({ whole_word_masking: true, dupe_factor: 1 });
    let continuationsMasked = 0;
    let partialWords = 0;
    let overshoots = 0;
    for (const inst of wwm) {
      const tokens = original(inst);
      const masked = new Set(inst.positions);
      // Groups as the Python forms them: a ## piece joins the previous candidate.
      const groups: number[][] = [];
      tokens.forEach((id, i) => {
        if (id === cls || id === sep) return;
        if (vocab.isContinuation[id] === 1 && groups.length > 0) groups[groups.length - 1]!.push(i);
        else groups.push([i]);
      });
      for (const g of groups) {
        const n = g.filter((i) => masked.has(i)).length;
        if (n !== 0 && n !== g.length) partialWords++;
        if (n > 0 && g.length > 1) continuationsMasked++;
      }
      if (inst.positions.length > Math.min(20, Math.max(1, roundHalfEven(inst.tokens.length * 0.15)))) overshoots++;
    }
    expect({ partialWords, overshoots }).toEqual({ partialWords: 0, overshoots: 0 });
    expect(continuationsMasked).toBeGreaterThan(100);
  });

  it('is a pure function of the rng state', () => {
    const rules = { ...maskingRulesFor(vocab, parsePretrainSettings({})) };
    const tokens = Int32Array.from([cls, ...corpus.documents[0]![0]!, sep, ...corpus.documents[0]![1]!, sep]);
    const a = Int32Array.from(tokens);
    const b = Int32Array.from(tokens);
    expect(createMaskedLmPredictions(a, rules, new Rng(5))).toEqual(createMaskedLmPredictions(b, rules, new Rng(5)));
    expect(a).toEqual(b);
  });
});
