/**
 * Inference requests: validation of a user's `input_ids` / `token_type_ids` /
 * `attention_mask` lists against the config, and the forward pass that gives
 * the four outputs of `BertForPreTraining`. Validation happens here, before any
 * tensor exists, because an out-of-range id on a GPU backend silently reads
 * zeros instead of failing.
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { encode, type Params } from './bert.js';
import type { BertConfig } from './config.js';
import { mlmLogits, nspLogits } from './heads.js';

export interface InferenceInput {
  input_ids: number[][];
  token_type_ids: number[][];
  attention_mask: number[][];
}

export interface DenseOutput {
  shape: number[];
  data: number[];
}

export interface InferenceOutput {
  last_hidden_state: DenseOutput;
  pooler_output: DenseOutput;
  prediction_logits: DenseOutput;
  seq_relationship_logits: DenseOutput;
}

function checkRows(field: string, rows: unknown, lengths: number[] | null, lo: number, hiExclusive: number, what: string): number[][] {
  if (!Array.isArray(rows) || rows.length === 0) {
    throw new InputError(`${field} must be a non-empty list of token lists, got ${Array.isArray(rows) ? 'an empty list' : typeof rows}`);
  }
  return rows.map((row, i) => {
    if (!Array.isArray(row)) throw new InputError(`${field}[${i}] must be a list of integers, got ${typeof row}`);
    if (lengths && row.length !== lengths[i]) {
      throw new InputError(`${field}[${i}] has ${row.length} entries, expected ${lengths[i]} (the length of input_ids[${i}])`);
    }
    row.forEach((v, j) => {
      if (!Number.isInteger(v) || v < lo || v >= hiExclusive) {
        throw new InputError(`${field}[${i}][${j}] is ${JSON.stringify(v)}, expected ${what}`);
      }
    });
    return row as number[];
  });
}

/** Validates raw JSON and fills the defaults (token types 0, mask 1). */
export function validateInferenceInput(raw: unknown, c: BertConfig): InferenceInput {
  if (typeof raw !== 'object' || raw === null || !('input_ids' in raw)) {
    throw new InputError('input must be a JSON object with an "input_ids" field (a list of token-id lists)');
  }
  const r = raw as Record<string, unknown>;
  const ids = checkRows('input_ids', r['input_ids'], null, 0, c.vocab_size, `a token id in [0, ${c.vocab_size - 1}] (vocab_size ${c.vocab_size})`);
  const len = ids[0]!.length;
  ids.forEach((row, i) => {
    if (row.length === 0) throw new InputError(`input_ids[${i}] is empty, expected at least one token`);
    if (row.length !== len) {
      throw new InputError(`input_ids[${i}] has ${row.length} tokens, expected ${len} like input_ids[0]: rows must have equal lengths (pad them and set attention_mask)`);
    }
    if (row.length > c.max_position_embeddings) {
      throw new InputError(`input_ids[${i}] has ${row.length} tokens, more than max_position_embeddings (${c.max_position_embeddings})`);
    }
  });
  const lengths = ids.map((row) => row.length);
  const types = r['token_type_ids'] === undefined
    ? ids.map((row) => row.map(() => 0))
    : checkRows('token_type_ids', r['token_type_ids'], lengths, 0, c.type_vocab_size, `a token type in [0, ${c.type_vocab_size - 1}]`);
  const mask = r['attention_mask'] === undefined
    ? ids.map((row) => row.map(() => 1))
    : checkRows('attention_mask', r['attention_mask'], lengths, 0, 2, '0 or 1');
  if (types.length !== ids.length) throw new InputError(`token_type_ids has ${types.length} rows, expected ${ids.length} like input_ids`);
  if (mask.length !== ids.length) throw new InputError(`attention_mask has ${mask.length} rows, expected ${ids.length} like input_ids`);
  return { input_ids: ids, token_type_ids: types, attention_mask: mask };
}

function dense(t: tf.Tensor): DenseOutput {
  return { shape: [...t.shape], data: Array.from(t.dataSync()) };
}

export function runInference(c: BertConfig, p: Params, input: InferenceInput): InferenceOutput {
  const batch = input.input_ids.length;
  const seq = input.input_ids[0]!.length;
  const outs = tf.tidy(() => {
    const { sequenceOutput, pooledOutput } = encode(c, p, {
      inputIds: tf.tensor2d(input.input_ids, [batch, seq], 'int32'),
      tokenTypeIds: tf.tensor2d(input.token_type_ids, [batch, seq], 'int32'),
      attentionMask: tf.tensor2d(input.attention_mask, [batch, seq], 'float32'),
    }, { training: false, dropoutSeed: 0 });
    const logits = tf.reshape(mlmLogits(c, p, sequenceOutput), [batch, seq, c.vocab_size]);
    return [sequenceOutput, pooledOutput, logits, nspLogits(p, pooledOutput)];
  });
  const [hidden, pooled, logits, nsp] = outs.map(dense) as [DenseOutput, DenseOutput, DenseOutput, DenseOutput];
  tf.dispose(outs);
  return { last_hidden_state: hidden, pooler_output: pooled, prediction_logits: logits, seq_relationship_logits: nsp };
}
