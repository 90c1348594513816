/**
 * Settings for making pretraining examples, named and defaulted as the flags of
 * google-research/bert's create_pretraining_data.py (max_seq_length 128,
 * max_predictions_per_seq 20, masked_lm_prob 0.15, short_seq_prob 0.1,
 * dupe_factor, do_whole_word_mask, random_seed 12345), plus an optional
 * held-out share of documents. One zod schema; parsing
 * lists every problem with the field and the value, and returns a frozen object.
 * This file knows nothing of corpora, tokenizers or files.
 */
import { z } from 'zod';
import { ConfigError } from '../errors.js';

export const PretrainSettingsSchema = z
  .object({
    /** Hard limit on [CLS] A [SEP] B [SEP]; at least 5 so that A and B get a token each. */
    max_seq_length: z.number().int().min(5).max(4096).default(128),
    max_predictions_per_seq: z.number().int().min(1).default(20),
    masked_lm_prob: z.number().gt(0).max(1).default(0.15),
    short_seq_prob: z.number().min(0).max(1).default(0.1),
    /** How many times each document is used, each time with different masks (the Python default is 10; 5 here). */
    dupe_factor: z.number().int().min(1).max(100).default(5),
    whole_word_masking: z.boolean().default(false),
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(12345),
    /**
     * Not in the Python: keep a seeded share of whole documents apart for
     * held-out MLM/NSP evaluation. The same fraction and seed give the same
     * partition whatever the other settings, so `part: 'train'` and
     * `part: 'heldout'` never share a document (see held-out.ts).
     */
    held_out: z
      .object({ fraction: z.number().gt(0).lt(0.5), part: z.enum(['train', 'heldout']) })
      .strict()
      .nullable()
      .default(null),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.max_predictions_per_seq > s.max_seq_length - 3) {
      ctx.addIssue({
        code: 'custom',
        path: ['max_predictions_per_seq'],
        message: `max_predictions_per_seq (${s.max_predictions_per_seq}) exceeds the ${s.max_seq_length - 3} maskable positions of max_seq_length (${s.max_seq_length}) - 3`,
      });
    }
  });

export type PretrainSettings = Readonly<z.infer<typeof PretrainSettingsSchema>>;
export type PretrainSettingsInput = z.input<typeof PretrainSettingsSchema>;

/** Validates and completes settings; throws ConfigError listing every problem. */
export function parsePretrainSettings(input: unknown = {}): PretrainSettings {
  const result = PretrainSettingsSchema.safeParse(input ?? {});
  if (!result.success) throw new ConfigError(describeIssues(result.error.issues, input));
  return Object.freeze(result.data);
}

/** zod issues as "field: message (got value)" lines. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  return issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join('.') : 'settings';
    if (issue.code === 'custom') return `${field}: ${issue.message}`;
    const got = valueAt(input, issue.path);
    return `${field}: ${issue.message}${got === undefined ? '' : ` (got ${JSON.stringify(got)})`}`;
  });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = input;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}
