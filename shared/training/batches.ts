/**
 * Host-side batches: plain typed arrays, row-major, as read from the data cache
 * and as shipped to workers. `toTensors` makes the model's input tensors; the
 * caller disposes them (or runs inside `tf.tidy`).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PretrainBatch } from '../data/pretrain-record.js';
import type { ClassificationBatch, PretrainingBatch } from '../model/losses.js';

/** A pretraining batch as the data cache gives it (see shared/data/pretrain-record.ts), tagged. */
export type PretrainArrays = PretrainBatch & { kind: 'pretrain' };

export interface ClassifyArrays {
  kind: 'classify';
  size: number;
  seqLength: number;
  inputIds: Int32Array; // [size, seq]
  inputMask: Int32Array;
  segmentIds: Int32Array;
  labels: Int32Array; // [size]
}

export type BatchArrays = PretrainArrays | ClassifyArrays;

export function pretrainTensors(b: PretrainArrays): PretrainingBatch {
  const s = [b.size, b.seqLength] as [number, number];
  const p = [b.size, b.maxPredictions] as [number, number];
  return {
    inputIds: tf.tensor2d(b.inputIds, s, 'int32'),
    tokenTypeIds: tf.tensor2d(b.segmentIds, s, 'int32'),
    attentionMask: tf.tensor2d(Float32Array.from(b.inputMask), s, 'float32'),
    maskedPositions: tf.tensor2d(b.maskedLmPositions, p, 'int32'),
    maskedIds: tf.tensor2d(b.maskedLmIds, p, 'int32'),
    maskedWeights: tf.tensor2d(b.maskedLmWeights, p, 'float32'),
    nspLabels: tf.tensor1d(b.nextSentenceLabels, 'int32'),
  };
}

export function classifyTensors(b: ClassifyArrays): ClassificationBatch {
  const s = [b.size, b.seqLength] as [number, number];
  return {
    inputIds: tf.tensor2d(b.inputIds, s, 'int32'),
    tokenTypeIds: tf.tensor2d(b.segmentIds, s, 'int32'),
    attentionMask: tf.tensor2d(Float32Array.from(b.inputMask), s, 'float32'),
    labels: tf.tensor1d(b.labels, 'int32'),
  };
}

/** Real masked tokens in a pretraining batch (the MLM loss's normaliser). */
export function maskedTokenCount(b: PretrainArrays): number {
  let n = 0;
  for (let i = 0; i < b.maskedLmWeights.length; i++) n += b.maskedLmWeights[i]!;
  return n;
}

/** A dataset as the trainer sees it: a size and a way to fetch rows by index, in order. */
export interface BatchSource {
  readonly size: number;
  batch(indices: readonly number[]): BatchArrays;
}

export type DatasetName = 'pretrain' | 'pretrain-heldout' | 'classify-train' | 'classify-validation' | 'classify-test';

/** Every dataset of a run. Pretraining sets are absent when the run starts from a checkpoint. */
export interface RunDatasets {
  sources: Partial<Record<DatasetName, BatchSource>>;
  labels: readonly string[];
  /** Fingerprint of the data and vocabulary, so workers can check they read the same. */
  fingerprint: string;
}

export function sourceOf(d: RunDatasets, name: DatasetName): BatchSource {
  const s = d.sources[name];
  if (!s) throw new Error(`dataset ${name} is not loaded in this run`);
  return s;
}
