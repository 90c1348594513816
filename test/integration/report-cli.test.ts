/**
 * `bertfleet report OUTPUT` as a user runs it: a run folder of files alone
 * (an old run: no run-events.jsonl) gets its report.html, and a folder that
 * is not a run, a missing one or no folder at all is refused with a message
 * saying what was expected, writing nothing.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-report-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('bertfleet report', () => {
  it('writes report.html for a run folder and prints its path', async () => {
    const dir = join(work, 'old-run');
    mkdirSync(dir);
    writeFileSync(join(dir, 'run-config.json'), JSON.stringify({ model: 'tiny', seed: 1, pretrain: { steps: 1 }, finetune: { steps: 1 } }));
    writeFileSync(join(dir, 'steps.jsonl'), '{"phase":"pretrain","step":0,"loss":9,"lr":0.1,"gradNorm":1}\n{"phase":"finetune","step":0,"loss":0.7,"lr":0.1,"gradNorm":1,"accuracy":0.5}\n');
    const r = await runCli(['report', dir], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(join(dir, 'report.html'));
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('"mode":"report"');
    expect(html).toContain('No metrics.json');
  });

  it('refuses what is not a run folder, saying what it expected, and writes nothing', async () => {
    const notRun = join(work, 'photos');
    mkdirSync(notRun);
    writeFileSync(join(notRun, 'cat.jpg'), 'meow');
    const r = await runCli(['report', notRun], { cwd: work });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not a run's output folder: expected run-config\.json, steps\.jsonl or metrics\.json in it/);
    expect(existsSync(join(notRun, 'report.html'))).toBe(false);
    const missing = await runCli(['report', join(work, 'nowhere')], { cwd: work });
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringMatching(/no such folder/)]);
    const none = await runCli(['report'], { cwd: work });
    expect([none.code, none.stderr]).toEqual([2, expect.stringMatching(/expected one run folder, got none/)]);
  });
});
