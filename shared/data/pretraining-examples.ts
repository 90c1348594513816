/**
 * Pretraining instances (MLM + NSP) made exactly as google-research/bert's
 * create_pretraining_data.py makes them, step for step and draw for draw in
 * the same order (create_training_instances, create_instances_from_document,
 * truncate_seq_pair), with our seeded Rng in place of Python's random.Random.
 * Input: documents of tokenized sentences (ids). Output: an InstanceStore and
 * the final shuffled order. Knows nothing of text, files or the cache format.
 */
import { ShapeError } from '../errors.js';
import { InstanceStore } from './instance-store.js';
import { createMaskedLmPredictions, type MaskingRules } from './masking.js';
import type { PretrainSettings } from './pretrain-settings.js';
import { Rng } from './rng.js';
import type { Vocab } from './vocab.js';

/** A document: its sentences as token ids (no empty sentence). */
export type TokenizedDocument = readonly Int32Array[];

export interface ExampleStats {
  documents: number;
  /** Document visits: documents × dupe_factor. */
  passes: number;
  /** Visits that drew a short target length (short_seq_prob). */
  shortTargets: number;
  instances: number;
  randomNext: number;
  /** Tokens in all instances, [CLS]/[SEP] included. */
  tokens: number;
  maskedTokens: number;
}

export interface PretrainingInstances {
  store: InstanceStore;
  /** Store indices in output order (the final rng.shuffle(instances)). */
  order: Int32Array;
  stats: ExampleStats;
}

export function maskingRulesFor(vocab: Vocab, settings: PretrainSettings): MaskingRules {
  const s = vocab.specialIds;
  return {
    maskedLmProb: settings.masked_lm_prob,
    maxPredictions: settings.max_predictions_per_seq,
    wholeWordMasking: settings.whole_word_masking,
    vocabSize: vocab.size,
    clsId: s.cls,
    sepId: s.sep,
    maskId: s.mask,
    isContinuation: vocab.isContinuation,
  };
}

/**
 * Follows create_training_instances: shuffle the documents, then dupe_factor
 * passes over every document, then shuffle the instances. `onPass` reports
 * progress after each document visit.
 */
export function createPretrainingInstances(
  documents: readonly TokenizedDocument[],
  settings: PretrainSettings,
  rules: MaskingRules,
  onPass?: (done: number, total: number) => void,
): PretrainingInstances {
  const rng = new Rng(settings.seed);
  const docs = documents.filter((d) => d.length > 0);
  rng.shuffle(docs);
  const store = new InstanceStore();
  const stats: ExampleStats = { documents: docs.length, passes: 0, shortTargets: 0, instances: 0, randomNext: 0, tokens: 0, maskedTokens: 0 };
  const total = settings.dupe_factor * docs.length;
  for (let dupe = 0; dupe < settings.dupe_factor; dupe++) {
    for (let d = 0; d < docs.length; d++) {
      instancesFromDocument(docs, d, settings, rules, rng, store, stats);
      stats.passes++;
      onPass?.(stats.passes, total);
    }
  }
  const order = new Int32Array(store.size);
  for (let i = 0; i < order.length; i++) order[i] = i;
  rng.shuffle(order);
  return { store, order, stats };
}

/** Follows create_instances_from_document. */
function instancesFromDocument(
  docs: readonly TokenizedDocument[],
  documentIndex: number,
  settings: PretrainSettings,
  rules: MaskingRules,
  rng: Rng,
  store: InstanceStore,
  stats: ExampleStats,
): void {
  const document = docs[documentIndex]!;
  const maxNumTokens = settings.max_seq_length - 3; // [CLS], [SEP], [SEP]
  // Usually fill the sequence; with short_seq_prob use a shorter target to
  // lessen the mismatch between pretraining and fine-tuning.
  let targetSeqLength = maxNumTokens;
  if (rng.random() < settings.short_seq_prob) {
    targetSeqLength = rng.randint(2, maxNumTokens);
    stats.shortTargets++;
  }
  let chunk: Int32Array[] = [];
  let chunkLength = 0;
  let i = 0;
  while (i < document.length) {
    const segment = document[i]!;
    chunk.push(segment);
    chunkLength += segment.length;
    if (i === document.length - 1 || chunkLength >= targetSeqLength) {
      if (chunk.length > 0) {
        // a_end: how many chunk segments go into A.
        const aEnd = chunk.length >= 2 ? rng.randint(1, chunk.length - 1) : 1;
        const a = concat(chunk.slice(0, aEnd));
        let b: number[];
        let isRandomNext: boolean;
        if (chunk.length === 1 || rng.random() < 0.5) {
          isRandomNext = true;
          b = randomNextSegment(docs, documentIndex, targetSeqLength - a.length, rng);
          // Segments not used go back so they are not wasted.
          i -= chunk.length - aEnd;
        } else {
          isRandomNext = false;
          b = concat(chunk.slice(aEnd));
        }
        const [aFrom, aTo, bFrom, bTo] = truncateSeqPair(a.length, b.length, maxNumTokens, rng);
        if (aTo <= aFrom || bTo <= bFrom) {
          throw new ShapeError('pretraining instance', 'A and B of at least one token each', `A ${aTo - aFrom}, B ${bTo - bFrom}`);
        }
        addInstance(a.slice(aFrom, aTo), b.slice(bFrom, bTo), isRandomNext, rules, rng, store, stats);
      }
      chunk = [];
      chunkLength = 0;
    }
    i++;
  }
}

/** The random B: from another document (up to 10 tries, as in the Python), from a random sentence on. */
function randomNextSegment(docs: readonly TokenizedDocument[], documentIndex: number, targetBLength: number, rng: Rng): number[] {
  let randomDocumentIndex = documentIndex;
  for (let t = 0; t < 10; t++) {
    randomDocumentIndex = rng.randint(0, docs.length - 1);
    if (randomDocumentIndex !== documentIndex) break;
  }
  const randomDocument = docs[randomDocumentIndex]!;
  const randomStart = rng.randint(0, randomDocument.length - 1);
  const b: number[] = [];
  for (let j = randomStart; j < randomDocument.length; j++) {
    for (const id of randomDocument[j]!) b.push(id);
    if (b.length >= targetBLength) break;
  }
  return b;
}

/**
 * Follows truncate_seq_pair: while too long, drop one token from the longer
 * sequence (B on a tie), from the front or the back with equal odds.
 * Returns the kept ranges [aFrom, aTo, bFrom, bTo].
 */
export function truncateSeqPair(lengthA: number, lengthB: number, maxNumTokens: number, rng: Rng): [number, number, number, number] {
  let aFrom = 0, aTo = lengthA, bFrom = 0, bTo = lengthB;
  while (aTo - aFrom + (bTo - bFrom) > maxNumTokens) {
    const truncA = aTo - aFrom > bTo - bFrom;
    const front = rng.random() < 0.5;
    if (truncA) {
      if (front) aFrom++;
      else aTo--;
    } else if (front) bFrom++;
    else bTo--;
  }
  return [aFrom, aTo, bFrom, bTo];
}

function addInstance(
  a: number[],
  b: number[],
  isRandomNext: boolean,
  rules: MaskingRules,
  rng: Rng,
  store: InstanceStore,
  stats: ExampleStats,
): void {
  const tokens = new Int32Array(a.length + b.length + 3);
  tokens[0] = rules.clsId;
  tokens.set(a, 1);
  tokens[a.length + 1] = rules.sepId;
  tokens.set(b, a.length + 2);
  tokens[tokens.length - 1] = rules.sepId;
  const { positions, labels } = createMaskedLmPredictions(tokens, rules, rng);
  store.add({ tokens, lengthA: a.length, positions, labels, isRandomNext });
  stats.instances++;
  stats.tokens += tokens.length;
  stats.maskedTokens += positions.length;
  if (isRandomNext) stats.randomNext++;
}

function concat(segments: readonly Int32Array[]): number[] {
  const out: number[] = [];
  for (const s of segments) for (const id of s) out.push(id);
  return out;
}
