/**
 * Output heads on top of the encoder: the masked-LM head (decoder tied to the
 * word embeddings, plus a bias; computable at chosen positions only), the
 * next-sentence head and the sequence-classification head.
 * Pure functions of (parameters, encoder outputs).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BertConfig } from './config.js';
import { gelu, layerNorm, linear, type Params } from './bert.js';

/**
 * MLM logits at `positions` ([batch, P] int32, positions within each sequence),
 * or at every position when omitted. Returns [batch * P, vocab] (or [batch * seq, vocab]).
 */
export function mlmLogits(c: BertConfig, p: Params, sequenceOutput: tf.Tensor3D, positions?: tf.Tensor2D): tf.Tensor2D {
  const [batch, seq, H] = sequenceOutput.shape;
  let hidden = tf.reshape(sequenceOutput, [batch * seq, H]) as tf.Tensor2D;
  if (positions) {
    const P = positions.shape[1];
    // Row of (b, pos) in the flattened [b*s, H] output is b*seq + pos.
    const rowBase = tf.reshape(tf.range(0, batch * seq, seq, 'int32'), [batch, 1]); // int32
    const flat = tf.reshape(tf.add(positions, rowBase), [batch * P]);
    hidden = tf.gather(hidden, flat) as tf.Tensor2D; // [b*P, H]
  }
  const t = gelu(linear(p, 'cls.predictions.transform.dense', hidden));
  const normed = layerNorm(p, 'cls.predictions.transform.LayerNorm', t, c.layer_norm_eps) as tf.Tensor2D;
  const words = p['bert.embeddings.word_embeddings.weight'] as tf.Tensor2D; // [vocab, H]
  return tf.fused.matMul({ a: normed, b: words, transposeB: true, bias: p['cls.predictions.bias'] }) as tf.Tensor2D;
}

/** [batch, 2]: index 0 = "B follows A", 1 = "B is random" (google-research/bert's labels). */
export function nspLogits(p: Params, pooledOutput: tf.Tensor2D): tf.Tensor2D {
  return linear(p, 'cls.seq_relationship', pooledOutput);
}

/** [batch, numLabels]. Dropout on the pooled output is applied by the caller's loss. */
export function classifierLogits(p: Params, pooledOutput: tf.Tensor2D): tf.Tensor2D {
  return linear(p, 'classifier', pooledOutput);
}
