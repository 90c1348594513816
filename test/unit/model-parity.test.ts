/**
 * The one strong test of the model (after minGPT's): load a Hugging Face-layout
 * checkpoint written by an independent PyTorch implementation and reproduce its
 * outputs within 1e-4, on tfjs's reference cpu backend.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadHfCheckpoint, selectParams } from '../../shared/checkpoint/hf-checkpoint.js';
import { runInference, validateInferenceInput, type InferenceOutput } from '../../shared/model/inference.js';
import { disposeParams, paramsToTensors } from '../../shared/model/param-tensors.js';
import { paramSpecs } from '../../shared/model/params.js';

const dir = join(import.meta.dirname, '../fixtures/bert-parity');

function maxAbsDiff(a: number[], b: number[]): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('BERT parity with an independent PyTorch implementation', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('reproduces every output within 1e-4', () => {
    const ckpt = loadHfCheckpoint(dir);
    const specs = paramSpecs(ckpt.config, { heads: 'pretraining' });
    const params = paramsToTensors(specs, selectParams(ckpt, specs));
    const input = validateInferenceInput(JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8')), ckpt.config);
    const got = runInference(ckpt.config, params, input);
    disposeParams(params);
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as InferenceOutput;
    for (const key of ['last_hidden_state', 'pooler_output', 'prediction_logits', 'seq_relationship_logits'] as const) {
      expect(got[key].shape, key).toEqual(expected[key].shape);
      expect(maxAbsDiff(got[key].data, expected[key].data), key).toBeLessThan(1e-4);
    }
  });
});
