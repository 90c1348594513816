/**
 * `--resume` refuses what changed: on a finished short run, flags that decide
 * the bits (a seed, a phase's steps, an optimizer setting in --config) are
 * listed with saved and given values and the run stops with the folder
 * untouched, for `train` and `cluster` alike; settings that may change (log
 * level, checkpoint interval and count) are accepted and used.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { pipelineArgs } from '../helpers/pipeline.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-resume-refuses-'));
const done = join(work, 'done');

/** Every file under `dir` by relative path, with its sha256. */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

describe('--resume refuses settings that changed', () => {
  beforeAll(async () => {
    const r = await runCli(['train', ...pipelineArgs(done)], { cwd: work });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('refuses another seed and more finetuning steps on a finished run, listing both, and changes nothing', async () => {
    const before = hashTree(done);
    const r = await runCli(['train', '--output', done, '--resume', '--seed', '99', '--finetune-steps', '400', '--no-progress'], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`InputError: --resume: the run in ${done} was started with other settings, and these decide its bits:`);
    expect(r.stderr).toContain('  - seed: saved 7, given 99\n');
    expect(r.stderr).toContain('  - finetune.steps: saved 6, given 400\n');
    expect(r.stdout).toBe('');
    expect(hashTree(done)).toEqual(before);
  });

  it('refuses a changed setting given in a --config file', async () => {
    const config = join(work, 'other-optimizer.json');
    writeFileSync(config, JSON.stringify({ optimizer: { clipNorm: 2 }, checkpoint: { keep: 3 } }));
    const before = hashTree(done);
    const r = await runCli(['train', '--output', done, '--resume', '--config', config, '--no-progress'], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('  - optimizer.clipNorm: saved 1, given 2\n');
    // checkpoint.keep may change: not listed.
    expect(r.stderr).not.toContain('checkpoint.keep: saved');
    expect(hashTree(done)).toEqual(before);
  });

  it('refuses the same change under bertfleet cluster before starting anything', async () => {
    const before = hashTree(done);
    const r = await runCli(['cluster', '--workers', '1', '--output', done, '--resume', '--seed', '99', '--finetune-steps', '400', '--no-progress'], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('  - seed: saved 7, given 99\n');
    expect(r.stderr).toContain('  - finetune.steps: saved 6, given 400\n');
    expect(r.stderr).not.toMatch(/nats|coordinator listening/);
    expect(hashTree(done)).toEqual(before);
  });

  it('accepts another log level and checkpoint interval and count, uses them, and ends with the same bytes', async () => {
    // The finished run taken back to its finetuning checkpoint at step 4.
    const again = join(work, 'again');
    cpSync(done, again, { recursive: true });
    for (const p of ['finetuned', 'metrics.json', 'state/step-finetune-00000006']) rmSync(join(again, p), { recursive: true });
    writeFileSync(join(again, 'state/latest'), 'step-finetune-00000004\n');
    const config = join(work, 'checkpoints.json');
    writeFileSync(config, JSON.stringify({ checkpoint: { everySteps: 5, keep: 3 }, logEverySteps: 3 }));
    const r = await runCli(['train', '--output', again, '--resume', '--log-level', 'warn', '--config', config, '--no-progress'], { cwd: work });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    // Warn level: no info line (level 30) at all.
    expect(r.stderr).not.toMatch(/"level":30/);
    // Checkpoints every 5 steps, 3 kept: step 5 exists (never with the saved everySteps 2), and 4, 5, 6 are kept.
    expect(readdirSync(join(again, 'state')).filter((n) => n.startsWith('step-')).sort()).toEqual(['step-finetune-00000004', 'step-finetune-00000005', 'step-finetune-00000006']);
    for (const f of ['finetuned/model.safetensors', 'metrics.json', 'steps.jsonl']) {
      expect(readFileSync(join(again, f)).equals(readFileSync(join(done, f))), f).toBe(true);
    }
    // The saved run config stays the run's own.
    expect(readFileSync(join(again, 'run-config.json'), 'utf8')).toBe(readFileSync(join(done, 'run-config.json'), 'utf8'));
    expect(existsSync(join(again, 'state/latest'))).toBe(true);
  });
});
