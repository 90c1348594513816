/**
 * Classification examples as fixed-size model inputs, as google-research/bert's
 * run_classifier.py convert_single_example makes them: `[CLS] a [SEP]` or
 * `[CLS] a [SEP] b [SEP]`, token type 0 then 1, zero padding to max_seq_length.
 * Too-long texts are truncated (a single text keeps its first S-2 pieces; a pair
 * loses pieces from the end of the longer side, B on a tie, as
 * _truncate_seq_pair) and counted, so the caller can log how many.
 * Knows nothing of files, splits or training.
 */
import { ConfigError } from '../errors.js';
import type { ClassificationExample } from './classification.js';
import type { Tokenizer } from './tokenizer.js';

export interface ClassificationBatch {
  size: number;
  seqLength: number;
  inputIds: Int32Array; // [N, S]
  attentionMask: Int32Array; // [N, S]
  tokenTypeIds: Int32Array; // [N, S]
  labels: Int32Array; // [N]
  /** Examples that did not fit and were truncated. */
  truncated: number;
}

export function encodeClassification(
  examples: readonly ClassificationExample[],
  tokenizer: Tokenizer,
  maxSeqLength: number,
): ClassificationBatch {
  if (!Number.isInteger(maxSeqLength) || maxSeqLength < 4) {
    throw new ConfigError([`max_seq_length must be an integer >= 4 for [CLS] a [SEP] b [SEP], got ${maxSeqLength}`]);
  }
  const S = maxSeqLength;
  const n = examples.length;
  const out: ClassificationBatch = {
    size: n,
    seqLength: S,
    inputIds: new Int32Array(n * S),
    attentionMask: new Int32Array(n * S),
    tokenTypeIds: new Int32Array(n * S),
    labels: new Int32Array(n),
    truncated: 0,
  };
  const { cls, sep } = tokenizer.vocab.specialIds;
  examples.forEach((ex, row) => {
    let a = tokenizer.encodeWords(ex.text);
    let b = ex.textB !== undefined ? tokenizer.encodeWords(ex.textB) : null;
    if (b === null && a.length > S - 2) {
      a = a.slice(0, S - 2);
      out.truncated++;
    } else if (b !== null && a.length + b.length > S - 3) {
      [a, b] = truncatePairFromEnd(a, b, S - 3);
      out.truncated++;
    }
    const ids = b === null ? [cls, ...a, sep] : [cls, ...a, sep, ...b, sep];
    const o = row * S;
    out.inputIds.set(ids, o);
    out.attentionMask.fill(1, o, o + ids.length);
    if (b !== null) out.tokenTypeIds.fill(1, o + a.length + 2, o + ids.length);
    out.labels[row] = ex.label;
  });
  return out;
}

/** Follows run_classifier.py _truncate_seq_pair: pop from the longer (B on a tie) until the pair fits. */
export function truncatePairFromEnd(a: number[], b: number[], maxTokens: number): [number[], number[]] {
  let la = a.length;
  let lb = b.length;
  while (la + lb > maxTokens) {
    if (la > lb) la--;
    else lb--;
  }
  return [a.slice(0, la), b.slice(0, lb)];
}
