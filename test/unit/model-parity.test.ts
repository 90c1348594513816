/**
 * The one strong test of the model (after minGPT's): load a Hugging Face-layout
 * checkpoint written by an independent PyTorch implementation and reproduce its
 * outputs within 1e-4, on tfjs's reference cpu backend. The fixture was made
 * outside this repository (test/fixtures/bert-parity/README.md);
 * tools/fixtures/bert_parity.py reproduces its expected.json, and
 * parity-generator.test.ts checks the model against fresh fixtures it makes.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PARITY_OUTPUTS, parityDiffs } from '../helpers/bert-parity.js';

const dir = join(import.meta.dirname, '../fixtures/bert-parity');

describe('BERT parity with an independent PyTorch implementation', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('reproduces every output within 1e-4', () => {
    const diffs = parityDiffs(dir);
    for (const key of PARITY_OUTPUTS) {
      expect(diffs[key].gotShape, key).toEqual(diffs[key].expectedShape);
      expect(diffs[key].maxAbsDiff, key).toBeLessThan(1e-4);
    }
  });
});
