/**
 * The cluster suite: in one run, on the same machine state, pretraining
 * throughput of `bertfleet train` (one process) and `bertfleet cluster` with 1
 * and 2 workers on the same preset, data and global batch; where a worker's
 * step goes (compute, upload, wait, download, apply, exchange); and — where
 * PyTorch is installed — DDP over gloo with 1 and 2 processes on the same
 * global batch and a gloo all-reduce of as many float32 as the model's
 * gradient. Prints one JSON line per measurement, a JSON line of ratios, then
 * markdown tables (cluster-table.ts).
 *   bertfleet bench --suite cluster [--preset tiny] [--steps 12] [--warmup 2] [--global-batch 32] [--micro-batch 16] [--reps 20]
 *   npx tsx bench/cluster.ts [same flags]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { intFlag, parseFlags, UsageError } from '../cli/args.js';
import { presetConfig } from '../shared/model/config.js';
import { paramSpecs } from '../shared/model/params.js';
import { failed } from './child-json.js';
import { printTables, ratios, type Row } from './cluster-table.js';
import { runBertfleet, type RunSpec } from './cluster-runs.js';
import { findTorch, ROOT, runTorch, type Torch } from './torch.js';

const HELP = `usage: bertfleet bench --suite cluster [--preset tiny|mini] [--steps N] [--warmup N] [--global-batch N]
                       [--micro-batch N] [--reps N] [--torch-reference PATH] [--python PATH]
                       [--insecure]

Measures in one run: bertfleet train, cluster --workers 1 and --workers 2 (the
exchange per step split into its parts), and where PyTorch is installed DDP
(gloo) with 1 and 2 processes and a gloo all-reduce of the gradient's size.
Prints one JSON line per measurement, then a table with the ratios of issue 8.
Defaults: tiny, 12 steps after 2 warm-up steps, global batch 32, micro-batch 16,
20 all-reduce repetitions. OPENBLAS_CORETYPE, if set, reaches every process.
The cluster runs use mTLS and NATS authentication, as bertfleet cluster does by
default; --insecure measures them in plaintext (what TLS costs, by comparison).`;

const PRESETS = ['tiny', 'mini'] as const; // the presets the PyTorch reference knows

interface Settings { preset: (typeof PRESETS)[number]; steps: number; warmup: number; globalBatch: number; microBatch: number; reps: number; insecure: boolean }

function settings(values: Record<string, unknown>): Settings {
  const preset = (values['preset'] as string | undefined) ?? 'tiny';
  if (!(PRESETS as readonly string[]).includes(preset)) throw new UsageError(`--preset must be one of ${PRESETS.join(', ')}, got "${preset}"`);
  const s = {
    preset: preset as Settings['preset'],
    steps: intFlag(values, 'steps', { min: 2 }) ?? 12,
    warmup: intFlag(values, 'warmup', { min: 1 }) ?? 2,
    globalBatch: intFlag(values, 'global-batch', { min: 2 }) ?? 32,
    microBatch: intFlag(values, 'micro-batch', { min: 1 }) ?? 16,
    reps: intFlag(values, 'reps', { min: 1 }) ?? 20,
    insecure: values['insecure'] === true,
  };
  if (s.warmup >= s.steps) throw new UsageError(`--warmup (${s.warmup}) must be less than --steps (${s.steps})`);
  if (s.globalBatch % 2 !== 0) throw new UsageError(`--global-batch must be even (split over 2 workers and 2 DDP processes), got ${s.globalBatch}`);
  return s;
}

/** bertfleet train and cluster --workers 1, 2; a failed run becomes a row with its error. */
async function bertfleetRows(s: Settings, work: string): Promise<Row[]> {
  const config = join(work, 'run.json');
  // The data cache is shared with runs from the checkout's root; logEverySteps 1 gives per-step timing lines.
  writeFileSync(config, JSON.stringify({ logEverySteps: 1, data: { cacheDir: join(ROOT, '.cache/bertfleet') } }));
  const rows: Row[] = [];
  for (const workers of [0, 1, 2]) {
    const mode = workers === 0 ? 'train' : `cluster-${workers}`;
    const spec: RunSpec = {
      workers, steps: s.steps, warmup: s.warmup, globalBatch: s.globalBatch, timeoutMs: 600_000 + 60_000 * s.steps,
      args: ['--model', s.preset, '--pretrain-steps', String(s.steps), '--finetune-steps', '0', '--global-batch', String(s.globalBatch),
        '--micro-batch', String(s.microBatch), '--config', config, '--output', join(work, mode), '--no-progress',
        ...(s.insecure && workers > 0 ? ['--insecure'] : [])],
    };
    const measured = await runBertfleet(spec).then((r) => ({ ...r }), (err: unknown) => ({ error: (err as Error).message }));
    rows.push(emit({ mode, impl: 'bertfleet', workers, transport: workers === 0 ? null : s.insecure ? 'plaintext' : 'mtls', global_batch: s.globalBatch, micro_batch: s.microBatch, ...measured }));
  }
  return rows;
}

/** DDP with 1 and 2 processes and a 2-process gloo all-reduce of `elements` float32, or rows saying why not. */
function torchRows(s: Settings, torch: Torch, elements: number): Row[] {
  const modes: [string, string[]][] = [
    ['ddp-1', ['train', '--procs', '1']],
    ['ddp-2', ['train', '--procs', '2']],
    ['allreduce-2', ['allreduce', '--procs', '2', '--elements', String(elements), '--reps', String(s.reps), '--warmup', '3']],
  ];
  return modes.map(([mode, args]) => {
    if ('missing' in torch) return emit({ mode, impl: 'pytorch', skipped: torch.missing });
    const common = args[0] === 'train'
      ? ['--config', s.preset, '--batch', String(s.globalBatch), '--threads', '1', '--steps', String(s.steps - s.warmup), '--warmup', String(s.warmup)]
      : [];
    const r = runTorch(torch, [...args, ...common], 600_000 + 60_000 * s.steps);
    return emit(failed(r) ? { mode, impl: 'pytorch', error: r.error } : { mode, ...r });
  });
}

function emit(row: Omit<Row, 'suite' | 'load_avg_1m'>): Row {
  const out = { suite: 'cluster', ...row, load_avg_1m: +loadavg()[0]!.toFixed(2) } as Row;
  console.log(JSON.stringify(out));
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    preset: { type: 'string' }, steps: { type: 'string' }, warmup: { type: 'string' }, 'global-batch': { type: 'string' },
    'micro-batch': { type: 'string' }, reps: { type: 'string' }, 'torch-reference': { type: 'string' }, python: { type: 'string' },
    insecure: { type: 'boolean' },
  }, HELP);
  if (!values) return 0;
  const s = settings(values);
  const torch = findTorch({ script: values['torch-reference'] as string | undefined, envScript: process.env['BERTFLEET_TORCH_REFERENCE'], python: values['python'] as string | undefined });
  // The gradient is the flat vector of every pretraining parameter, one float32 each.
  const elements = paramSpecs(presetConfig(s.preset), { heads: 'pretraining' }).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  const work = mkdtempSync(join(tmpdir(), 'bertfleet-bench-cluster-'));
  let rows: Row[];
  try {
    rows = [...(await bertfleetRows(s, work)), ...torchRows(s, torch, elements)];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const r = ratios(rows);
  console.log(JSON.stringify({ suite: 'cluster', mode: 'ratios', ...r }));
  printTables(rows, r, { elements, coretypeEnv: process.env['OPENBLAS_CORETYPE'] });
  return rows.some((row) => row.error !== undefined) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run(process.argv.slice(2)).then((c) => (process.exitCode = c), (err: unknown) => {
    console.error(err instanceof Error ? `${err.name}: ${err.message}` : err);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  });
}
