/**
 * End to end through every kernel the model uses: the gradient of a BERT
 * micro-batch (MLM + NSP, and classification) on wasm-blas and on plain wasm
 * agrees with tfjs's reference cpu backend. Kernel-by-kernel tests cannot catch
 * a wrong kernel that only the model reaches (wasm's OneHot once was one).
 */
import { describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from '../../shared/backend/select.js';
import { parseBertConfig } from '../../shared/model/config.js';
import { paramSpecs } from '../../shared/model/params.js';
import type { ClassifyArrays } from '../../shared/training/batches.js';
import { microBatchGradient } from '../../shared/training/gradients.js';
import { initParams } from '../../shared/training/init.js';
import { Replica } from '../../shared/training/replica.js';
import { randomPretrainBatch } from '../../shared/training/synthetic-batches.js';

const bert = parseBertConfig({
  vocab_size: 200, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64,
  max_position_embeddings: 64, hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1,
});

async function gradientsOn(backend: BackendName, heads: 'pretraining' | 'classification'): Promise<{ replica: Replica; grad: Float32Array }> {
  await initBackend({ name: backend, blasThreads: 1 });
  const specs = paramSpecs(bert, heads === 'pretraining' ? { heads } : { heads, numLabels: 3 });
  const replica = Replica.fromValues(specs, initParams(bert, specs, 11));
  const pre = randomPretrainBatch(bert.vocab_size, 6, 24, 4, 5);
  const batch = heads === 'pretraining'
    ? pre
    : ({ kind: 'classify', size: 6, seqLength: 24, inputIds: pre.inputIds, inputMask: pre.inputMask, segmentIds: pre.segmentIds, labels: Int32Array.from([0, 1, 2, 2, 1, 0]) } as ClassifyArrays);
  const { grad } = microBatchGradient(bert, replica.layout, replica.paramTensors(), batch, { sequences: 6, maskedTokens: 12 }, 3);
  replica.releaseTensors();
  return { replica, grad };
}

describe('model gradients on the wasm backends', () => {
  for (const heads of ['pretraining', 'classification'] as const) {
    for (const backend of ['wasm-blas', 'wasm'] as const) {
      it(`${backend} agrees with cpu for the ${heads} loss`, async () => {
        const ref = await gradientsOn('cpu', heads);
        const got = await gradientsOn(backend, heads);
        for (const s of ref.replica.layout.specs) {
          const a = ref.replica.layout.view(ref.grad, s.name);
          const b = got.replica.layout.view(got.grad, s.name);
          let scale = 1e-6;
          let diff = 0;
          for (let i = 0; i < a.length; i++) {
            scale = Math.max(scale, Math.abs(a[i]!));
            diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
          }
          expect(diff / scale, s.name).toBeLessThan(1e-3);
        }
      });
    }
  }
});
