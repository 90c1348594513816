/**
 * Prepares the binary sharded pretraining cache once and opens it afterwards.
 * `prepareOrOpenPretrainCache` computes the key, opens
 * `<cacheDir>/pretrain-<key prefix>/` when its manifest is valid, and otherwise
 * builds it: read sources → tokenize → make examples (pretraining-examples.ts)
 * → write shards of fixed-size records (pretrain-record.ts), each atomically,
 * then the manifest, atomically and last. Logs counts; shows a progress bar on
 * a terminal. Knows nothing of models, training or the network.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import type { Logger } from '../log.js';
import { removeStaleTmpFiles, writeFileAtomic } from '../fs-atomic.js';
import { DEFAULT_PRETRAIN_SOURCES, assertNspPossible, describeSource, readCorpus, sourceIdentity, type CorpusSource, type Document, type SourceIdentity } from './corpora.js';
import { countTokenized, tokenizeDocuments, type TokenizedCorpus } from './corpus-tokenize.js';
import { selectHeldOutPart } from './held-out.js';
import { installedPackage } from './packages.js';
import { openPretrainCache, openPretrainCacheByKey, type PretrainDataset } from './pretrain-dataset.js';
import { MANIFEST_FILE, PRETRAIN_CACHE_FORMAT, pretrainCacheDirName, pretrainCacheKey, recordDescription, type Manifest, type ShardEntry } from './pretrain-manifest.js';
import { recordInts, writeRecord } from './pretrain-record.js';
import { parsePretrainSettings, type PretrainSettings, type PretrainSettingsInput } from './pretrain-settings.js';
import { createPretrainingInstances, maskingRulesFor, type PretrainingInstances } from './pretraining-examples.js';
import { createProgress, type Progress } from './progress.js';
import { createTokenizer } from './tokenizer.js';
import type { Vocab } from './vocab.js';

export interface PrepareOptions {
  /** Default: the embedded SOTU + Moby-Dick + Brown corpus. */
  sources?: readonly CorpusSource[];
  vocab: Vocab;
  settings?: PretrainSettingsInput | PretrainSettings;
  /** Root of caches, e.g. `.cache/bertfleet`; the cache goes in `pretrain-<key prefix>/` inside. */
  cacheDir: string;
  log: Logger;
  /** Progress bar on stderr when it is a terminal (default true). */
  progress?: boolean;
  /** Examples per shard file (default 16384). */
  examplesPerShard?: number;
}

/** Tmp files younger than this may belong to a live writer of the same cache. */
const STALE_TMP_MS = 60 * 60 * 1000;

export function pretrainTokenizerRuntime(): string {
  const pkg = installedPackage('@huggingface/tokenizers');
  return `${pkg.name}@${pkg.version}`;
}

/** The key and directory for these inputs, without building anything. */
export function locatePretrainCache(opts: Pick<PrepareOptions, 'sources' | 'vocab' | 'settings' | 'cacheDir'>): CacheLocation {
  const settings = parsePretrainSettings(opts.settings ?? {});
  const sources = opts.sources ?? DEFAULT_PRETRAIN_SOURCES;
  if (sources.length === 0) throw new InputError('no pretraining corpus sources given: expected at least one');
  const identities = sources.map(sourceIdentity);
  const key = pretrainCacheKey({
    sources: identities,
    tokenizerRuntime: pretrainTokenizerRuntime(),
    vocabFingerprint: opts.vocab.fingerprint,
    settings,
  });
  return { key, dir: join(opts.cacheDir, pretrainCacheDirName(key)), settings, identities };
}

export interface CacheLocation {
  key: string;
  dir: string;
  settings: PretrainSettings;
  identities: SourceIdentity[];
}

export async function prepareOrOpenPretrainCache(opts: PrepareOptions): Promise<PretrainDataset> {
  const log = opts.log.child({ component: 'pretrain-cache' });
  const location = locatePretrainCache(opts);
  const { key, dir } = location;
  if (existsSync(join(dir, MANIFEST_FILE))) {
    try {
      const dataset = openPretrainCacheByKey(opts.cacheDir, key);
      log.info({ dir, examples: dataset.size }, 'pretraining cache opened');
      return dataset;
    } catch (err) {
      log.warn({ err, dir }, 'pretraining cache unusable, rebuilding');
    }
  }
  buildPretrainCache({ ...opts, ...location, log });
  return openPretrainCache(dir);
}

type BuildArgs = Omit<PrepareOptions, 'settings'> & CacheLocation;

function buildPretrainCache(args: BuildArgs): void {
  const { log, settings, dir } = args;
  const startedMs = Date.now();
  const sources = args.sources ?? DEFAULT_PRETRAIN_SOURCES;
  const progress = createProgress(args.progress ?? true);
  mkdirSync(dir, { recursive: true });
  // An old manifest goes first: a crash during the rebuild must not leave it
  // vouching for half-rewritten shards.
  rmSync(join(dir, MANIFEST_FILE), { force: true });
  removeStaleTmpFiles(dir, STALE_TMP_MS);
  try {
    const part = settings.held_out?.part ?? 'all';
    const documents: Document[] = [];
    progress.stage(`data ${part}: read`, sources.length, 'sources');
    for (const [i, source] of sources.entries()) {
      const docs = readCorpus(source);
      log.info({ source: describeSource(source), documents: docs.length }, 'corpus read');
      for (const doc of docs) documents.push(doc);
      progress.update(i + 1);
    }
    progress.stage(`data ${part}: tokenize`, documents.length, 'documents');
    const tokenizer = createTokenizer(args.vocab);
    const whole = tokenizeDocuments(documents, tokenizer, (done) => progress.update(done));
    // The whole corpus first: "no two-sentence document" is the user's problem to hear about, not the split's.
    assertNspPossible(whole.documents.map((d) => d.length), sources.map(describeSource).join(' + '));
    const corpus = settings.held_out
      ? countTokenized(selectHeldOutPart(whole.documents, settings.held_out, settings.seed), args.vocab.specialIds.unk)
      : whole;
    const what = sources.map(describeSource).join(' + ') + (settings.held_out ? ` (${settings.held_out.part} part)` : '');
    assertNspPossible(corpus.documents.map((d) => d.length), what);
    // Document visits: each document is visited dupe_factor times.
    progress.stage(`data ${part}: examples`, corpus.documents.length * settings.dupe_factor, 'documents');
    const made = createPretrainingInstances(corpus.documents, settings, maskingRulesFor(args.vocab, settings), (done) =>
      progress.update(done),
    );
    const shards = writeShards(dir, made, settings, args.examplesPerShard ?? 16384, progress, part);
    const manifest = manifestFor(args, corpus, made, shards);
    writeFileAtomic(join(dir, MANIFEST_FILE), Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    progress.stop();
    log.info(
      {
        dir,
        part: settings.held_out?.part ?? 'all',
        documents: corpus.documents.length,
        sentences: corpus.sentences,
        tokens: corpus.tokens,
        unkRate: corpus.tokens > 0 ? corpus.unknownTokens / corpus.tokens : 0,
        examples: made.stats.instances,
        exampleTokens: made.stats.tokens,
        randomNextRate: made.stats.randomNext / made.stats.instances,
        shards: shards.length,
        bytes: shards.reduce((n, s) => n + s.bytes, 0),
        durationMs: Date.now() - startedMs,
      },
      'pretraining cache built',
    );
  } finally {
    progress.stop();
  }
}

function writeShards(dir: string, made: PretrainingInstances, settings: PretrainSettings, perShard: number, progress: Progress, part: string): ShardEntry[] {
  const shape = { seqLength: settings.max_seq_length, maxPredictions: settings.max_predictions_per_seq };
  const ints = recordInts(shape);
  const total = made.order.length;
  const shards: ShardEntry[] = [];
  progress.stage(`data ${part}: shards`, total, 'examples');
  for (let first = 0; first < total; first += perShard) {
    const count = Math.min(perShard, total - first);
    const data = new Int32Array(count * ints);
    for (let r = 0; r < count; r++) writeRecord(data, r * ints, made.store.get(made.order[first + r]!), shape);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (endianness() === 'BE') bytes.swap32(); // records are little-endian on disk
    const file = `shard-${String(shards.length).padStart(5, '0')}.bin`;
    writeFileAtomic(join(dir, file), bytes);
    shards.push({ file, first, count, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    progress.update(first + count);
  }
  return shards;
}

function manifestFor(args: BuildArgs, corpus: TokenizedCorpus, made: PretrainingInstances, shards: ShardEntry[]): Manifest {
  const { settings, vocab } = args;
  return {
    format: PRETRAIN_CACHE_FORMAT,
    key: args.key,
    settings: { ...settings },
    sources: args.identities,
    tokenizerRuntime: pretrainTokenizerRuntime(),
    vocab: { fingerprint: vocab.fingerprint, size: vocab.size, source: vocab.source },
    record: recordDescription(settings.max_seq_length, settings.max_predictions_per_seq),
    counts: {
      documents: corpus.documents.length,
      sentences: corpus.sentences,
      corpusTokens: corpus.tokens,
      unknownTokens: corpus.unknownTokens,
      examples: made.stats.instances,
      exampleTokens: made.stats.tokens,
      maskedTokens: made.stats.maskedTokens,
      randomNext: made.stats.randomNext,
      shortTargets: made.stats.shortTargets,
    },
    shards,
  };
}
