/**
 * The parameter table of a BERT model: Hugging Face names and shapes, in one
 * fixed order. Linear weights are stored as torch does, `[out, in]`, and the
 * model multiplies with `transposeB`, so checkpoints need no transposes.
 * The order of `paramSpecs` is the order of the flat parameter and gradient
 * vectors that travel between workers and the coordinator.
 * Pure: no tensors, no I/O.
 */
import type { BertConfig } from './config.js';

export type HeadKind = 'pretraining' | 'classification';

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** AdamW weight decay applies (not to LayerNorm or biases, as google-research/bert). */
  readonly decay: boolean;
  /** How a fresh parameter starts: truncated normal(initializer_range), ones or zeros. */
  readonly init: 'normal' | 'ones' | 'zeros';
}

export interface HeadOptions {
  heads: HeadKind;
  /** Number of classes; required for the classification head. */
  numLabels?: number;
}

function linear(prefix: string, out: number, inp: number): ParamSpec[] {
  return [
    { name: `${prefix}.weight`, shape: [out, inp], decay: true, init: 'normal' },
    { name: `${prefix}.bias`, shape: [out], decay: false, init: 'zeros' },
  ];
}

function layerNorm(prefix: string, size: number): ParamSpec[] {
  return [
    { name: `${prefix}.weight`, shape: [size], decay: false, init: 'ones' },
    { name: `${prefix}.bias`, shape: [size], decay: false, init: 'zeros' },
  ];
}

/** Encoder + pooler parameters, shared by every head. */
export function encoderSpecs(c: BertConfig): ParamSpec[] {
  const H = c.hidden_size;
  const specs: ParamSpec[] = [
    { name: 'bert.embeddings.word_embeddings.weight', shape: [c.vocab_size, H], decay: true, init: 'normal' },
    { name: 'bert.embeddings.position_embeddings.weight', shape: [c.max_position_embeddings, H], decay: true, init: 'normal' },
    { name: 'bert.embeddings.token_type_embeddings.weight', shape: [c.type_vocab_size, H], decay: true, init: 'normal' },
    ...layerNorm('bert.embeddings.LayerNorm', H),
  ];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `bert.encoder.layer.${i}`;
    specs.push(
      ...linear(`${p}.attention.self.query`, H, H),
      ...linear(`${p}.attention.self.key`, H, H),
      ...linear(`${p}.attention.self.value`, H, H),
      ...linear(`${p}.attention.output.dense`, H, H),
      ...layerNorm(`${p}.attention.output.LayerNorm`, H),
      ...linear(`${p}.intermediate.dense`, c.intermediate_size, H),
      ...linear(`${p}.output.dense`, H, c.intermediate_size),
      ...layerNorm(`${p}.output.LayerNorm`, H),
    );
  }
  specs.push(...linear('bert.pooler.dense', H, H));
  return specs;
}

/** MLM (decoder tied to the word embeddings, so only its bias is a parameter) and NSP heads. */
export function pretrainingHeadSpecs(c: BertConfig): ParamSpec[] {
  const H = c.hidden_size;
  return [
    { name: 'cls.predictions.bias', shape: [c.vocab_size], decay: false, init: 'zeros' },
    ...linear('cls.predictions.transform.dense', H, H),
    ...layerNorm('cls.predictions.transform.LayerNorm', H),
    ...linear('cls.seq_relationship', 2, H),
  ];
}

export function classificationHeadSpecs(c: BertConfig, numLabels: number): ParamSpec[] {
  return linear('classifier', numLabels, c.hidden_size);
}

export function paramSpecs(c: BertConfig, opts: HeadOptions): ParamSpec[] {
  if (opts.heads === 'pretraining') return [...encoderSpecs(c), ...pretrainingHeadSpecs(c)];
  if (opts.numLabels === undefined || opts.numLabels < 2) {
    throw new RangeError(`classification head needs numLabels >= 2, got ${opts.numLabels}`);
  }
  return [...encoderSpecs(c), ...classificationHeadSpecs(c, opts.numLabels)];
}

export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Offsets of each parameter in the flat vector, in spec order. */
export function flatLayout(specs: readonly ParamSpec[]): { offsets: number[]; total: number } {
  const offsets: number[] = [];
  let total = 0;
  for (const s of specs) {
    offsets.push(total);
    total += numElements(s.shape);
  }
  return { offsets, total };
}
