/**
 * The pretraining cache's manifest.json and key. The key is the sha256 of what
 * determines the examples: the cache format, the sources' identities (package
 * versions, or content hashes of user files), the tokenizer runtime version,
 * the vocab fingerprint and the settings. The manifest names the key, settings,
 * counts, record layout and every shard with its example range and sha256; it
 * is written last, so a directory without one is not a cache.
 * Knows nothing of how examples are made or read.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { RECORD_FIELDS } from './pretrain-record.js';
import { PretrainSettingsSchema, type PretrainSettings } from './pretrain-settings.js';
import type { SourceIdentity } from './corpora.js';

/** Bump when anything changes the bytes made from the same inputs. */
export const PRETRAIN_CACHE_FORMAT = 'bertfleet-pretrain-v1';
export const MANIFEST_FILE = 'manifest.json';

export interface KeyInputs {
  sources: readonly SourceIdentity[];
  tokenizerRuntime: string;
  vocabFingerprint: string;
  settings: PretrainSettings;
}

export function pretrainCacheKey(inputs: KeyInputs): string {
  const canonical = JSON.stringify({
    format: PRETRAIN_CACHE_FORMAT,
    sources: inputs.sources,
    tokenizerRuntime: inputs.tokenizerRuntime,
    vocabFingerprint: inputs.vocabFingerprint,
    settings: sortedKeys(inputs.settings),
  });
  return createHash('sha256').update(canonical).digest('hex');
}

/** The cache directory's name: a readable prefix of the key (the manifest holds all of it). */
export function pretrainCacheDirName(key: string): string {
  return `pretrain-${key.slice(0, 20)}`;
}

function sortedKeys(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

const ShardSchema = z.object({
  file: z.string().regex(/^shard-\d{5}\.bin$/),
  first: z.number().int().min(0),
  count: z.number().int().min(1),
  bytes: z.number().int().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const ManifestSchema = z.object({
  format: z.literal(PRETRAIN_CACHE_FORMAT),
  key: z.string().regex(/^[0-9a-f]{64}$/),
  settings: PretrainSettingsSchema,
  sources: z.array(z.unknown()),
  tokenizerRuntime: z.string(),
  vocab: z.object({ fingerprint: z.string(), size: z.number().int(), source: z.string() }),
  record: z.object({
    dtype: z.literal('int32'),
    endianness: z.literal('little'),
    seqLength: z.number().int().min(5),
    maxPredictions: z.number().int().min(1),
    intsPerRecord: z.number().int(),
    fields: z.array(z.string()),
  }),
  counts: z.object({
    documents: z.number().int(),
    sentences: z.number().int(),
    corpusTokens: z.number().int(),
    unknownTokens: z.number().int(),
    examples: z.number().int().min(1),
    exampleTokens: z.number().int(),
    maskedTokens: z.number().int(),
    randomNext: z.number().int(),
    shortTargets: z.number().int(),
  }),
  shards: z.array(ShardSchema).min(1),
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type ShardEntry = z.infer<typeof ShardSchema>;

export function recordDescription(seqLength: number, maxPredictions: number): Manifest['record'] {
  return {
    dtype: 'int32',
    endianness: 'little',
    seqLength,
    maxPredictions,
    intsPerRecord: 3 * seqLength + 3 * maxPredictions + 1,
    fields: [...RECORD_FIELDS],
  };
}

/** Parses manifest text; throws InputError naming the path and the first problems. */
export function parseManifest(text: string, path: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InputError(`pretraining cache manifest ${path} is not JSON`, { cause: err });
  }
  const result = ManifestSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'manifest'}: ${i.message}`);
    throw new InputError(`pretraining cache manifest ${path} is invalid: ${problems.join('; ')}`);
  }
  const m = result.data;
  let next = 0;
  for (const s of m.shards) {
    if (s.first !== next) throw new InputError(`${path}: shard ${s.file} starts at example ${s.first}, expected ${next}`);
    if (s.bytes !== s.count * m.record.intsPerRecord * 4) {
      throw new InputError(`${path}: shard ${s.file} lists ${s.bytes} bytes, expected ${s.count * m.record.intsPerRecord * 4} for ${s.count} records`);
    }
    next += s.count;
  }
  if (next !== m.counts.examples) throw new InputError(`${path}: shards hold ${next} examples, counts say ${m.counts.examples}`);
  return m;
}
