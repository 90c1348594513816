/**
 * BERT in TF.js as a pure function of (parameters, batch): embeddings, a post-LN
 * Transformer encoder with exact (erf) GELU and an additive attention mask, and
 * a tanh pooler. Parameters carry Hugging Face names and torch layouts
 * (`Linear` weights `[out, in]`, multiplied with `transposeB`).
 * This file knows nothing of files, networks, clocks, logging or the backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  backendHas, GELU, HEAD_MATMUL, LAYER_NORM, LAYER_NORM_GRAD, MASKED_SOFTMAX, MASKED_SOFTMAX_GRAD,
  type HeadMatmulAttrs, type LayerNormAttrs, type MaskedSoftmaxAttrs,
} from '../backend/custom-kernels.js';
import type { BertConfig } from './config.js';
import { DropoutSites } from './dropout.js';

export type Params = Readonly<Record<string, tf.Tensor>>;

export interface EncoderInputs {
  inputIds: tf.Tensor2D; // [batch, seq] int32
  tokenTypeIds: tf.Tensor2D; // [batch, seq] int32
  attentionMask: tf.Tensor2D; // [batch, seq] float32, 1 = attend, 0 = padding
}

export interface ForwardOptions {
  training: boolean;
  /** Seed of this micro-batch's dropout masks (uint32). Ignored when not training. */
  dropoutSeed: number;
}

export interface EncoderOutputs {
  sequenceOutput: tf.Tensor3D; // [batch, seq, hidden]
  pooledOutput: tf.Tensor2D; // [batch, hidden]
}

function param(p: Params, name: string): tf.Tensor {
  const t = p[name];
  if (t === undefined) throw new Error(`BERT parameter ${name} is missing`);
  return t;
}

/** x @ W^T + b for a torch-layout Linear: x [n, in], W [out, in] -> [n, out]. */
export function linear(p: Params, prefix: string, x: tf.Tensor2D): tf.Tensor2D {
  return tf.fused.matMul({
    a: x,
    b: param(p, `${prefix}.weight`) as tf.Tensor2D,
    transposeB: true,
    bias: param(p, `${prefix}.bias`),
  }) as tf.Tensor2D;
}

/** LayerNorm as one backend kernel each way (wasm-blas: one native pass over the rows). */
function layerNormKernel(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const attrs: LayerNormAttrs = { eps };
  const op = tf.customGrad(((...args: unknown[]) => {
    const [xx, g, bb, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [y, mean, rstd] = tf.engine().runKernel(LAYER_NORM, { x: xx, gamma: g, beta: bb }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    save([xx, g, mean!, rstd!]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sx, sg, sm, sr] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        return tf.engine().runKernel(LAYER_NORM_GRAD, { x: sx, gamma: sg, mean: sm, rstd: sr, dy }) as tf.Tensor[];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
  return op(x, gamma, beta);
}

export function layerNorm(p: Params, prefix: string, x: tf.Tensor, eps: number): tf.Tensor {
  if (backendHas(LAYER_NORM)) return layerNormKernel(x, param(p, `${prefix}.weight`), param(p, `${prefix}.bias`), eps);
  const mean = tf.mean(x, -1, true);
  const centered = tf.sub(x, mean);
  const variance = tf.mean(tf.square(centered), -1, true);
  const normed = tf.mul(centered, tf.rsqrt(tf.add(variance, eps)));
  return tf.add(tf.mul(normed, param(p, `${prefix}.weight`)), param(p, `${prefix}.bias`));
}

/**
 * GELU as one backend kernel (wasm-blas: one native pass over the heap) that
 * also gives GELU'(x), kept for the backward pass: dy * GELU'(x), one multiply.
 */
const geluKernel = tf.customGrad(((...args: unknown[]) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const [y, dydx] = tf.engine().runKernel(GELU, { x }) as tf.Tensor[];
  save([dydx!]);
  return { value: y!, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, saved[0]!) };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;

/** Exact GELU, as BERT's `gelu`: 0.5 x (1 + erf(x / sqrt 2)); one kernel where the backend has it. */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (backendHas(GELU)) return geluKernel(x);
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

function embeddings(c: BertConfig, p: Params, inp: EncoderInputs, drop: DropoutSites): tf.Tensor2D {
  const [batch, seq] = inp.inputIds.shape;
  const H = c.hidden_size;
  const words = tf.gather(param(p, 'bert.embeddings.word_embeddings.weight'), tf.reshape(inp.inputIds, [-1])); // [b*s, H]
  const types = tf.gather(param(p, 'bert.embeddings.token_type_embeddings.weight'), tf.reshape(inp.tokenTypeIds, [-1]));
  const positions = tf.slice(param(p, 'bert.embeddings.position_embeddings.weight'), [0, 0], [seq, H]); // [s, H]
  const sum = tf.add(tf.reshape(tf.add(words, types), [batch, seq, H]), positions); // [b, s, H]
  const normed = layerNorm(p, 'bert.embeddings.LayerNorm', sum, c.layer_norm_eps);
  return tf.reshape(drop.apply(normed, c.hidden_dropout_prob), [batch * seq, H]) as tf.Tensor2D;
}

/** softmax(scores * scale + maskAdd) over the last axis; one kernel each way where the backend has it. */
export function maskedSoftmax(scores: tf.Tensor, maskAdd: tf.Tensor, scale: number): tf.Tensor {
  if (!backendHas(MASKED_SOFTMAX)) return tf.softmax(tf.add(tf.mul(scores, scale), maskAdd));
  const attrs = { scale } satisfies MaskedSoftmaxAttrs as unknown as tf.NamedAttrMap;
  const op = tf.customGrad(((...args: unknown[]) => {
    const [x, mask, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const y = tf.engine().runKernel(MASKED_SOFTMAX, { x, mask }, attrs) as tf.Tensor;
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        tf.engine().runKernel(MASKED_SOFTMAX_GRAD, { y: saved[0]!, dy }, attrs) as tf.Tensor,
        tf.zerosLike(mask),
      ],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor, mask: tf.Tensor) => tf.Tensor;
  return op(scores, maskAdd);
}

type HeadLayouts = Pick<HeadMatmulAttrs, 'transposeA' | 'transposeB' | 'aSplit' | 'bSplit' | 'outSplit'>;
function headMatmul(a: tf.Tensor, b: tf.Tensor, batch: number, heads: number, l: HeadLayouts): tf.Tensor {
  const attrs: HeadMatmulAttrs = { batch, heads, ...l };
  return tf.engine().runKernel(HEAD_MATMUL, { a, b }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/**
 * Attention scores Q_h K_h^T [b, heads, s, s] straight from the query and key
 * projections [b*s, H] (heads as column blocks), and their gradients back in
 * that layout: the products tf.matMul(q, k, false, true) and its gradient
 * make, without the transposes into and out of [b, heads, s, d].
 */
function headScores(q: tf.Tensor, k: tf.Tensor, batch: number, heads: number): tf.Tensor {
  const op = tf.customGrad(((...args: unknown[]) => {
    const [qq, kk, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([qq, kk]);
    return {
      value: headMatmul(qq, kk, batch, heads, { transposeA: false, transposeB: true, aSplit: true, bSplit: true, outSplit: false }),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        headMatmul(dy, saved[1]!, batch, heads, { transposeA: false, transposeB: false, aSplit: false, bSplit: true, outSplit: true }),
        headMatmul(dy, saved[0]!, batch, heads, { transposeA: true, transposeB: false, aSplit: false, bSplit: true, outSplit: true }),
      ],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (q: tf.Tensor, k: tf.Tensor) => tf.Tensor;
  return op(q, k);
}

/** The context P_h V_h as [b*s, H] (heads as column blocks) from probs [b, heads, s, s] and the value projection [b*s, H]. */
function headContext(probs: tf.Tensor, v: tf.Tensor, batch: number, heads: number): tf.Tensor2D {
  const op = tf.customGrad(((...args: unknown[]) => {
    const [pp, vv, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([pp, vv]);
    return {
      value: headMatmul(pp, vv, batch, heads, { transposeA: false, transposeB: false, aSplit: false, bSplit: true, outSplit: true }),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
        headMatmul(dy, saved[1]!, batch, heads, { transposeA: false, transposeB: true, aSplit: true, bSplit: true, outSplit: false }),
        headMatmul(saved[0]!, dy, batch, heads, { transposeA: true, transposeB: false, aSplit: false, bSplit: true, outSplit: true }),
      ],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (p: tf.Tensor, v: tf.Tensor) => tf.Tensor2D;
  return op(probs, v);
}

/** [b*s, H] -> [b, heads, s, d] */
function splitHeads(x: tf.Tensor2D, batch: number, seq: number, heads: number): tf.Tensor4D {
  const d = x.shape[1] / heads;
  return tf.transpose(tf.reshape(x, [batch, seq, heads, d]), [0, 2, 1, 3]);
}

function attention(
  c: BertConfig,
  p: Params,
  prefix: string,
  x: tf.Tensor2D, // [b*s, H]
  maskAdd: tf.Tensor, // [b, 1, 1, s]
  batch: number,
  seq: number,
  drop: DropoutSites,
): tf.Tensor2D {
  const A = c.num_attention_heads;
  const d = c.hidden_size / A;
  const [q, k, v] = (['query', 'key', 'value'] as const).map((n) => linear(p, `${prefix}.self.${n}`, x)) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D]; // [b*s, H]
  const perHead = backendHas(HEAD_MATMUL);
  const scores = perHead ? headScores(q, k, batch, A) : tf.matMul(splitHeads(q, batch, seq, A), splitHeads(k, batch, seq, A), false, true); // [b, A, s, s]
  const probs = drop.apply(maskedSoftmax(scores, maskAdd, 1 / Math.sqrt(d)), c.attention_probs_dropout_prob);
  const merged = perHead
    ? headContext(probs, v, batch, A)
    : (tf.reshape(tf.transpose(tf.matMul(probs, splitHeads(v, batch, seq, A)), [0, 2, 1, 3]), [batch * seq, c.hidden_size]) as tf.Tensor2D); // [b*s, H]
  const projected = drop.apply(linear(p, `${prefix}.output.dense`, merged), c.hidden_dropout_prob);
  return layerNorm(p, `${prefix}.output.LayerNorm`, tf.add(projected, x), c.layer_norm_eps) as tf.Tensor2D;
}

function encoderLayer(
  c: BertConfig,
  p: Params,
  i: number,
  x: tf.Tensor2D,
  maskAdd: tf.Tensor,
  batch: number,
  seq: number,
  drop: DropoutSites,
): tf.Tensor2D {
  const prefix = `bert.encoder.layer.${i}`;
  const attended = attention(c, p, `${prefix}.attention`, x, maskAdd, batch, seq, drop);
  const inter = gelu(linear(p, `${prefix}.intermediate.dense`, attended)) as tf.Tensor2D; // [b*s, I]
  const out = drop.apply(linear(p, `${prefix}.output.dense`, inter), c.hidden_dropout_prob);
  return layerNorm(p, `${prefix}.output.LayerNorm`, tf.add(out, attended), c.layer_norm_eps) as tf.Tensor2D;
}

export function encode(c: BertConfig, p: Params, inp: EncoderInputs, opts: ForwardOptions): EncoderOutputs {
  const [batch, seq] = inp.inputIds.shape;
  const drop = new DropoutSites(opts.dropoutSeed, opts.training);
  // Additive mask as google-research/bert: 0 where attended, -10000 at padding. [b, 1, 1, s]
  const maskAdd = tf.reshape(tf.mul(tf.sub(1, tf.cast(inp.attentionMask, 'float32')), -10000), [batch, 1, 1, seq]);
  let x = embeddings(c, p, inp, drop);
  for (let i = 0; i < c.num_hidden_layers; i++) x = encoderLayer(c, p, i, x, maskAdd, batch, seq, drop);
  const sequenceOutput = tf.reshape(x, [batch, seq, c.hidden_size]) as tf.Tensor3D;
  const first = tf.reshape(tf.slice(sequenceOutput, [0, 0, 0], [batch, 1, c.hidden_size]), [batch, c.hidden_size]) as tf.Tensor2D;
  const pooledOutput = tf.tanh(linear(p, 'bert.pooler.dense', first)) as tf.Tensor2D;
  return { sequenceOutput, pooledOutput };
}
