/**
 * The on-disk record of one pretraining example and the batch it becomes.
 * A record is (3·S + 3·P + 1) little-endian int32 for max_seq_length S and
 * max_predictions_per_seq P, fields in this order, padded as google-research/bert's
 * write_instance_to_example_files pads them:
 *   input_ids[S] (0-padded) · input_mask[S] (1 real, 0 pad) · segment_ids[S]
 *   (0 for [CLS] A [SEP], 1 for B [SEP], 0 pad) · masked_lm_positions[P] (0-padded)
 *   · masked_lm_ids[P] (0-padded) · masked_lm_weights[P] (1 real, 0 pad; float in
 *   the batch) · next_sentence_label (0 = IsNext, 1 = random next).
 * Knows nothing of files, corpora or masking rules.
 */
import { ShapeError } from '../errors.js';
import type { Instance } from './instance-store.js';

export interface RecordShape {
  seqLength: number;
  maxPredictions: number;
}

/** Examples for one step, row-major. */
export interface PretrainBatch {
  size: number;
  seqLength: number;
  maxPredictions: number;
  inputIds: Int32Array; // [B, S]
  inputMask: Int32Array; // [B, S]
  segmentIds: Int32Array; // [B, S]
  maskedLmPositions: Int32Array; // [B, P]
  maskedLmIds: Int32Array; // [B, P]
  maskedLmWeights: Float32Array; // [B, P]
  nextSentenceLabels: Int32Array; // [B]
}

export const RECORD_FIELDS = [
  'input_ids[S]',
  'input_mask[S]',
  'segment_ids[S]',
  'masked_lm_positions[P]',
  'masked_lm_ids[P]',
  'masked_lm_weights[P]',
  'next_sentence_label',
] as const;

export function recordInts({ seqLength: S, maxPredictions: P }: RecordShape): number {
  return 3 * S + 3 * P + 1;
}

/** Writes `inst` as one record at `out[offset ..)`; `out` must be zeroed there (padding is 0). */
export function writeRecord(out: Int32Array, offset: number, inst: Instance, shape: RecordShape): void {
  const { seqLength: S, maxPredictions: P } = shape;
  const len = inst.tokens.length;
  const n = inst.positions.length;
  if (len > S) throw new ShapeError('pretraining instance', `at most ${S} tokens (max_seq_length)`, `${len}`);
  if (n > P) throw new ShapeError('pretraining instance', `at most ${P} masked positions (max_predictions_per_seq)`, `${n}`);
  out.set(inst.tokens, offset);
  out.fill(1, offset + S, offset + S + len);
  out.fill(1, offset + 2 * S + inst.lengthA + 2, offset + 2 * S + len);
  const p = offset + 3 * S;
  for (let k = 0; k < n; k++) {
    out[p + k] = inst.positions[k]!;
    out[p + P + k] = inst.labels[k]!;
    out[p + 2 * P + k] = 1;
  }
  out[p + 3 * P] = inst.isRandomNext ? 1 : 0;
}

export function emptyBatch(size: number, shape: RecordShape): PretrainBatch {
  const { seqLength: S, maxPredictions: P } = shape;
  return {
    size,
    seqLength: S,
    maxPredictions: P,
    inputIds: new Int32Array(size * S),
    inputMask: new Int32Array(size * S),
    segmentIds: new Int32Array(size * S),
    maskedLmPositions: new Int32Array(size * P),
    maskedLmIds: new Int32Array(size * P),
    maskedLmWeights: new Float32Array(size * P),
    nextSentenceLabels: new Int32Array(size),
  };
}

/** Copies one record (`rec`, length recordInts) into row `row` of `batch`. */
export function readRecordInto(rec: Int32Array, batch: PretrainBatch, row: number): void {
  const S = batch.seqLength;
  const P = batch.maxPredictions;
  batch.inputIds.set(rec.subarray(0, S), row * S);
  batch.inputMask.set(rec.subarray(S, 2 * S), row * S);
  batch.segmentIds.set(rec.subarray(2 * S, 3 * S), row * S);
  const p = 3 * S;
  batch.maskedLmPositions.set(rec.subarray(p, p + P), row * P);
  batch.maskedLmIds.set(rec.subarray(p + P, p + 2 * P), row * P);
  for (let k = 0; k < P; k++) batch.maskedLmWeights[row * P + k] = rec[p + 2 * P + k]!;
  batch.nextSentenceLabels[row] = rec[p + 3 * P]!;
}
