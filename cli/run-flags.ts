/**
 * Flags shared by `bertfleet train` and `bertfleet cluster`, mapped onto the run
 * config: a `--config FILE` (JSON, any run-config key) first, then the flags on
 * top. `givenSettings` keeps only what was given (cli/train.ts validates it and,
 * on --resume, compares it with the saved config), before anything is created on disk.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { mergeConfig } from '../shared/config/run-config.js';
import { ConfigError, InputError } from '../shared/errors.js';
import { intFlag, type Options } from './args.js';
import { BACKEND_HELP, backendOptions } from './backend-flags.js';

export const runOptions: Options = {
  seed: { type: 'string' },
  output: { type: 'string' },
  model: { type: 'string' },
  'pretrain-steps': { type: 'string' },
  'finetune-steps': { type: 'string' },
  'class-weights': { type: 'string' },
  'global-batch': { type: 'string' },
  'micro-batch': { type: 'string' },
  'init-from': { type: 'string' },
  config: { type: 'string' },
  resume: { type: 'boolean' },
  corpus: { type: 'string', multiple: true },
  classification: { type: 'string' },
  vocab: { type: 'string' },
  'log-level': { type: 'string' },
  progress: { type: 'boolean' },
  'no-progress': { type: 'boolean' },
  ...backendOptions,
};

export const RUN_HELP = `  --output DIR          where the run goes (default runs/<date-time>); receives pretrained/,
                        finetuned/, metrics.json, steps.jsonl, state/, run-config.json
  --seed N              run seed (default 12345): same seed + data + global batch = same bytes
  --model NAME|FILE     preset tiny | mini | small | base, or a config.json (default tiny)
  --pretrain-steps N    pretraining steps (default 200)
  --finetune-steps N    finetuning steps (default 300)
  --class-weights MODE  none | balanced: weigh the finetuning loss by n / (k * n_class) from
                        the training split, for imbalanced classes (default none)
  --global-batch N      sequences per step, both phases (default 32)
  --micro-batch N       sequences per micro-batch; must divide the global batch (default 16)
  --init-from DIR       finetune this Hugging Face checkpoint, skipping pretraining
  --corpus FILE         pretraining text (one sentence per line, blank line between
                        documents); repeat for several files (default: embedded corpus)
  --classification FILE CSV, TSV or JSONL with text, optional text_b, label (default: embedded
                        UCI sentiment sentences)
  --vocab FILE          a vocab.txt (default: bert-base-uncased)
  --config FILE         JSON with any run-config key (see README); flags override it
  --resume              continue the run in --output from its latest valid trainer state;
                        a setting given that decides the bits and differs from the run's is refused
${BACKEND_HELP}
  --log-level LEVEL     pino level (default info); logs are JSON lines on stderr
  --no-progress         no progress bar`;

function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new InputError(`--config ${path} does not exist`);
  try {
    const raw = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not a JSON object');
    return raw as Record<string, unknown>;
  } catch (err) {
    throw new InputError(`--config ${path} is not a JSON object of run settings`, { cause: err });
  }
}

/**
 * The `tls` block a `--config` file may carry: this process's TLS files and
 * NATS credentials (paths; relative ones are taken from the file's folder).
 * It belongs to the process that reads the file (bertfleet coordinator), not
 * to the run: it is taken out before the run config is validated, so it is
 * never saved in run-config.json, never handed to workers and never compared
 * on --resume. Flags and environment variables win over it.
 */
const configTlsSchema = z
  .object({ ca: z.string().min(1), cert: z.string().min(1), key: z.string().min(1), natsCreds: z.string().min(1).optional() })
  .strict();

export interface ConfigFileSecurity {
  tlsFiles: { ca: string; cert: string; key: string };
  natsCredentialsFile?: string;
}

/** The `tls` block of the `--config` file, paths resolved; undefined without a file or a block. */
export function configFileSecurity(values: Record<string, unknown>): ConfigFileSecurity | undefined {
  const path = values['config'];
  if (typeof path !== 'string') return undefined;
  const block = readConfigFile(path)['tls'];
  if (block === undefined) return undefined;
  const r = configTlsSchema.safeParse(block);
  if (!r.success) {
    throw new ConfigError(
      r.error.issues.map((i) => `--config ${path}: tls${i.path.length > 0 ? `.${i.path.join('.')}` : ''}: ${i.message} ` +
        '(expected {"ca": FILE, "cert": FILE, "key": FILE, "natsCreds"?: FILE})'),
    );
  }
  const at = (f: string) => resolve(dirname(path), f);
  return {
    tlsFiles: { ca: at(r.data.ca), cert: at(r.data.cert), key: at(r.data.key) },
    ...(r.data.natsCreds !== undefined && { natsCredentialsFile: at(r.data.natsCreds) }),
  };
}

/** The settings the user gave (a `--config` file, then flags on top), unvalidated; absent flags are undefined. */
export interface GivenSettings {
  given: Record<string, unknown>;
  /** Where they came from, for error messages. */
  source: string;
}

export function givenSettings(values: Record<string, unknown>): GivenSettings {
  // The `tls` block is the reading process's, not the run's (configFileSecurity).
  const { tls: _processOnly, ...file } = typeof values['config'] === 'string' ? readConfigFile(values['config']) : {};
  const globalBatch = intFlag(values, 'global-batch', { min: 1 });
  const microBatch = intFlag(values, 'micro-batch', { min: 1 });
  const phase = (steps: number | undefined) => ({ steps, globalBatch, microBatch });
  const flags: Record<string, unknown> = {
    seed: intFlag(values, 'seed', { min: 0 }),
    model: values['model'],
    initFrom: values['init-from'],
    backend: values['backend'],
    blasThreads: intFlag(values, 'blas-threads', { min: 1 }),
    data: { corpus: values['corpus'], classification: values['classification'], vocab: values['vocab'] },
    pretrain: phase(intFlag(values, 'pretrain-steps', { min: 0 })),
    finetune: { ...phase(intFlag(values, 'finetune-steps', { min: 0 })), classWeights: values['class-weights'] },
  };
  return { given: mergeConfig(file, flags), source: typeof values['config'] === 'string' ? `--config ${String(values['config'])} and flags` : 'flags' };
}


export function defaultOutputDir(): string {
  const stamp = new Date().toISOString().replace(/[:T]/g, '-').replace(/\..*$/, '');
  return `runs/${stamp}`;
}
