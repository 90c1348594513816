/**
 * The BERT architecture config, with Hugging Face `BertConfig` field names so a
 * `config.json` moves between bertfleet and the rest of the ecosystem as is.
 * It is kept apart from run settings (data, steps, cluster) as
 * google-research/bert keeps `bert_config.json` apart from its flags.
 * Pure: parsing and validation only, no file access.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

const positiveInt = z.number().int().positive();
const probability = z.number().min(0).lt(1);

export const bertConfigSchema = z
  .object({
    vocab_size: positiveInt,
    hidden_size: positiveInt,
    num_hidden_layers: positiveInt,
    num_attention_heads: positiveInt,
    intermediate_size: positiveInt,
    hidden_act: z.enum(['gelu']).default('gelu'),
    hidden_dropout_prob: probability.default(0.1),
    attention_probs_dropout_prob: probability.default(0.1),
    max_position_embeddings: positiveInt.default(512),
    type_vocab_size: positiveInt.default(2),
    initializer_range: z.number().positive().default(0.02),
    layer_norm_eps: z.number().positive().default(1e-12),
    pad_token_id: z.number().int().nonnegative().default(0),
  })
  // Hugging Face configs carry many more keys (architectures, torch_dtype, id2label, ...): keep them.
  .loose()
  .superRefine((c, ctx) => {
    if (c.hidden_size % c.num_attention_heads !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['hidden_size'],
        message: `hidden_size (${c.hidden_size}) is not a multiple of num_attention_heads (${c.num_attention_heads})`,
      });
    }
  });

export type BertConfig = z.infer<typeof bertConfigSchema>;

/** Presets after Google's BERT miniatures: vocab 30522, intermediate 4×hidden, 512 positions. */
const PRESET_SHAPES = {
  tiny: { num_hidden_layers: 2, hidden_size: 128, num_attention_heads: 2 },
  mini: { num_hidden_layers: 4, hidden_size: 256, num_attention_heads: 4 },
  small: { num_hidden_layers: 4, hidden_size: 512, num_attention_heads: 8 },
  base: { num_hidden_layers: 12, hidden_size: 768, num_attention_heads: 12 },
} as const;

export type PresetName = keyof typeof PRESET_SHAPES;
export const PRESET_NAMES = Object.keys(PRESET_SHAPES) as PresetName[];

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESET_SHAPES, name);
}

export function presetConfig(name: PresetName, overrides: Partial<BertConfig> = {}): BertConfig {
  const shape = PRESET_SHAPES[name];
  return parseBertConfig({
    vocab_size: 30522,
    intermediate_size: 4 * shape.hidden_size,
    max_position_embeddings: 512,
    ...shape,
    ...overrides,
  });
}

/** Validates a parsed config.json; every problem is listed, nothing is silently repaired. */
export function parseBertConfig(raw: unknown, source = 'config'): BertConfig {
  const result = bertConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((i) => {
        const field = i.path.join('.') || '(root)';
        return `${source}: ${field}: ${i.message}`;
      }),
    );
  }
  return Object.freeze(result.data);
}

/** The architecture fields only (no Hugging Face extras), in a fixed key order. */
export function architectureOf(c: BertConfig): Record<string, number | string> {
  return {
    vocab_size: c.vocab_size,
    hidden_size: c.hidden_size,
    num_hidden_layers: c.num_hidden_layers,
    num_attention_heads: c.num_attention_heads,
    intermediate_size: c.intermediate_size,
    hidden_act: c.hidden_act,
    hidden_dropout_prob: c.hidden_dropout_prob,
    attention_probs_dropout_prob: c.attention_probs_dropout_prob,
    max_position_embeddings: c.max_position_embeddings,
    type_vocab_size: c.type_vocab_size,
    initializer_range: c.initializer_range,
    layer_norm_eps: c.layer_norm_eps,
    pad_token_id: c.pad_token_id,
  };
}

/** A short stable hash of the architecture: workers must agree on it to join a run. */
export function configFingerprint(c: BertConfig): string {
  return createHash('sha256').update(JSON.stringify(architectureOf(c))).digest('hex').slice(0, 16);
}
