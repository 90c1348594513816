/**
 * Names and attributes of the kernels bertfleet adds to tfjs (not tfjs ops):
 * a backend may register them, the model calls them through
 * `tf.engine().runKernel` when the active backend has them and otherwise
 * computes the same bytes with stock ops. Pure constants and types.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * The version of what these kernels (and the model's stock-op fallbacks)
 * compute, bit for bit: bumped whenever a change gives other bytes. It is part
 * of the backend fingerprint (select.ts), so workers running different kernel
 * code are refused at registration instead of computing different gradients.
 * 2: native LayerNorm, masked softmax, fused softmax cross-entropy and GELU.
 */
export const KERNELS_VERSION = 2;

/** A dropout keep mask: no inputs; out[i] = scale when fmix32(seed + i * 0x9e3779b9) >= threshold, else 0 (shared/model/dropout.ts). */
export const DROPOUT_MASK = 'BertfleetDropoutMask';
export interface DropoutMaskAttrs {
  shape: number[];
  /** uint32 site seed. */
  seed: number;
  /** floor(rate * 2^32). */
  threshold: number;
  /** 1 / (1 - rate); stored as float32. */
  scale: number;
}

/** x * dropoutMask: input {x}, the mask's attrs (its shape is x's); the same bytes as tf.mul(x, mask). */
export const DROPOUT_APPLY = 'BertfleetDropoutApply';

/**
 * Softmax cross-entropy with integer labels: inputs {logits [n, C] float32, labels [n] int32};
 * outputs [probs [n, C], loss [n] = -log(max(probs[label], 1e-37)), argmax [n] int32 of the logits].
 */
export const SOFTMAX_XENT = 'BertfleetSoftmaxXent';
/** Its gradient: inputs {probs, labels, dy [n]}; output (probs - onehot(labels)) * dy[row]. */
export const SOFTMAX_XENT_GRAD = 'BertfleetSoftmaxXentGrad';

/**
 * Exact GELU 0.5 x (1 + erf(x / sqrt 2)): input {x}; outputs [y, dydx] with
 * dydx = GELU'(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi),
 * computed in the same pass (it shares erf), so the backward pass is dy * dydx.
 */
export const GELU = 'BertfleetGelu';

/**
 * LayerNorm over the last axis: inputs {x [..., w], gamma [w], beta [w]}, attr {eps};
 * outputs [y (x's shape), mean [rows], rstd [rows]] with rows = size / w.
 */
export const LAYER_NORM = 'BertfleetLayerNorm';
export interface LayerNormAttrs {
  eps: number;
}
/** Its gradient: inputs {x, gamma, mean, rstd, dy}; outputs [dx, dgamma [w], dbeta [w]]. */
export const LAYER_NORM_GRAD = 'BertfleetLayerNormGrad';

/**
 * Attention's softmax(x * scale + mask) over the last axis: inputs {x [b, ..., n], mask (b x n
 * elements, additive)}, attr {scale}; output y (x's shape).
 */
export const MASKED_SOFTMAX = 'BertfleetMaskedSoftmax';
export interface MaskedSoftmaxAttrs {
  scale: number;
}
/** Its gradient with respect to x: inputs {y, dy}, attr {scale}; output scale * y * (dy - sum(dy * y)). */
export const MASKED_SOFTMAX_GRAD = 'BertfleetMaskedSoftmaxGrad';

/**
 * Attention's per-head products without transposes: inputs {a, b}, attrs
 * HeadMatmulAttrs; output C[b,h] = op(A[b,h]) @ op(B[b,h]) for every batch item
 * and head, in the layout `outSplit` names. A split operand is [batch*rows,
 * heads*cols] (head h is columns [h*cols, (h+1)*cols), as a dense layer's
 * [tokens, hidden] output holds the heads); a packed one is [batch, heads, rows, cols].
 */
export const HEAD_MATMUL = 'BertfleetHeadMatmul';
export interface HeadMatmulAttrs {
  batch: number;
  heads: number;
  transposeA: boolean;
  transposeB: boolean;
  aSplit: boolean;
  bSplit: boolean;
  outSplit: boolean;
}

/** True when the active backend registered `kernelName`. */
export function backendHas(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) != null;
}
