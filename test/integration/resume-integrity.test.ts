/**
 * A real `bertfleet train` run whose latest trainer state has one bit flipped:
 * --resume reports it, resumes from the previous kept state, says so, and
 * ends with the bytes of an uninterrupted run.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { fields } from '../helpers/logged-process.js';
import { pipelineArgs } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-resume-integrity-'));
const reference = join(work, 'reference');

describe('--resume with a damaged trainer state', () => {
  beforeAll(async () => {
    const r = await runCli(['train', ...pipelineArgs(reference)], { cwd: work });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('falls back to the previous state when a bit of the latest one flipped, and ends with the same bytes', async () => {
    const flipped = join(work, 'flipped');
    cpSync(reference, flipped, { recursive: true });
    // As if the run had died before writing finetuned/ and metrics.json, so they are recomputed.
    for (const p of ['finetuned', 'metrics.json']) rmSync(join(flipped, p), { recursive: true });
    const latest = join(flipped, 'state', readFileSync(join(flipped, 'state/latest'), 'utf8').trim());
    expect(latest).toBe(join(flipped, 'state/step-finetune-00000006'));
    const params = readFileSync(join(latest, 'params.safetensors'));
    params[params.length - 5] ^= 0x10;
    writeFileSync(join(latest, 'params.safetensors'), params);

    const r = await runCli(['train', ...pipelineArgs(flipped, ['--resume'])], { cwd: work });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const logs = r.stderr.split('\n').filter((l) => l.startsWith('{')).map(fields);
    const damaged = logs.find((l) => l['msg'] === 'trainer state damaged; trying the previous one');
    expect(damaged).toMatchObject({ level: 40, dir: latest });
    expect(damaged?.['problem']).toMatch(/^params\.safetensors has sha256 [0-9a-f]{64}, SHA256SUMS says [0-9a-f]{64}/);
    expect(logs.find((l) => l['msg'] === 'resuming from an earlier trainer state: the later ones are damaged'))
      .toMatchObject({ level: 40, dir: join(flipped, 'state/step-finetune-00000004'), phase: 'finetune', step: 4 });
    expect(logs.find((l) => l['msg'] === 'resuming')).toMatchObject({ phase: 'finetune', step: 4 });
    for (const f of ['finetuned/model.safetensors', 'metrics.json', 'steps.jsonl', 'state/step-finetune-00000006/params.safetensors']) {
      expect(readFileSync(join(flipped, f)).equals(readFileSync(join(reference, f))), f).toBe(true);
    }
  });
});
