/**
 * Masked-LM targets for one instance, as google-research/bert's
 * create_pretraining_data.py `create_masked_lm_predictions` makes them:
 * candidates are all positions except [CLS]/[SEP]; with whole-word masking a
 * piece starting with "##" joins the previous candidate's group (even across a
 * [SEP], as in the Python, which only looks at the previous candidate);
 * candidates are shuffled; num_to_predict = min(max_predictions_per_seq,
 * max(1, round(len(tokens) * masked_lm_prob))) with Python's round-half-even;
 * a group that would overshoot num_to_predict is skipped; each chosen position
 * becomes [MASK] 80%, keeps its token 10%, a uniformly random vocab id 10%.
 * Works on token ids; knows nothing of strings, corpora or files.
 */
import type { Rng } from './rng.js';

export interface MaskingRules {
  maskedLmProb: number;
  maxPredictions: number;
  wholeWordMasking: boolean;
  vocabSize: number;
  clsId: number;
  sepId: number;
  maskId: number;
  /** [vocabSize]: 1 for "##" pieces. */
  isContinuation: Uint8Array;
}

export interface MaskedLm {
  /** Masked positions, ascending. */
  positions: number[];
  /** The original ids at those positions. */
  labels: number[];
}

/** Python 3's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Masks `tokens` in place ([seq] ids with [CLS]/[SEP] already placed) and returns the targets. */
export function createMaskedLmPredictions(tokens: Int32Array, rules: MaskingRules, rng: Rng): MaskedLm {
  // Candidate groups, flat: members[groupStart[g] .. groupStart[g+1]) are positions.
  const members: number[] = [];
  const groupStart: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i]!;
    if (id === rules.clsId || id === rules.sepId) continue;
    const joins = rules.wholeWordMasking && groupStart.length > 0 && rules.isContinuation[id] === 1;
    if (!joins) groupStart.push(members.length);
    members.push(i);
  }
  const groupCount = groupStart.length;
  groupStart.push(members.length);

  const order = new Int32Array(groupCount);
  for (let g = 0; g < groupCount; g++) order[g] = g;
  rng.shuffle(order);

  const numToPredict = Math.min(
    rules.maxPredictions,
    Math.max(1, roundHalfEven(tokens.length * rules.maskedLmProb)),
  );
  const chosen: Array<[position: number, label: number]> = [];
  // Groups partition the candidates, so the Python's covered_indexes check can never fire.
  for (let k = 0; k < groupCount; k++) {
    if (chosen.length >= numToPredict) break;
    const g = order[k]!;
    const from = groupStart[g]!;
    const to = groupStart[g + 1]!;
    if (chosen.length + (to - from) > numToPredict) continue;
    for (let m = from; m < to; m++) {
      const index = members[m]!;
      const original = tokens[index]!;
      let replacement: number;
      if (rng.random() < 0.8) replacement = rules.maskId;
      else if (rng.random() < 0.5) replacement = original;
      else replacement = rng.randint(0, rules.vocabSize - 1);
      tokens[index] = replacement;
      chosen.push([index, original]);
    }
  }
  chosen.sort((a, b) => a[0] - b[0]);
  return { positions: chosen.map((c) => c[0]), labels: chosen.map((c) => c[1]) };
}
