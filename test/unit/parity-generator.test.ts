/**
 * The repository's own parity fixture generator (tools/fixtures/bert_parity.py,
 * plain PyTorch) against the TypeScript model: a fresh fixture from a seed other
 * than any committed one, reproduced within the tolerance of
 * model-parity.test.ts. Also checks that the generator's forward pass reproduces
 * the committed fixture, which was made by another implementation. Skipped when
 * Debian's python3-torch is not installed (it is optional: ~70 MB to download,
 * ~400 MB installed).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PARITY_OUTPUTS, parityDiffs } from '../helpers/bert-parity.js';
import { makeTempDir } from '../helpers/tmp.js';

const PYTHON = '/usr/bin/python3'; // Debian's python3-torch installs for the system Python
const GENERATOR = join(import.meta.dirname, '../../tools/fixtures/bert_parity.py');
const COMMITTED = join(import.meta.dirname, '../fixtures/bert-parity');

const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
const noTorch = probe.status !== 0;
const why = noTorch ? `PyTorch not installed (${PYTHON} -c "import torch" failed)` : '';

function python(args: string[]): string {
  const r = spawnSync(PYTHON, [GENERATOR, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bert_parity.py ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

describe.skipIf(noTorch)(`the parity fixture generator${noTorch ? ` (skipped: ${why})` : ''}`, () => {
  let tmp: { dir: string; remove: () => Promise<void> };

  beforeAll(async () => {
    await tf.setBackend('cpu');
    tmp = await makeTempDir('parity');
  });
  afterAll(() => tmp.remove());

  it('makes a fixture that the TypeScript model reproduces within 1e-4', () => {
    const out = join(tmp.dir, 'seed-20240611');
    python(['generate', '--out', out, '--seed', '20240611']);
    const diffs = parityDiffs(out);
    for (const key of PARITY_OUTPUTS) {
      expect(diffs[key].gotShape, key).toEqual(diffs[key].expectedShape);
      expect(diffs[key].maxAbsDiff, key).toBeLessThan(1e-4);
    }
  });

  it("reproduces the committed fixture's expected outputs from its weights and inputs", () => {
    const report = JSON.parse(python(['check', COMMITTED, '--tolerance', '1e-5'])) as { maxAbsDiff: Record<string, number> };
    expect(Object.keys(report.maxAbsDiff).sort()).toEqual([...PARITY_OUTPUTS].sort());
    for (const key of PARITY_OUTPUTS) expect(report.maxAbsDiff[key], key).toBeLessThan(1e-5);
  });
});
