/**
 * The report's data from a run folder (web/report-data.ts) and the page it
 * makes (web/report.ts): steps from steps.jsonl with the step times of
 * run-events.jsonl matched by phase and step (each step once, even after a
 * resume), the final metrics, notes for what is missing, a torn last line
 * left out, JSON that cannot break out of its <script>, and clear errors for
 * a folder that is not a run.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../shared/errors.js';
import { jsonForScript } from '../../web/page.js';
import { readRunForReport } from '../../web/report-data.js';
import { keepRunEvents, writeReport } from '../../web/report.js';

const work = mkdtempSync(join(tmpdir(), 'bertfleet-report-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const CONFIG = { model: 'micro.json', seed: 7, pretrain: { steps: 2 }, finetune: { steps: 2 } };
const lines = (rows: object[]): string => rows.map((r) => `${JSON.stringify(r)}\n`).join('');

function runFolder(name: string, files: Record<string, string>): string {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

describe('the report data', () => {
  it('takes the steps from steps.jsonl and their times from run-events.jsonl, each step once', () => {
    const dir = runFolder('resumed', {
      'run-config.json': JSON.stringify(CONFIG),
      'steps.jsonl': lines([
        { phase: 'pretrain', step: 0, loss: 9, lr: 1, gradNorm: 1, mlmAccuracy: 0.1 },
        { phase: 'pretrain', step: 1, loss: 8, lr: 1, gradNorm: 1, mlmAccuracy: 0.2 },
        { phase: 'finetune', step: 0, loss: 0.7, lr: 1, gradNorm: 1, accuracy: 0.5 },
      ]),
      'metrics.json': JSON.stringify({ finetuning: { test: { accuracy: 0.6 } } }),
    });
    // Two processes (a resume): the second recomputed pretrain step 2 and appended its own events.
    keepRunEvents(dir, [
      { type: 'run', mode: 'train', output: dir, workers: null, steps: { pretrain: 2, finetune: 2 }, model: 'm', seed: 7, resumed: false, seq: 1, at: 100 },
      { type: 'step', phase: 'pretrain', step: 1, total: 2, loss: 9, lr: 1, gradNorm: 1, sequences: 12, seqPerSec: 100, durationMs: 120, seq: 2, at: 200 },
      { type: 'step', phase: 'pretrain', step: 2, total: 2, loss: 8.5, lr: 1, gradNorm: 1, sequences: 12, seqPerSec: 50, durationMs: 240, seq: 3, at: 300 },
    ]);
    keepRunEvents(dir, [{ type: 'step', phase: 'pretrain', step: 2, total: 2, loss: 8, lr: 1, gradNorm: 1, sequences: 12, seqPerSec: 60, durationMs: 200, seq: 1, at: 400 }]);
    const r = readRunForReport(dir);
    const steps = r.events.filter((e) => e['type'] === 'step');
    expect(steps).toEqual([
      { type: 'step', phase: 'pretrain', step: 1, total: 2, loss: 9, lr: 1, gradNorm: 1, mlmAccuracy: 0.1, sequences: 12, seqPerSec: 100, durationMs: 120, at: 200 },
      { type: 'step', phase: 'pretrain', step: 2, total: 2, loss: 8, lr: 1, gradNorm: 1, mlmAccuracy: 0.2, sequences: 12, seqPerSec: 60, durationMs: 200, at: 400 },
      { type: 'step', phase: 'finetune', step: 1, total: 2, loss: 0.7, lr: 1, gradNorm: 1, accuracy: 0.5 },
    ]);
    expect(r.events.filter((e) => e['type'] === 'run')).toHaveLength(1);
    expect(r.metrics).toEqual({ finetuning: { test: { accuracy: 0.6 } } });
    expect(r.notes).toEqual([]);
  });

  it('reports an unfinished run from old files, saying what is missing, and leaves out a torn last line', () => {
    const dir = runFolder('unfinished', {
      'run-config.json': JSON.stringify(CONFIG),
      'steps.jsonl': `${lines([{ phase: 'pretrain', step: 0, loss: 9, lr: 1, gradNorm: 1 }])}{"phase":"pretr`,
    });
    const r = readRunForReport(dir);
    expect(r.events.filter((e) => e['type'] === 'step')).toHaveLength(1);
    expect(r.events[0]).toMatchObject({ type: 'run', model: 'micro.json', seed: 7, steps: { pretrain: 2, finetune: 2 } });
    expect(r.metrics).toBeNull();
    expect(r.notes.some((n) => /metrics\.json/.test(n))).toBe(true);
    expect(r.notes.some((n) => /torn/.test(n))).toBe(true);
    expect(r.notes.some((n) => /run-events\.jsonl/.test(n))).toBe(true);
  });

  it('refuses a folder that is not a run, a missing folder and a file, naming what it expected', () => {
    const empty = runFolder('empty', { 'notes.txt': 'hello' });
    expect(() => readRunForReport(empty)).toThrow(InputError);
    expect(() => readRunForReport(empty)).toThrow(/not a run's output folder: expected run-config\.json, steps\.jsonl or metrics\.json/);
    expect(() => readRunForReport(join(work, 'nowhere'))).toThrow(/no such folder/);
    expect(() => readRunForReport(join(empty, 'notes.txt'))).toThrow(/is a file/);
    const bad = runFolder('bad-line', { 'steps.jsonl': 'not json\n{"phase":"pretrain","step":0}\n' });
    expect(() => readRunForReport(bad)).toThrow(/steps\.jsonl line 1 is not JSON/);
  });

  it('writes one self-contained report.html whose inlined data cannot close its script', () => {
    expect(jsonForScript({ label: '</script><script>alert(1)</script>' })).not.toMatch(/<\/script/i);
    const dir = runFolder('written', {
      'run-config.json': JSON.stringify(CONFIG),
      'steps.jsonl': lines([{ phase: 'finetune', step: 0, loss: 0.7, lr: 1, gradNorm: 1, accuracy: 0.5 }]),
      'metrics.json': JSON.stringify({ labels: ['</script>', 'b'] }),
    });
    const html = readFileSync(writeReport(dir, new Date('2026-01-02T03:04:05Z')), 'utf8');
    expect(html).toContain('"generatedAt":"2026-01-02T03:04:05.000Z"');
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html.match(/<\/script>/g)).toHaveLength(3);
    expect(html).toContain('Chart');
  });
});
