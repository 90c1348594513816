/**
 * The data layer's public surface: vocabulary, tokenizer, corpora, pretraining
 * examples and their sharded cache, classification data. Coordinator, worker
 * and CLI import from here; nothing here imports them.
 */
export { Rng, type RngState } from './rng.js';
export {
  BERT_BASE_UNCASED,
  SPECIAL_TOKENS,
  convertBertTokenizerVocab,
  loadDefaultVocab,
  loadVocabFile,
  parseVocabText,
  type SpecialIds,
  type Vocab,
} from './vocab.js';
export { buildTokenizerConfig, buildTokenizerJson, createTokenizer, type Tokenizer } from './tokenizer.js';
export { splitSentences } from './sentence-split.js';
export {
  DEFAULT_PRETRAIN_SOURCES,
  assertNspPossible,
  describeSource,
  parseCorpusText,
  readCorpus,
  sourceIdentity,
  type CorpusSource,
  type Document,
  type EmbeddedCorpusName,
  type SourceIdentity,
} from './corpora.js';
export { tokenizeDocuments, type TokenizedCorpus } from './corpus-tokenize.js';
export { PretrainSettingsSchema, parsePretrainSettings, type PretrainSettings, type PretrainSettingsInput } from './pretrain-settings.js';
export { createMaskedLmPredictions, roundHalfEven, type MaskedLm, type MaskingRules } from './masking.js';
export {
  createPretrainingInstances,
  maskingRulesFor,
  truncateSeqPair,
  type ExampleStats,
  type PretrainingInstances,
  type TokenizedDocument,
} from './pretraining-examples.js';
export { RECORD_FIELDS, recordInts, type PretrainBatch } from './pretrain-record.js';
export { PRETRAIN_CACHE_FORMAT, type Manifest } from './pretrain-manifest.js';
export { openPretrainCache, openPretrainCacheByKey, type OpenOptions, type PretrainDataset } from './pretrain-dataset.js';
export { locatePretrainCache, prepareOrOpenPretrainCache, type CacheLocation, type PrepareOptions } from './pretrain-cache.js';
export { selectHeldOutPart, type HeldOutChoice } from './held-out.js';
export {
  DEFAULT_COLUMNS,
  labelMapJson,
  loadClassificationFile,
  sortLabels,
  type ClassificationColumns,
  type ClassificationData,
  type ClassificationExample,
  type ClassificationFormat,
} from './classification.js';
export { loadDefaultSentiment } from './sentiment-default.js';
export { splitClassification, type ClassificationSplits, type SplitOptions } from './classification-split.js';
export { encodeClassification, type ClassificationBatch } from './classification-encode.js';
