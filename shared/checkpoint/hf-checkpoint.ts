/**
 * Hugging Face checkpoint directories: `config.json` + `model.safetensors`, with
 * the names of `BertForPreTraining` / `BertForSequenceClassification`. Loading
 * accepts legacy names (`LayerNorm.gamma`/`beta`) and checkpoints saved without
 * the `bert.` prefix (a bare `BertModel`), and checks every tensor against the
 * parameter table of the config: a name or shape that does not fit is an error
 * naming it, expected vs got. Saving writes each file atomically and fsyncs
 * the files and folders, so a saved checkpoint survives a power loss.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors.js';
import { fsyncDir, writeFileAtomic } from '../fs-atomic.js';
import { architectureOf, parseBertConfig, type BertConfig } from '../model/config.js';
import { numElements, type ParamSpec } from '../model/params.js';
import { parseSafetensors, serializeSafetensors, type NamedTensor } from './safetensors.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';

/** Buffers and tied copies that Hugging Face files may carry and that are not parameters. */
const IGNORED = [/position_ids$/, /^cls\.predictions\.decoder\.weight$/, /^cls\.predictions\.decoder\.bias$/];

export interface LoadedCheckpoint {
  config: BertConfig;
  /** Parameters by canonical (BertForPreTraining-style) name. */
  tensors: Map<string, NamedTensor>;
  /** Class names by id, from `id2label`, when the checkpoint has a classification head. */
  labels?: string[];
}

/** Maps a stored name to the canonical name bertfleet uses. */
export function canonicalName(name: string): string {
  let n = name.replace(/\.gamma$/, '.weight').replace(/\.beta$/, '.bias');
  if (/^(embeddings|encoder|pooler)\./.test(n)) n = `bert.${n}`;
  return n;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CheckpointError(`cannot read ${path}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${path} is not valid JSON`, { cause: err });
  }
}

function labelsOf(raw: Record<string, unknown>): string[] | undefined {
  const id2label = raw['id2label'] as Record<string, string> | undefined;
  const isClassifier = Array.isArray(raw['architectures']) && (raw['architectures'] as string[]).includes('BertForSequenceClassification');
  if (!id2label || !isClassifier) return undefined;
  const n = Object.keys(id2label).length;
  return Array.from({ length: n }, (_, i) => {
    const label = id2label[String(i)];
    if (label === undefined) throw new CheckpointError(`config.json id2label has no entry for id ${i} (ids must be 0..${n - 1})`);
    return label;
  });
}

export function loadHfCheckpoint(dir: string): LoadedCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new CheckpointError(`checkpoint directory ${dir} does not exist (expected a folder with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  }
  const cfgPath = join(dir, CONFIG_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);
  for (const p of [cfgPath, weightsPath]) {
    if (!existsSync(p)) throw new CheckpointError(`checkpoint ${dir} has no ${p.slice(dir.length + 1)}`);
  }
  const raw = readJson(cfgPath) as Record<string, unknown>;
  let config: BertConfig;
  try {
    config = parseBertConfig(raw, cfgPath);
  } catch (err) {
    if (err instanceof ConfigError) throw new CheckpointError(err.message, { cause: err });
    throw err;
  }
  const parsed = parseSafetensors(readFileSync(weightsPath), weightsPath, (n) => IGNORED.some((r) => r.test(n)));
  const tensors = new Map<string, NamedTensor>();
  for (const [name, t] of parsed.tensors) {
    if (IGNORED.some((r) => r.test(name))) continue;
    const canon = canonicalName(name);
    if (tensors.has(canon)) throw new CheckpointError(`${weightsPath}: ${name} and another tensor both map to ${canon}`);
    tensors.set(canon, t);
  }
  const labels = labelsOf(raw);
  return labels ? { config, tensors, labels } : { config, tensors };
}

/**
 * Picks the parameters of `specs` out of a loaded checkpoint, checking shapes.
 * Names in the checkpoint that fit none of the specs are errors unless they
 * belong to a head the caller drops (`dropPrefixes`); specs whose names start
 * with one of `optionalPrefixes` may be missing (e.g. a fresh classifier).
 */
export function selectParams(
  ckpt: LoadedCheckpoint,
  specs: readonly ParamSpec[],
  opts: { optionalPrefixes?: string[]; dropPrefixes?: string[]; source?: string } = {},
): Map<string, Float32Array> {
  const source = opts.source ?? 'checkpoint';
  const byName = new Map(specs.map((s) => [s.name, s]));
  const problems: string[] = [];
  for (const name of ckpt.tensors.keys()) {
    if (!byName.has(name) && !(opts.dropPrefixes ?? []).some((p) => name.startsWith(p))) {
      problems.push(`tensor ${name} is not a parameter of this BERT config`);
    }
  }
  const out = new Map<string, Float32Array>();
  for (const s of specs) {
    const t = ckpt.tensors.get(s.name);
    if (!t) {
      if (!(opts.optionalPrefixes ?? []).some((p) => s.name.startsWith(p))) problems.push(`tensor ${s.name} is missing`);
      continue;
    }
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      problems.push(`tensor ${s.name} has shape [${t.shape}], expected [${s.shape}] from the config`);
      continue;
    }
    out.set(s.name, t.data);
  }
  if (problems.length > 0) {
    throw new CheckpointError(`${source} does not fit the config:\n  - ${problems.slice(0, 20).join('\n  - ')}${problems.length > 20 ? `\n  - … and ${problems.length - 20} more` : ''}`);
  }
  return out;
}

export interface SaveOptions {
  config: BertConfig;
  specs: readonly ParamSpec[];
  values: ReadonlyMap<string, Float32Array>;
  /** Class names by id; present for a classification model. */
  labels?: readonly string[];
}

export function saveHfCheckpoint(dir: string, opts: SaveOptions): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true });
    // The new folder's name is on disk too, not only its files (writeFileAtomic fsyncs the folder itself).
    fsyncDir(dirname(dir));
  }
  const entries: [string, NamedTensor][] = opts.specs.map((s) => {
    const data = opts.values.get(s.name);
    if (!data) throw new CheckpointError(`cannot save ${dir}: parameter ${s.name} has no value`);
    if (data.length !== numElements(s.shape)) {
      throw new CheckpointError(`cannot save ${dir}: parameter ${s.name} has ${data.length} values, expected ${numElements(s.shape)}`);
    }
    return [s.name, { shape: s.shape, data }];
  });
  const labels = opts.labels;
  const config: Record<string, unknown> = {
    architectures: [labels ? 'BertForSequenceClassification' : 'BertForPreTraining'],
    model_type: 'bert',
    ...architectureOf(opts.config),
    torch_dtype: 'float32',
  };
  if (labels) {
    config['num_labels'] = labels.length;
    config['id2label'] = Object.fromEntries(labels.map((l, i) => [String(i), l]));
    config['label2id'] = Object.fromEntries(labels.map((l, i) => [l, i]));
  }
  // Weights first, config last: a directory with a config always has its weights.
  writeFileAtomic(join(dir, WEIGHTS_FILE), serializeSafetensors(entries, { format: 'pt' }));
  writeFileAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
}
