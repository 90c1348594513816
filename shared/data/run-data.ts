/**
 * Everything a run reads, assembled from the run config's `data` section: the
 * vocabulary and tokenizer, the pretraining cache (training documents and a
 * held-out share of documents, so no held-out sentence is ever trained on) and
 * the classification splits, encoded to fixed-size rows. Every process of a run
 * (coordinator, each worker) calls this and gets the same data and the same
 * fingerprint; the pretraining cache is built once and then only read.
 */
import { createHash } from 'node:crypto';
import type { RunConfig } from '../config/run-config.js';
import type { Logger } from '../log.js';
import type { BatchSource, ClassifyArrays, PretrainArrays, RunDatasets } from '../training/batches.js';
import { loadClassificationFile } from './classification.js';
import { encodeClassification, type ClassificationBatch } from './classification-encode.js';
import { splitClassification } from './classification-split.js';
import { DEFAULT_PRETRAIN_SOURCES, type CorpusSource } from './corpora.js';
import { prepareOrOpenPretrainCache } from './pretrain-cache.js';
import type { PretrainDataset } from './pretrain-dataset.js';
import { loadDefaultSentiment } from './sentiment-default.js';
import { createTokenizer, type Tokenizer } from './tokenizer.js';
import { loadDefaultVocab, loadVocabFile, type Vocab } from './vocab.js';

export function loadRunVocab(config: RunConfig): Vocab {
  return config.data.vocab === 'embedded' ? loadDefaultVocab() : loadVocabFile(config.data.vocab);
}

function pretrainSource(ds: PretrainDataset): BatchSource {
  return {
    size: ds.size,
    batch(indices): PretrainArrays {
      return { kind: 'pretrain', ...ds.gather(indices) };
    },
  };
}

function classifySource(enc: ClassificationBatch): BatchSource {
  const S = enc.seqLength;
  return {
    size: enc.size,
    batch(indices): ClassifyArrays {
      const n = indices.length;
      const out: ClassifyArrays = {
        kind: 'classify', size: n, seqLength: S,
        inputIds: new Int32Array(n * S), inputMask: new Int32Array(n * S), segmentIds: new Int32Array(n * S), labels: new Int32Array(n),
      };
      indices.forEach((idx, row) => {
        if (idx < 0 || idx >= enc.size) throw new RangeError(`example ${idx} out of range [0, ${enc.size})`);
        out.inputIds.set(enc.inputIds.subarray(idx * S, (idx + 1) * S), row * S);
        out.inputMask.set(enc.attentionMask.subarray(idx * S, (idx + 1) * S), row * S);
        out.segmentIds.set(enc.tokenTypeIds.subarray(idx * S, (idx + 1) * S), row * S);
        out.labels[row] = enc.labels[idx]!;
      });
      return out;
    },
  };
}

function corpusSources(config: RunConfig): readonly CorpusSource[] {
  return config.data.corpus === 'embedded' ? DEFAULT_PRETRAIN_SOURCES : config.data.corpus.map((path) => ({ kind: 'file', path }));
}

export interface LoadOptions {
  /** Skip the pretraining data (finetuning from --init-from). */
  pretraining: boolean;
  log: Logger;
  progress: boolean;
}

export interface RunData {
  vocab: Vocab;
  tokenizer: Tokenizer;
  datasets: RunDatasets;
}

export async function loadRunData(config: RunConfig, opts: LoadOptions): Promise<RunData> {
  const log = opts.log.child({ component: 'data' });
  const vocab = loadRunVocab(config);
  const tokenizer = createTokenizer(vocab);
  const d = config.data;
  const classification = d.classification === 'embedded' ? loadDefaultSentiment() : loadClassificationFile(d.classification);
  const splits = splitClassification(classification, { seed: config.seed });
  const encoded = {
    train: encodeClassification(splits.train.examples, tokenizer, d.classifyMaxSeqLength),
    validation: encodeClassification(splits.validation.examples, tokenizer, d.classifyMaxSeqLength),
    test: encodeClassification(splits.test.examples, tokenizer, d.classifyMaxSeqLength),
  };
  const truncated = encoded.train.truncated + encoded.validation.truncated + encoded.test.truncated;
  log.info({
    source: classification.source, labels: classification.labels, duplicatesDropped: classification.duplicatesDropped,
    train: encoded.train.size, validation: encoded.validation.size, test: encoded.test.size,
    truncated, maxSeqLength: d.classifyMaxSeqLength,
  }, truncated > 0 ? 'classification data loaded; texts longer than maxSeqLength were truncated' : 'classification data loaded');

  const sources: RunDatasets['sources'] = {
    'classify-train': classifySource(encoded.train),
    'classify-validation': classifySource(encoded.validation),
    'classify-test': classifySource(encoded.test),
  };
  const hash = createHash('sha256').update(vocab.fingerprint).update(JSON.stringify(classification.labels));
  for (const e of [encoded.train, encoded.validation, encoded.test]) hash.update(new Uint8Array(e.inputIds.buffer)).update(new Uint8Array(e.labels.buffer));
  if (opts.pretraining) {
    const settings = {
      max_seq_length: d.maxSeqLength, max_predictions_per_seq: d.maxPredictionsPerSeq, masked_lm_prob: d.maskedLmProb,
      short_seq_prob: d.shortSeqProb, dupe_factor: d.dupeFactor, whole_word_masking: d.wholeWordMasking, seed: config.seed,
    };
    const base = { sources: corpusSources(config), vocab, cacheDir: d.cacheDir, log, progress: opts.progress };
    const train = await prepareOrOpenPretrainCache({ ...base, settings: { ...settings, held_out: { fraction: d.heldOutFraction, part: 'train' } } });
    const heldOut = await prepareOrOpenPretrainCache({ ...base, settings: { ...settings, dupe_factor: 1, held_out: { fraction: d.heldOutFraction, part: 'heldout' } } });
    sources['pretrain'] = pretrainSource(train);
    sources['pretrain-heldout'] = pretrainSource(heldOut);
    hash.update(train.key).update(heldOut.key);
  }
  return { vocab, tokenizer, datasets: { sources, labels: classification.labels, fingerprint: hash.digest('hex').slice(0, 16) } };
}
