/**
 * `bertfleet infer --model DIR --input IN.json --output OUT.json`: runs a Hugging
 * Face-layout checkpoint on token ids and writes the four BertForPreTraining
 * outputs, each `{shape, data}` with `data` flat and row-major.
 */
import { readFileSync } from 'node:fs';
import { loadHfCheckpoint, selectParams } from '../shared/checkpoint/hf-checkpoint.js';
import { InputError } from '../shared/errors.js';
import { writeFileAtomic } from '../shared/fs-atomic.js';
import { createRootLogger } from '../shared/log.js';
import { runInference, validateInferenceInput } from '../shared/model/inference.js';
import { disposeParams, paramsToTensors } from '../shared/model/param-tensors.js';
import { paramSpecs } from '../shared/model/params.js';
import { parseFlags, requiredString } from './args.js';
import { BACKEND_HELP, backendChoice, backendOptions, startBackend } from './backend-flags.js';

const HELP = `usage: bertfleet infer --model DIR --input IN.json --output OUT.json [options]

  --model DIR           Hugging Face checkpoint folder (config.json + model.safetensors)
  --input IN.json       {"input_ids": [[...], ...], "token_type_ids"?: ..., "attention_mask"?: ...}
  --output OUT.json     last_hidden_state, pooler_output, prediction_logits, seq_relationship_logits
${BACKEND_HELP}
  --log-level LEVEL     pino level for the log on stderr (default warn)`;

function readInput(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError(`cannot read --input ${path}`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(`--input ${path} is not valid JSON`, { cause: err });
  }
}

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    model: { type: 'string' },
    input: { type: 'string' },
    output: { type: 'string' },
    'log-level': { type: 'string' },
    ...backendOptions,
  }, HELP);
  if (!values) return 0;
  const modelDir = requiredString(values, 'model');
  const inputPath = requiredString(values, 'input');
  const outputPath = requiredString(values, 'output');
  const log = createRootLogger({ service: 'infer', level: (values['log-level'] as string) ?? 'warn', fd: 2 });
  const choice = backendChoice(values);
  // Validate everything the user gave before spending time on a backend.
  const ckpt = loadHfCheckpoint(modelDir);
  const input = validateInferenceInput(readInput(inputPath), ckpt.config);
  const specs = paramSpecs(ckpt.config, { heads: 'pretraining' });
  const values32 = selectParams(ckpt, specs, { source: modelDir, dropPrefixes: ['classifier.'] });
  await startBackend(choice, log);
  const params = paramsToTensors(specs, values32);
  const output = runInference(ckpt.config, params, input);
  disposeParams(params);
  writeFileAtomic(outputPath, JSON.stringify(output));
  process.stdout.write(
    `wrote ${outputPath}: last_hidden_state [${output.last_hidden_state.shape}], prediction_logits [${output.prediction_logits.shape}]\n`,
  );
  return 0;
}
