/** Random but valid batches for benchmarks and tests (never for training). */
import { Rng } from '../data/rng.js';
import type { PretrainArrays } from './batches.js';

export function randomPretrainBatch(vocab: number, size: number, seq: number, maxPred: number, seed: number): PretrainArrays {
  const rng = new Rng(seed);
  const b: PretrainArrays = {
    kind: 'pretrain', size, seqLength: seq, maxPredictions: maxPred,
    inputIds: new Int32Array(size * seq), inputMask: new Int32Array(size * seq), segmentIds: new Int32Array(size * seq),
    maskedLmPositions: new Int32Array(size * maxPred), maskedLmIds: new Int32Array(size * maxPred),
    maskedLmWeights: new Float32Array(size * maxPred), nextSentenceLabels: new Int32Array(size),
  };
  for (let r = 0; r < size; r++) {
    const len = seq - rng.below(seq / 2);
    for (let j = 0; j < seq; j++) {
      b.inputIds[r * seq + j] = j < len ? 5 + rng.below(vocab - 5) : 0;
      b.inputMask[r * seq + j] = j < len ? 1 : 0;
      b.segmentIds[r * seq + j] = j < len && j >= len / 2 ? 1 : 0;
    }
    const preds = 1 + rng.below(maxPred);
    for (let k = 0; k < preds; k++) {
      b.maskedLmPositions[r * maxPred + k] = 1 + k;
      b.maskedLmIds[r * maxPred + k] = 5 + rng.below(vocab - 5);
      b.maskedLmWeights[r * maxPred + k] = 1;
    }
    b.nextSentenceLabels[r] = rng.below(2);
  }
  return b;
}

export function sliceBatch(b: PretrainArrays, lo: number, hi: number): PretrainArrays {
  const s = b.seqLength;
  const p = b.maxPredictions;
  return {
    ...b, size: hi - lo,
    inputIds: b.inputIds.slice(lo * s, hi * s), inputMask: b.inputMask.slice(lo * s, hi * s), segmentIds: b.segmentIds.slice(lo * s, hi * s),
    maskedLmPositions: b.maskedLmPositions.slice(lo * p, hi * p), maskedLmIds: b.maskedLmIds.slice(lo * p, hi * p),
    maskedLmWeights: b.maskedLmWeights.slice(lo * p, hi * p), nextSentenceLabels: b.nextSentenceLabels.slice(lo, hi),
  };
}
