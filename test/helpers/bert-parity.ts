/**
 * The comparison the parity tests make: bertfleet's forward pass (tfjs's
 * reference cpu backend) on a Hugging Face-layout fixture directory
 * (config.json, model.safetensors, inputs.json, expected.json), as the largest
 * absolute difference per output of `BertForPreTraining`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadHfCheckpoint, selectParams } from '../../shared/checkpoint/hf-checkpoint.js';
import { runInference, validateInferenceInput, type InferenceOutput } from '../../shared/model/inference.js';
import { disposeParams, paramsToTensors } from '../../shared/model/param-tensors.js';
import { paramSpecs } from '../../shared/model/params.js';

export const PARITY_OUTPUTS = ['last_hidden_state', 'pooler_output', 'prediction_logits', 'seq_relationship_logits'] as const;
export type ParityOutput = (typeof PARITY_OUTPUTS)[number];

export interface ParityDiff {
  gotShape: number[];
  expectedShape: number[];
  /** Infinity when the shapes differ. */
  maxAbsDiff: number;
}

function maxAbsDiff(a: number[], b: number[]): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Runs the fixture's inputs through its weights; the caller must have set the tfjs backend. */
export function parityDiffs(dir: string): Record<ParityOutput, ParityDiff> {
  const ckpt = loadHfCheckpoint(dir);
  const specs = paramSpecs(ckpt.config, { heads: 'pretraining' });
  const params = paramsToTensors(specs, selectParams(ckpt, specs));
  const input = validateInferenceInput(JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8')), ckpt.config);
  let got: InferenceOutput;
  try {
    got = runInference(ckpt.config, params, input);
  } finally {
    disposeParams(params);
  }
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as InferenceOutput;
  const out = {} as Record<ParityOutput, ParityDiff>;
  for (const key of PARITY_OUTPUTS) {
    out[key] = { gotShape: got[key].shape, expectedShape: expected[key].shape, maxAbsDiff: maxAbsDiff(got[key].data, expected[key].data) };
  }
  return out;
}
