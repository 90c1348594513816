/**
 * `bertfleet bench --suite cluster` end to end: real train and cluster process
 * trees, and the PyTorch reference where this machine has it. Asserts which
 * measurements and ratios are printed, never their values.
 */
import { describe, expect, it } from 'vitest';
import { findTorch } from '../../bench/torch.js';
import { runCli } from '../helpers/cli.js';

const MODES = ['train', 'cluster-1', 'cluster-2', 'ddp-1', 'ddp-2', 'allreduce-2'];
const TORCH_MODES = ['ddp-1', 'ddp-2', 'allreduce-2'];
const NAMES = [
  'bertfleet train (1 process)', 'bertfleet cluster, 1 worker', 'bertfleet cluster, 2 workers',
  'PyTorch DDP, 1 process', 'PyTorch DDP, 2 processes', 'gloo all-reduce, 2 processes',
];
const RATIOS = ['cluster1_vs_train', 'scaling_efficiency_bertfleet', 'scaling_efficiency_ddp', 'exchange_vs_allreduce_1_worker', 'exchange_vs_allreduce_2_workers'];

describe('bertfleet bench --suite cluster', () => {
  it('prints a JSON line per measurement, the ratios and the table, with torch rows saying whether PyTorch ran', async () => {
    const torch = 'script' in findTorch({ envScript: process.env['BERTFLEET_TORCH_REFERENCE'] });
    const r = await runCli(['bench', '--suite', 'cluster', '--steps', '2', '--warmup', '1', '--reps', '3']);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const json = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json.map((j) => j['mode'])).toEqual([...MODES, 'ratios']);
    for (const row of json.slice(0, 3)) {
      expect(row).toMatchObject({ suite: 'cluster', impl: 'bertfleet', steps: 1, warnings: expect.any(Number), seq_per_s: expect.any(Number), openblas_core: expect.any(String) });
    }
    for (const row of json.slice(1, 3)) {
      expect(row['parts_ms']).toMatchObject({ computeMs: expect.any(Number), exchangeMs: expect.any(Number), applyMs: expect.any(Number) });
    }
    for (const row of json.filter((j) => TORCH_MODES.includes(j['mode'] as string))) {
      if (torch) expect(row).toMatchObject({ impl: expect.any(String), openblas_core: expect.any(String) });
      else expect(row['skipped']).toMatch(/^PyTorch not installed/);
    }
    if (torch) expect(json[5]).toMatchObject({ elements: 4433468, ms_median: expect.any(Number) });
    const ratios = json[6]!;
    for (const k of RATIOS) expect(k in ratios).toBe(true);
    expect(ratios['cluster1_vs_train']).toEqual(expect.any(Number));
    expect(ratios['scaling_efficiency_ddp'] === null).toBe(!torch);

    for (const name of NAMES) expect(r.stdout).toContain(`| ${name} |`);
    expect(r.stdout).toContain('| cluster --workers 1 ÷ train (seq/s) |');
    expect(r.stdout).toContain('scaling efficiency, bertfleet');
    expect(r.stdout).toContain('scaling efficiency, PyTorch DDP');
    expect(r.stdout).toContain('exchange per step, 1 worker ÷ gloo all-reduce');
    if (!torch) expect(r.stdout).toContain('not measured: PyTorch not installed');
  }, 240_000);

  it('says PyTorch is not installed when the interpreter cannot import torch', () => {
    expect(findTorch({ python: '/nonexistent/python3' })).toEqual({ missing: expect.stringMatching(/^PyTorch not installed \(\/nonexistent\/python3 -c "import torch": /) });
  });

  it('rejects an unknown suite with a usage error naming the valid ones', async () => {
    const r = await runCli(['bench', '--suite', 'clusters']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--suite must be one of compute, cluster, got "clusters"');
    expect(r.stdout).toBe('');
  });
});
