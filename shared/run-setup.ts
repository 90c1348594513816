/**
 * What every process of a run does before its first step: resolve the model's
 * architecture (preset, config.json, or the --init-from checkpoint's), load the
 * run's data, and check they fit each other (vocabulary sizes). `train`,
 * `cluster` and the coordinator call it from cli/; a worker calls it in its
 * compute thread. Any problem is reported before an output folder is touched.
 *
 * Knows nothing of flags, processes or threads: it is given the run config.
 */
import { existsSync, readFileSync } from 'node:fs';
import { loadHfCheckpoint } from './checkpoint/hf-checkpoint.js';
import type { RunConfig } from './config/run-config.js';
import { loadRunData, type RunData } from './data/run-data.js';
import { InputError } from './errors.js';
import type { Logger } from './log.js';
import { isPresetName, parseBertConfig, presetConfig, type BertConfig } from './model/config.js';

export function resolveModel(config: RunConfig): BertConfig {
  if (config.initFrom !== null) return loadHfCheckpoint(config.initFrom).config;
  if (isPresetName(config.model)) return presetConfig(config.model);
  if (!existsSync(config.model)) {
    throw new InputError(`--model ${config.model} is neither a preset (tiny, mini, small, base) nor an existing config.json`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(config.model, 'utf8'));
  } catch (err) {
    throw new InputError(`--model ${config.model} is not valid JSON`, { cause: err });
  }
  return parseBertConfig(raw, config.model);
}

export async function prepareRun(config: RunConfig, log: Logger, progress: boolean): Promise<{ bert: BertConfig; data: RunData }> {
  const bert = resolveModel(config);
  const data = await loadRunData(config, { pretraining: config.initFrom === null, log, progress });
  if (bert.vocab_size !== data.vocab.tokens.length) {
    const what = config.initFrom !== null ? `--init-from ${config.initFrom}` : `--model ${config.model}`;
    throw new InputError(
      `${what} has vocab_size ${bert.vocab_size}, but the tokenizer's vocabulary has ${data.vocab.tokens.length} tokens; use the checkpoint's own vocab.txt (--vocab) or a model with vocab_size ${data.vocab.tokens.length}`,
    );
  }
  if (config.data.maxSeqLength > bert.max_position_embeddings || config.data.classifyMaxSeqLength > bert.max_position_embeddings) {
    throw new InputError(`sequence length (${Math.max(config.data.maxSeqLength, config.data.classifyMaxSeqLength)}) exceeds the model's max_position_embeddings (${bert.max_position_embeddings})`);
  }
  return { bert, data };
}
