/** Arguments for short whole-pipeline runs on the small fixtures. */
import { join } from 'node:path';

export const PIPELINE_FIXTURES = join(import.meta.dirname, '../fixtures/pipeline');

/** The data cache goes to `.cache/` under the process's cwd: give each suite its own cwd. */
export function pipelineArgs(output: string, extra: string[] = []): string[] {
  return [
    '--output', output,
    '--model', join(PIPELINE_FIXTURES, 'micro-bert.json'),
    '--corpus', join(PIPELINE_FIXTURES, 'corpus.txt'),
    '--classification', join(PIPELINE_FIXTURES, 'sentiment.csv'),
    '--config', join(PIPELINE_FIXTURES, 'run.json'),
    '--seed', '7',
    '--no-progress',
    ...extra,
  ];
}

