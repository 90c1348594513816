/**
 * The cluster benchmark: pretraining throughput of `bertfleet train` (one
 * process) against `bertfleet cluster` with 1 and 2 workers, on the same
 * preset, data and global batch (so the same bytes), and where a worker's
 * step time goes: computing its micro-batches, and exchanging gradients (from
 * its first upload starting to the reduced gradient downloaded, which
 * includes waiting for the other workers), split into the transfers
 * themselves (uploads + download) and the wait. Each run is a real process
 * tree, stopped with SIGINT once its last pretraining step is logged; the
 * first `--warmup` steps are left out.
 *   npx tsx bench/cluster.ts [--preset tiny] [--steps 12] [--warmup 2] [--global-batch 32] [--micro-batch 16] [--modes train,1,2]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { intFlag, parseFlags } from '../cli/args.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(root, 'bin/bertfleet');

const HELP = `usage: npx tsx bench/cluster.ts [--preset tiny] [--steps N] [--warmup N] [--global-batch N] [--micro-batch N] [--modes train,1,2]

Prints one JSON line per mode (train, or a cluster's worker count), then a table.`;

interface Line {
  time: number;
  msg: string;
  [k: string]: unknown;
}

/** Runs one mode until its last pretraining step is logged; returns the log lines. */
function runMode(mode: string, args: string[], steps: number): Promise<Line[]> {
  const command = mode === 'train' ? ['train'] : ['cluster', '--workers', mode];
  const child = spawn(BIN, [...command, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: Line[] = [];
  let stopping = false;
  createInterface({ input: child.stderr }).on('line', (raw) => {
    if (!raw.startsWith('{')) return;
    const l = JSON.parse(raw) as Line;
    lines.push(l);
    if (!stopping && l.msg === 'step done' && l['phase'] === 'pretrain' && l['step'] === steps) {
      stopping = true;
      child.kill('SIGINT');
    }
  });
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      if (!stopping) reject(new Error(`${mode}: exited with ${code} before pretraining step ${steps}:\n${lines.slice(-10).map((l) => JSON.stringify(l)).join('\n')}`));
      else resolve(lines);
    });
  });
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

function measure(mode: string, lines: Line[], warmup: number, globalBatch: number) {
  const steps = lines.filter((l) => l.msg === 'step done' && l['phase'] === 'pretrain');
  const measured = steps.filter((l) => (l['step'] as number) > warmup);
  const first = steps.find((l) => l['step'] === warmup)!;
  const last = measured[measured.length - 1]!;
  const stepMs = (last.time - first.time) / measured.length;
  const out: Record<string, unknown> = { bench: 'cluster', mode, steps: measured.length, step_ms: Math.round(stepMs), seq_per_s: +((1000 * globalBatch) / stepMs).toFixed(1) };
  // Worker timings, per step (logEverySteps 1), from the workers' own lines.
  const timings = lines.filter((l) => l.msg === 'worker steps' && l['phase'] === 'pretrain' && (l['steps'] as number) === 1);
  const byWorker = new Map<string, Line[]>();
  for (const t of timings) byWorker.set(String(t['workerId']), [...(byWorker.get(String(t['workerId'])) ?? []), t]);
  if (byWorker.size > 0) {
    const per = [...byWorker.values()].map((ts) => ts.slice(warmup, warmup + measured.length));
    const mean = (f: string): number => sum(per.map((ts) => sum(ts.map((t) => t[f] as number)) / ts.length)) / per.length;
    const exchange = mean('exchangeMs');
    const transfer = mean('uploadMs') + mean('downloadMs');
    Object.assign(out, {
      compute_ms: Math.round(mean('computeMs')),
      exchange_ms: Math.round(exchange),
      transfer_ms: Math.round(transfer),
      wait_ms: Math.round(mean('waitMs')),
      apply_ms: Math.round(mean('applyMs')),
      exchange_share: +(exchange / stepMs).toFixed(3),
      transfer_share: +(transfer / stepMs).toFixed(3),
    });
  }
  return out;
}

async function main(): Promise<void> {
  const values = parseFlags(process.argv.slice(2), {
    preset: { type: 'string' }, steps: { type: 'string' }, warmup: { type: 'string' },
    'global-batch': { type: 'string' }, 'micro-batch': { type: 'string' }, modes: { type: 'string' },
  }, HELP);
  if (!values) return;
  const steps = intFlag(values, 'steps', { min: 2 }) ?? 12;
  const warmup = intFlag(values, 'warmup', { min: 1 }) ?? 2;
  const globalBatch = intFlag(values, 'global-batch', { min: 1 }) ?? 32;
  const microBatch = intFlag(values, 'micro-batch', { min: 1 }) ?? 16;
  const modes = ((values['modes'] as string | undefined) ?? 'train,1,2').split(',');
  const work = mkdtempSync(join(tmpdir(), 'bertfleet-bench-cluster-'));
  const config = join(work, 'run.json');
  // The data cache is shared with runs from the checkout's root; logEverySteps 1 gives per-step lines.
  writeFileSync(config, JSON.stringify({ logEverySteps: 1, data: { cacheDir: join(root, '.cache/bertfleet') } }));
  const rows: Record<string, unknown>[] = [];
  try {
    for (const mode of modes) {
      const args = [
        '--model', (values['preset'] as string | undefined) ?? 'tiny', '--pretrain-steps', String(steps), '--finetune-steps', '0',
        '--global-batch', String(globalBatch), '--micro-batch', String(microBatch), '--config', config,
        '--output', join(work, `run-${mode}`), '--no-progress',
      ];
      const row = { ...measure(mode, await runMode(mode, args, steps), warmup, globalBatch), load_avg_1m: +loadavg()[0]!.toFixed(2) };
      console.log(JSON.stringify(row));
      rows.push(row);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const base = rows.find((r) => r['mode'] === 'train')?.['seq_per_s'] as number | undefined;
  console.log('\n| mode | seq/s | vs train | step ms | compute ms | exchange ms (share of step) | of which transfers ms (share) | waiting ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const name = r['mode'] === 'train' ? 'train (1 process)' : `cluster, ${String(r['mode'])} worker(s)`;
    const vs = base ? `${((r['seq_per_s'] as number) / base).toFixed(2)}×` : '';
    const ex = r['exchange_ms'] === undefined ? '—' : `${String(r['exchange_ms'])} (${(100 * (r['exchange_share'] as number)).toFixed(0)}%)`;
    const tr = r['transfer_ms'] === undefined ? '—' : `${String(r['transfer_ms'])} (${(100 * (r['transfer_share'] as number)).toFixed(0)}%)`;
    console.log(`| ${name} | ${String(r['seq_per_s'])} | ${vs} | ${String(r['step_ms'])} | ${String(r['compute_ms'] ?? '—')} | ${ex} | ${tr} | ${String(r['wait_ms'] ?? '—')} |`);
  }
}

await main();
