/**
 * `bertfleet infer` as a user runs it: reproduces the PyTorch fixture's outputs
 * through the default (auto) backend, and refuses bad input with a message that
 * names the field, writing nothing.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

const fixture = join(import.meta.dirname, '../fixtures/bert-parity');
const work = mkdtempSync(join(tmpdir(), 'bertfleet-infer-'));

type Out = Record<string, { shape: number[]; data: number[] }>;

function input(name: string, value: unknown): string {
  const path = join(work, `${name}.json`);
  writeFileSync(path, JSON.stringify(value));
  return path;
}

describe('bertfleet infer', () => {
  it('reproduces the fixture within 1e-4', async () => {
    const out = join(work, 'out.json');
    const r = await runCli(['infer', '--model', fixture, '--input', join(fixture, 'inputs.json'), '--output', out]);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    const got = JSON.parse(readFileSync(out, 'utf8')) as Out;
    const expected = JSON.parse(readFileSync(join(fixture, 'expected.json'), 'utf8')) as Out;
    for (const key of Object.keys(expected)) {
      expect(got[key]!.shape, key).toEqual(expected[key]!.shape);
      const worst = got[key]!.data.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[key]!.data[i]!)), 0);
      expect(worst, key).toBeLessThan(1e-4);
    }
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['id outside the vocabulary', { input_ids: [[1, 2, 128]] }, /input_ids\[0\]\[2\] is 128, expected a token id in \[0, 127\]/],
    ['negative id', { input_ids: [[1, -1]] }, /input_ids\[0\]\[1\] is -1/],
    ['sequence longer than max_position_embeddings', { input_ids: [Array.from({ length: 65 }, () => 1)] }, /65 tokens, more than max_position_embeddings \(64\)/],
    ['rows of different lengths', { input_ids: [[1, 2, 3], [1, 2]] }, /input_ids\[1\] has 2 tokens, expected 3/],
    ['mask of the wrong length', { input_ids: [[1, 2, 3]], attention_mask: [[1, 1]] }, /attention_mask\[0\] has 2 entries, expected 3/],
    ['token types of the wrong length', { input_ids: [[1, 2, 3]], token_type_ids: [[0, 0, 0, 0]] }, /token_type_ids\[0\] has 4 entries, expected 3/],
    ['token type outside type_vocab_size', { input_ids: [[1, 2]], token_type_ids: [[0, 2]] }, /token_type_ids\[0\]\[1\] is 2/],
    ['no input_ids', { ids: [[1]] }, /"input_ids" field/],
  ];
  for (const [what, value, message] of bad) {
    it(`refuses ${what}, naming the field, and writes nothing`, async () => {
      const out = join(work, `bad-${what.replace(/\W+/g, '-')}.json`);
      const r = await runCli(['infer', '--model', fixture, '--input', input(what.replace(/\W+/g, '-'), value), '--output', out]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(existsSync(out)).toBe(false);
    });
  }

  it('names a missing checkpoint folder', async () => {
    const r = await runCli(['infer', '--model', join(work, 'nope'), '--input', join(fixture, 'inputs.json'), '--output', join(work, 'x.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/checkpoint directory .*nope does not exist/);
  });
});
